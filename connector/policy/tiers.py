"""Which Bitrix license tier a ticket's customer has: ordered admin rules, first match wins.

A helpdesk knows organizations, e-mail addresses and custom fields, not license tiers; the
rules in ``mappings/tiers.yaml`` bridge the two. Within one rule every condition given must
hold; a condition with a list matches any of its values.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from connector.policy.ticket import Party, TicketSnapshot, field_text

TIER_IDS = ("partner", "commercial", "enterprise", "noncommercial")


def _lowered(values: list[str]) -> list[str]:
    return [value.strip().lower() for value in values]


class FieldCondition(BaseModel):
    """A named attribute of the customer, organization or ticket (e.g. a license type)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    of: Literal["customer", "organization", "ticket"] = "organization"
    name: str = Field(min_length=1)
    equals: list[str] | None = None
    pattern: str | None = Field(default=None, description="regular expression, searched")

    @field_validator("pattern")
    @classmethod
    def _pattern_compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regular expression {value!r}: {exc}") from None
        return value

    @model_validator(mode="after")
    def _one_test(self) -> FieldCondition:
        if (self.equals is None) == (self.pattern is None):
            raise ValueError("give exactly one of 'equals' or 'pattern'")
        return self

    def matches(self, ticket: TicketSnapshot) -> bool:
        holder: dict[str, object]
        if self.of == "ticket":
            holder = dict(ticket.fields)
        else:
            party = ticket.customer if self.of == "customer" else ticket.organization
            if party is None:
                return False
            holder = dict(party.fields)
        values = field_text(holder.get(self.name))  # type: ignore[arg-type]
        if self.equals is not None:
            wanted = set(_lowered(self.equals))
            return any(value.strip().lower() in wanted for value in values)
        regex = re.compile(self.pattern or "", re.IGNORECASE)
        return any(regex.search(value) for value in values)


class TierRule(BaseModel):
    """One admin rule: conditions, the tier they give, and where the rule comes from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = None
    tier: str
    organization_id: list[str] | None = None
    organization_name: list[str] | None = None
    email: list[str] | None = None
    email_domain: list[str] | None = None
    group: list[str] | None = Field(default=None, description="Zammad group or Znuny queue")
    field: FieldCondition | None = None
    note: str | None = None
    source: str | None = None

    @field_validator("organization_id", mode="before")
    @classmethod
    def _ids_as_text(cls, value: object) -> object:
        if isinstance(value, list):
            return [str(item) for item in value]
        return value

    @model_validator(mode="after")
    def _has_condition(self) -> TierRule:
        conditions = (
            self.organization_id,
            self.organization_name,
            self.email,
            self.email_domain,
            self.group,
            self.field,
        )
        if all(condition is None for condition in conditions):
            raise ValueError(
                "a rule needs at least one condition: organization_id, organization_name, "
                "email, email_domain, group or field"
            )
        return self

    def label(self, index: int) -> str:
        return self.name or f"rules[{index}]"

    def matches(self, ticket: TicketSnapshot) -> bool:
        org: Party | None = ticket.organization
        customer: Party | None = ticket.customer
        if self.organization_id is not None and (
            org is None or org.id not in set(self.organization_id)
        ):
            return False
        if self.organization_name is not None and (
            org is None
            or org.name is None
            or org.name.strip().lower() not in _lowered(self.organization_name)
        ):
            return False
        if self.email is not None and (
            customer is None
            or customer.email is None
            or customer.email.strip().lower() not in _lowered(self.email)
        ):
            return False
        if self.email_domain is not None and not _domain_matches(
            customer.email_domain if customer else None, self.email_domain
        ):
            return False
        if self.group is not None and (
            ticket.group is None or ticket.group.strip().lower() not in _lowered(self.group)
        ):
            return False
        return self.field is None or self.field.matches(ticket)


def _domain_matches(domain: str | None, wanted: list[str]) -> bool:
    """``example.ru`` matches ``example.ru`` and its subdomains (``mail.example.ru``)."""
    if domain is None:
        return False
    for entry in _lowered(wanted):
        entry = entry.lstrip("@")
        if domain == entry or domain.endswith("." + entry):
            return True
    return False


class TiersFile(BaseModel):
    """``mappings/tiers.yaml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default_tier: str = "noncommercial"
    default_note: str | None = None
    rules: list[TierRule] = Field(default_factory=list)


class TierMatch(BaseModel):
    """The tier a ticket got, and which rule gave it."""

    model_config = ConfigDict(frozen=True)

    tier: str
    rule: str | None = Field(description="rule name, or None when the default applied")
    note: str | None = None
    source: str | None = None


def resolve_tier(ticket: TicketSnapshot, tiers: TiersFile) -> TierMatch:
    """Apply the rules in order; the first that matches wins, else the default tier."""
    for index, rule in enumerate(tiers.rules):
        if rule.matches(ticket):
            return TierMatch(
                tier=rule.tier, rule=rule.label(index), note=rule.note, source=rule.source
            )
    return TierMatch(tier=tiers.default_tier, rule=None, note=tiers.default_note)
