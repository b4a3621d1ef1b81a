"""The admin-facing shape of one business calendar (an entry of ``mappings/calendars.yaml``).

Intervals are written ``"HH:MM-HH:MM"`` (seconds allowed: ``"HH:MM:SS"``), half-open
``[start, end)``, in the calendar's local wall-clock time; ``"24:00"`` may end an interval.
They are parsed here, once, into seconds after local midnight so that the engine never
touches strings. Validation errors are raised at the offending entry, so the mappings loader
can report ``calendars.yaml: calendars.moscow.week.mon[1]: …``.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

# Years a calendar may name (``dates:`` keys, ``known_until``). Real working calendars live in
# this span; anything outside is a typo ("20270", "9999-03-07", "0025-03-07") that would
# otherwise make compilation fail or lay out a table of hundreds of thousands of days.
YEAR_MIN: Final = 2000
YEAR_MAX: Final = 2100


def check_year(year: int) -> int:
    """Refuse a year outside ``YEAR_MIN``–``YEAR_MAX`` with a message naming it."""
    if not YEAR_MIN <= year <= YEAR_MAX:
        raise ValueError(f"year {year} is outside {YEAR_MIN}–{YEAR_MAX}; a typo?")
    return year


_INTERVAL = re.compile(
    r"^\s*(\d{1,2}):(\d{2})(?::(\d{2}))?\s*-\s*(\d{1,2}):(\d{2})(?::(\d{2}))?\s*$"
)


def _clock(hours: str, minutes: str, seconds: str | None, *, is_end: bool) -> int:
    h, m, s = int(hours), int(minutes), int(seconds or 0)
    if h == 24 and m == 0 and s == 0 and is_end:
        return 86400
    if h > 23 or m > 59 or s > 59:
        raise ValueError(f"{hours}:{minutes} is not a time of day (24:00 only as an end)")
    return h * 3600 + m * 60 + s


def parse_interval(value: object) -> tuple[int, int]:
    """Parse ``"HH:MM-HH:MM"`` into ``(start, end)`` seconds after local midnight."""
    if isinstance(value, tuple | list) and len(value) == 2:  # seconds, as the model dumps them
        if not all(type(part) is int for part in value):
            raise ValueError(f"expected 'HH:MM-HH:MM', got {value!r}")
        start, end = value
    elif isinstance(value, str):
        match = _INTERVAL.match(value)
        if match is None:
            raise ValueError(f"expected 'HH:MM-HH:MM', got {value!r}")
        start = _clock(match[1], match[2], match[3], is_end=False)
        end = _clock(match[4], match[5], match[6], is_end=True)
    else:
        raise ValueError(f"expected 'HH:MM-HH:MM', got {value!r}")
    if not 0 <= start < end <= 86400:
        raise ValueError(f"interval {value!r} must start before it ends, within one day")
    return start, end


Interval = Annotated[tuple[int, int], BeforeValidator(parse_interval)]


def _normalize_day(intervals: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """Sort a day's intervals, merge touching ones, and refuse overlaps."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(intervals):
        if merged and start < merged[-1][1]:
            raise ValueError(f"intervals overlap: {_fmt(merged[-1])} and {_fmt((start, end))}")
        if merged and start == merged[-1][1]:
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return tuple(merged)


def _fmt(interval: tuple[int, int]) -> str:
    def clock(seconds: int) -> str:
        return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}"

    return f"{clock(interval[0])}-{clock(interval[1])}"


class HolidaySource(BaseModel):
    """Public holidays (and official day-off transfers) from python-holidays."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    country: str = Field(description="ISO 3166-1 alpha-2 code, e.g. RU")
    subdiv: str | None = Field(default=None, description="region code, where the country has them")
    known_until: int | None = Field(
        default=None,
        description=(
            "last year whose official holiday data is known; due dates after it carry a "
            "warning. Default: derived from the holiday library."
        ),
    )

    @field_validator("known_until")
    @classmethod
    def _known_until_plausible(cls, value: int | None) -> int | None:
        return None if value is None else check_year(value)

    @field_validator("country")
    @classmethod
    def _country_exists(cls, value: str) -> str:
        import holidays

        code = value.strip().upper()
        if code not in holidays.list_supported_countries():
            raise ValueError(f"no holiday data for country {value!r} in python-holidays")
        return code


class CalendarSpec(BaseModel):
    """One named working calendar, as an admin writes it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timezone: str = "Europe/Moscow"
    week: dict[Weekday, list[Interval]]
    holidays: HolidaySource | None = None
    workday_hours: list[Interval] | None = Field(
        default=None, description="hours of a weekend day made working; default: Monday's"
    )
    dates: dict[dt.date, list[Interval]] = Field(
        default_factory=dict, description="explicit hours per date; win over everything"
    )
    cap_skips: Literal["weekends", "non_working_days"] = Field(
        default="weekends",
        description=(
            "what calendar-day caps skip: only Saturdays and Sundays (the regulation's "
            "'not counting weekends'), or every day without working hours"
        ),
    )

    @field_validator("timezone")
    @classmethod
    def _zone_exists(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {value!r}") from exc
        return value

    @field_validator("week")
    @classmethod
    def _week_has_hours(
        cls, value: dict[Weekday, list[tuple[int, int]]]
    ) -> dict[Weekday, list[tuple[int, int]]]:
        if not any(value.values()):
            raise ValueError("the week has no working hours at all")
        for day, intervals in value.items():
            try:
                _normalize_day(intervals)
            except ValueError as exc:
                raise ValueError(f"{day}: {exc}") from None
        return value

    @field_validator("workday_hours")
    @classmethod
    def _workday_valid(cls, value: list[tuple[int, int]] | None) -> list[tuple[int, int]] | None:
        if value is not None:
            _normalize_day(value)
        return value

    @field_validator("dates")
    @classmethod
    def _dates_valid(
        cls, value: dict[dt.date, list[tuple[int, int]]]
    ) -> dict[dt.date, list[tuple[int, int]]]:
        for day, intervals in value.items():
            try:
                check_year(day.year)
                _normalize_day(intervals)
            except ValueError as exc:
                raise ValueError(f"{day.isoformat()}: {exc}") from None
        return value

    def week_hours(self) -> tuple[tuple[tuple[int, int], ...], ...]:
        """The regular week, Monday first, each day normalized."""
        return tuple(_normalize_day(self.week.get(day, [])) for day in WEEKDAYS)

    def weekend_workday_hours(self) -> tuple[tuple[int, int], ...]:
        """Hours of a weekend day that an official transfer made working."""
        if self.workday_hours is not None:
            return _normalize_day(self.workday_hours)
        return _normalize_day(self.week.get("mon", []))

    def date_hours(self) -> dict[dt.date, tuple[tuple[int, int], ...]]:
        """Explicit per-date hours, normalized."""
        return {day: _normalize_day(hours) for day, hours in self.dates.items()}
