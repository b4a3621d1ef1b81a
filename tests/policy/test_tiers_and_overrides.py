"""Tier rules (first match wins) and agent-override signals."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from pydantic import ValidationError

from connector.policy.overrides import OverridesFile, agent_choices
from connector.policy.ticket import Party, TicketSnapshot
from connector.policy.tiers import TiersFile, resolve_tier

CREATED = dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.UTC)


def ticket(**changes: Any) -> TicketSnapshot:
    base: dict[str, Any] = {"id": "1", "created_at": CREATED, "subject": "s", "body": "b"}
    base.update(changes)
    return TicketSnapshot.model_validate(base)


TIERS = TiersFile.model_validate(
    {
        "default_tier": "noncommercial",
        "rules": [
            {"name": "by-id", "tier": "enterprise", "organization_id": [42, "43"]},
            {"name": "by-name", "tier": "partner", "organization_name": ["Веб-Студия Альфа"]},
            {"name": "by-email", "tier": "commercial", "email": ["Boss@Shop.example"]},
            {"name": "by-domain", "tier": "partner", "email_domain": ["studio.example"]},
            {"name": "by-group", "tier": "enterprise", "group": ["VIP"]},
            {
                "name": "by-field",
                "tier": "commercial",
                "field": {"of": "organization", "name": "license", "equals": ["Коммерческая"]},
            },
            {
                "name": "by-key",
                "tier": "commercial",
                "field": {"of": "customer", "name": "key", "pattern": r"^[A-Z]{3}-\d+$"},
            },
            {
                "name": "both",
                "tier": "partner",
                "email_domain": ["multi.example"],
                "group": ["Partners"],
            },
        ],
    }
)


@pytest.mark.parametrize(
    ("changes", "tier", "rule"),
    [
        # organization id, compared as text whatever type the YAML had
        ({"organization": Party(id="42")}, "enterprise", "by-id"),
        ({"organization": Party(id="43")}, "enterprise", "by-id"),
        # organization name, case-insensitive, Cyrillic
        ({"organization": Party(name="веб-студия альфа")}, "partner", "by-name"),
        # exact e-mail, case-insensitive
        ({"customer": Party(email="boss@shop.example")}, "commercial", "by-email"),
        # e-mail domain and its subdomains
        ({"customer": Party(email="dev@studio.example")}, "partner", "by-domain"),
        ({"customer": Party(email="dev@eu.studio.example")}, "partner", "by-domain"),
        # a look-alike domain is not a subdomain
        ({"customer": Party(email="dev@notstudio.example")}, "noncommercial", None),
        # helpdesk group / queue
        ({"group": "vip"}, "enterprise", "by-group"),
        # organization field with a value list
        (
            {"organization": Party(fields={"license": "коммерческая"})},
            "commercial",
            "by-field",
        ),
        # customer field matched by pattern
        ({"customer": Party(fields={"key": "ABC-123"})}, "commercial", "by-key"),
        ({"customer": Party(fields={"key": "abc-12x"})}, "noncommercial", None),
        # all conditions of one rule must hold
        ({"customer": Party(email="a@multi.example")}, "noncommercial", None),
        ({"customer": Party(email="a@multi.example"), "group": "Partners"}, "partner", "both"),
        # first match wins: id rule (enterprise) before the domain rule (partner)
        (
            {"organization": Party(id="42"), "customer": Party(email="x@studio.example")},
            "enterprise",
            "by-id",
        ),
        # nothing known about the customer: the default tier
        ({}, "noncommercial", None),
    ],
)
def test_resolve_tier(changes: dict[str, Any], tier: str, rule: str | None) -> None:
    match = resolve_tier(ticket(**changes), TIERS)
    assert (match.tier, match.rule) == (tier, rule)


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"tier": "partner"}, "at least one condition"),
        ({"tier": "partner", "field": {"name": "x"}}, "exactly one of 'equals' or 'pattern'"),
        ({"tier": "partner", "field": {"name": "x", "pattern": "("}}, "invalid regular expression"),
        ({"tier": "partner", "colour": ["red"]}, "Extra inputs are not permitted"),
    ],
)
def test_bad_tier_rules(rule: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        TiersFile.model_validate({"rules": [rule]})
    error = caught.value.errors()[0]
    assert error["loc"][:2] == ("rules", 0)
    assert message in str(error["msg"])


OVERRIDES = OverridesFile.model_validate(
    {
        "tag_prefix": "sla:",
        "urgency": [
            {"field": "sla_override", "value": "emergency", "set": "emergency"},
            {"field": "sla_override", "value": "not_emergency", "set": "standard"},
            {"tag": "Emergency-Confirmed", "set": "emergency"},
            {"priority": "3 high", "set": "emergency"},
        ],
        "level": [{"field": "sla_override", "value": "consulting", "set": "consulting"}],
        "topic": [{"field": "sla_topic"}],
        "scope": [{"field": "sla_scope"}],
    }
)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        # a select value
        ({"fields": {"sla_override": "emergency"}}, {"urgency": "emergency"}),
        ({"fields": {"sla_override": "not_emergency"}}, {"urgency": "standard"}),
        # a tag, case-insensitive
        ({"tags": ("emergency-confirmed",)}, {"urgency": "emergency"}),
        # the priority
        ({"priority": "3 high"}, {"urgency": "emergency"}),
        # consulting is a level choice
        ({"fields": {"sla_override": "consulting"}}, {"level": "consulting"}),
        # bare fields give their own value; multiselects their first
        (
            {"fields": {"sla_topic": "development", "sla_scope": ["out"]}},
            {"topic": "development", "scope": "out"},
        ),
        # empty values are no choice
        ({"fields": {"sla_topic": "", "sla_override": None}}, {}),
        # first rule per kind wins: the field before the tag
        (
            {"fields": {"sla_override": "not_emergency"}, "tags": ("emergency-confirmed",)},
            {"urgency": "standard"},
        ),
    ],
)
def test_agent_choices(changes: dict[str, Any], expected: dict[str, str]) -> None:
    found = agent_choices(ticket(**changes), OVERRIDES)
    assert {kind: choice.value for kind, choice in found.items()} == expected


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"urgency": [{"tag": "sla:emergency", "set": "emergency"}]}, "managed prefix"),
        ({"urgency": [{"tag": "x", "field": "y", "set": "emergency"}]}, "exactly one of"),
        ({"urgency": [{"tag": "x"}]}, "'set' is needed"),
        (
            {"urgency": [{"tag": "x", "value": "y", "set": "emergency"}]},
            "'value' goes with 'field'",
        ),
        ({"tag_prefix": "sla"}, "end the prefix"),
    ],
)
def test_bad_overrides(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        OverridesFile.model_validate(data)
