"""Dynamic-field backends: value checks, search operators, YAML import."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from connector.errors import ConfigError
from connector.sandbox.znuny.dynamic_fields import (
    DynamicFieldDefinition,
    DynamicFieldRegistry,
    InvalidValue,
    matches,
    normalise,
)

NOW = dt.datetime(2026, 11, 28, 4, 0, 7)
DATETIME = DynamicFieldDefinition(Name="Due", FieldType="DateTime")
DATE = DynamicFieldDefinition(Name="Day", FieldType="Date")
FUTURE_ONLY = DynamicFieldDefinition(
    Name="Next", FieldType="DateTime", Config={"DateRestriction": "DisablePastDates"}
)
DROPDOWN = DynamicFieldDefinition(
    Name="Tier", FieldType="Dropdown", Config={"PossibleValues": {"gold": "Gold", "1": "One"}}
)
MULTI = DynamicFieldDefinition(
    Name="Scope", FieldType="Multiselect", Config={"PossibleValues": {"email": "E", "chat": "C"}}
)
TEXT = DynamicFieldDefinition(Name="Note", FieldType="Text")


@pytest.mark.parametrize(
    ("definition", "raw", "stored"),
    [
        (DATETIME, "2026-12-01 12:00:00", "2026-12-01 12:00:00"),
        (DATETIME, "", None),
        (DATE, "2026-12-01 00:00:00", "2026-12-01 00:00:00"),
        (FUTURE_ONLY, "2026-11-29 00:00:00", "2026-11-29 00:00:00"),
        (DROPDOWN, "gold", "gold"),
        (DROPDOWN, 1, "1"),
        (MULTI, ["email", "chat"], ["email", "chat"]),
        (MULTI, "email", ["email"]),
        (MULTI, [], None),
        (TEXT, "anything", "anything"),
        (TEXT, 42, "42"),
    ],
)
def test_accepted_values(definition: DynamicFieldDefinition, raw: Any, stored: Any) -> None:
    assert normalise(definition, raw, NOW) == stored


@pytest.mark.parametrize(
    ("definition", "raw"),
    [
        (DATETIME, "2026-12-01T12:00:00Z"),
        (DATETIME, "2026-12-01 12:00"),
        (DATETIME, "2026-13-01 12:00:00"),
        (DATE, "2026-12-01 10:00:00"),
        (FUTURE_ONLY, "2026-11-27 00:00:00"),
        (DROPDOWN, "platinum"),
        (DROPDOWN, ["gold"]),
        (MULTI, ["email", "fax"]),
        (TEXT, ["a"]),
        (TEXT, True),
    ],
)
def test_refused_values(definition: DynamicFieldDefinition, raw: Any) -> None:
    with pytest.raises(InvalidValue):
        normalise(definition, raw, NOW)


@pytest.mark.parametrize(
    ("value", "operators", "expected"),
    [
        ("2026-12-01 12:00:00", {"SmallerThanEquals": "2026-12-01 12:00:00"}, True),
        ("2026-12-01 12:00:01", {"SmallerThanEquals": "2026-12-01 12:00:00"}, False),
        (
            "2026-12-01 12:00:00",
            {"GreaterThan": "2026-12-01 11:00:00", "SmallerThan": "2027"},
            True,
        ),
        (None, {"Empty": 1}, True),
        ("x", {"Empty": 1}, False),
        ("x", {"Empty": 0}, True),
        (["email", "chat"], {"Equals": "chat"}, True),
        ("gold", {"Equals": ["silver", "gold"]}, True),
        ("Premium Gold", {"Like": "*gold"}, True),
        ("gold", {"Between": "x"}, False),
        (None, {"Equals": "x"}, False),
    ],
)
def test_search_operators(value: Any, operators: dict[str, Any], expected: bool) -> None:
    assert matches(value, operators) is expected


def test_stock_fields_exist_and_new_ones_follow_in_order() -> None:
    registry = DynamicFieldRegistry()
    registry.add(TEXT)
    names = [f.Name for f in registry.ticket_fields()]
    assert names[:2] == ["ProcessManagementProcessID", "ProcessManagementActivityID"]
    assert names[-1] == "Note"


def test_import_yaml_creates_missing_fields_only() -> None:
    """Znuny's export format: fields keyed by name (a bare list is accepted too)."""
    registry = DynamicFieldRegistry()
    registry.add(TEXT)
    created = registry.import_yaml(
        """
DynamicFields:
  Note:
    Name: Note
    FieldType: Text
  SLADueDate:
    Name: SLADueDate
    Label: SLA due date
    FieldType: DateTime
    ObjectType: Ticket
    InternalField: 0
    Config: {DefaultValue: '', YearsInPast: 0, YearsInFuture: 5, YearsPeriod: 0,
             DateRestriction: '', Link: ''}
"""
    )
    assert created == ["SLADueDate"]
    definition = registry.get("SLADueDate")
    assert definition is not None
    assert definition.config["YearsInFuture"] == 5


def test_import_yaml_names_the_bad_entry() -> None:
    with pytest.raises(ConfigError, match=r"\[1\]\.FieldType"):
        DynamicFieldRegistry().import_yaml(
            "- {Name: A, FieldType: Text}\n- {Name: B, FieldType: Web}\n"
        )
