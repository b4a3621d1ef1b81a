"""SLA levels (maximum time to first reaction) and which level a tier and urgency get.

The numbers are the regulation's (§ 5.1–5.8); they live in ``mappings/levels.yaml`` so admins
can edit them without code.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Urgency = Literal["emergency", "standard"]


#: bounds a typo in levels.yaml hits at load time (``hours: 4000`` for 40), instead of a due
#: time years away, or past the year 9999 and a crash, on every ticket of the level
MAX_HOURS = 2000.0
MAX_CAP_DAYS = 366


class Level(BaseModel):
    """One level: its reaction budget in working hours and an optional calendar-day cap."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    label: str
    hours: float = Field(
        gt=0,
        le=MAX_HOURS,
        allow_inf_nan=False,
        description="maximum reaction time, in working hours (at most a working year)",
    )
    cap_days: int | None = Field(
        default=None,
        ge=1,
        le=MAX_CAP_DAYS,
        description="calendar days not counting weekends; None = no cap",
    )
    calendar: str | None = Field(default=None, description="overrides the file's calendar")
    section: str | None = None
    source: str | None = None


class LevelsFile(BaseModel):
    """``mappings/levels.yaml``: the level table and the tier × urgency matrix."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    calendar: str = Field(default="moscow", description="calendar used for due times")
    levels: dict[str, Level]
    matrix: dict[str, dict[Urgency, str]] = Field(
        description="tier -> {emergency: level, standard: level}"
    )
    consulting_level: str = Field(
        default="consulting",
        description="level an agent moves out-of-scope questions to (§ 5.8)",
    )

    @model_validator(mode="after")
    def _references_exist(self) -> LevelsFile:
        for tier, row in self.matrix.items():
            for urgency in ("emergency", "standard"):
                if urgency not in row:
                    raise ValueError(f"matrix.{tier}: missing '{urgency}'")
            for urgency, level in row.items():
                if level not in self.levels:
                    raise ValueError(f"matrix.{tier}.{urgency}: unknown level {level!r}")
        if self.consulting_level not in self.levels:
            raise ValueError(f"consulting_level: unknown level {self.consulting_level!r}")
        return self

    def level_for(self, tier: str, urgency: Urgency) -> str:
        """The level id for a tier and urgency (the tier must be in the matrix)."""
        return self.matrix[tier][urgency]
