"""Agent overrides: helpdesk fields, tags or priorities that express an agent's explicit choice.

The regulation needs people for some decisions: a critical product error is an emergency only
once support staff confirm it (§ 5.1, § 5.3), and staff may move a ticket to consulting (§ 5.8).
Agents do that in their helpdesk; ``mappings/overrides.yaml`` names which field value, tag or
priority means what. An agent's choice always beats the automatic classification.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from connector.policy.ticket import TicketSnapshot, field_text

OverrideKind = Literal["urgency", "level", "topic", "scope"]


class OverrideRule(BaseModel):
    """One signal: a field (optionally with a value), a tag or a priority; and what it sets.

    Without ``set``, the field's own value is taken (e.g. a select "SLA topic" whose values
    are topic ids).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    field: str | None = None
    value: str | None = None
    tag: str | None = None
    priority: str | None = None
    set: str | None = None
    note: str | None = None

    @model_validator(mode="after")
    def _one_signal(self) -> OverrideRule:
        signals = [s for s in (self.field, self.tag, self.priority) if s is not None]
        if len(signals) != 1:
            raise ValueError("give exactly one of 'field', 'tag' or 'priority'")
        if self.value is not None and self.field is None:
            raise ValueError("'value' goes with 'field'")
        if self.set is None and (self.field is None or self.value is not None):
            raise ValueError("'set' is needed unless a bare 'field' gives the value itself")
        return self

    def signal(self) -> str:
        if self.field is not None:
            return f"field {self.field}" + (f" = {self.value!r}" if self.value else "")
        if self.tag is not None:
            return f"tag {self.tag!r}"
        return f"priority {self.priority!r}"

    def chosen(self, ticket: TicketSnapshot) -> str | None:
        """The value this rule sets on ``ticket``, or None when its signal is absent."""
        if self.tag is not None:
            wanted = self.tag.strip().lower()
            present = any(tag.strip().lower() == wanted for tag in ticket.tags)
            return self.set if present else None
        if self.priority is not None:
            same = (ticket.priority or "").strip().lower() == self.priority.strip().lower()
            return self.set if same else None
        values = [v.strip() for v in field_text(ticket.fields.get(self.field or "")) if v.strip()]
        if self.value is None:
            return values[0] if values else None
        return self.set if self.value.strip().lower() in {v.lower() for v in values} else None


class OverridesFile(BaseModel):
    """``mappings/overrides.yaml``: the managed tag prefix and the agent-override signals."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tag_prefix: str = Field(default="sla:", min_length=1)
    urgency: list[OverrideRule] = Field(default_factory=list)
    level: list[OverrideRule] = Field(default_factory=list)
    topic: list[OverrideRule] = Field(default_factory=list)
    scope: list[OverrideRule] = Field(default_factory=list)

    @field_validator("tag_prefix")
    @classmethod
    def _prefix_is_namespaced(cls, value: str) -> str:
        if value[-1] not in ":/-_.":
            raise ValueError("end the prefix with ':' (or '/', '-', '_', '.') so tags stay apart")
        return value

    @model_validator(mode="after")
    def _override_tags_not_managed(self) -> OverridesFile:
        for kind in ("urgency", "level", "topic", "scope"):
            for index, rule in enumerate(getattr(self, kind)):
                if rule.tag is not None and rule.tag.lower().startswith(self.tag_prefix.lower()):
                    raise ValueError(
                        f"{kind}[{index}].tag: {rule.tag!r} is under the managed prefix "
                        f"{self.tag_prefix!r}, which the connector rewrites; use another tag"
                    )
        return self


class AgentChoice(BaseModel):
    """An agent's explicit choice for one kind, with the signal it came from."""

    model_config = ConfigDict(frozen=True)

    kind: OverrideKind
    value: str
    signal: str


def agent_choices(ticket: TicketSnapshot, overrides: OverridesFile) -> dict[str, AgentChoice]:
    """Per kind, the first override rule whose signal is on the ticket."""
    found: dict[str, AgentChoice] = {}
    kinds: tuple[OverrideKind, ...] = ("urgency", "level", "topic", "scope")
    for kind in kinds:
        for rule in getattr(overrides, kind):
            value = rule.chosen(ticket)
            if value is not None:
                found[kind] = AgentChoice(kind=kind, value=value, signal=rule.signal())
                break
    return found
