"""Znuny dynamic fields as the sandbox keeps them: definitions, value checks, search operators.

Facts (``docs/znuny-facts.md`` §2-§3):

* A dynamic field has a ``Name`` (letters and digits), a ``FieldType`` and a ``Config``; the
  definitions that worked on a live instance are DateTime ``{DefaultValue, YearsInPast,
  YearsInFuture, YearsPeriod, DateRestriction, Link}`` and Dropdown/Multiselect
  ``{PossibleValues: {key: label}, PossibleNone, TranslatableValues, TreeView, DefaultValue}``.
* Values are checked by the field backend: DateTime must be a valid ``YYYY-MM-DD HH:MM:SS``
  (no offset, in ``OTRSTimeZone``), Date must be ``YYYY-MM-DD 00:00:00``
  (``Driver/Date.pm:114``), Dropdown and Multiselect values must be keys of ``PossibleValues``;
  an unknown field name is an invalid parameter [live].
* Setting an unchanged value raises no event (``Backend.pm:531-547`` ``ValueIsDifferent``).
* TicketSearch filters on fields only through operator hashes (``Equals``, ``Like``,
  ``GreaterThan``, ``GreaterThanEquals``, ``SmallerThan``, ``SmallerThanEquals``, ``Empty``).

Sandbox simplification: an empty value (``""`` or ``[]``) clears the field, and a cleared field
reads back as ``null`` like one that was never set.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from connector.errors import ConfigError, ConfigIssue

FieldType = Literal["DateTime", "Date", "Dropdown", "Multiselect", "Text", "TextArea", "Checkbox"]
#: a stored value: a string, a list of keys (Multiselect), or None when unset
Value = str | list[str] | None
DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
_OPERATORS = frozenset(
    {"Equals", "Like", "GreaterThan", "GreaterThanEquals", "SmallerThan", "SmallerThanEquals"}
)


class InvalidValue(ValueError):
    """The field backend refuses a value (the operation answers ``*.InvalidParameter``)."""


class DynamicFieldDefinition(BaseModel):
    """One field as ``DynamicFieldAdd`` stores it (keys spelled as in Znuny's YAML export)."""

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)

    Name: str = Field(pattern=r"^[A-Za-z0-9]+$")
    Label: str = ""
    FieldType: FieldType
    ObjectType: Literal["Ticket", "Article", "CustomerUser", "CustomerCompany"] = "Ticket"
    config: dict[str, Any] = Field(default_factory=dict, alias="Config")
    ValidID: int = 1
    FieldOrder: int = 0

    @property
    def possible_values(self) -> Mapping[str, Any]:
        values = self.config.get("PossibleValues") or {}
        return {str(key): label for key, label in values.items()}


#: the ticket fields a fresh Znuny 7 ships with (they appear in the captured TicketCreate)
STOCK_FIELDS: tuple[DynamicFieldDefinition, ...] = (
    DynamicFieldDefinition(Name="ProcessManagementProcessID", FieldType="Text", FieldOrder=1),
    DynamicFieldDefinition(Name="ProcessManagementActivityID", FieldType="Text", FieldOrder=2),
    DynamicFieldDefinition(Name="ProcessManagementAttachment", FieldType="TextArea", FieldOrder=3),
    DynamicFieldDefinition(Name="TicketCalendarStartTime", FieldType="DateTime", FieldOrder=4),
    DynamicFieldDefinition(Name="TicketCalendarEndTime", FieldType="DateTime", FieldOrder=5),
)


class DynamicFieldRegistry:
    """Thread-safe set of field definitions, in ``FieldOrder``."""

    def __init__(self, definitions: Iterable[DynamicFieldDefinition] = STOCK_FIELDS) -> None:
        self._lock = threading.Lock()
        self._fields: dict[str, DynamicFieldDefinition] = {}
        for definition in definitions:
            self.add(definition)

    def add(self, definition: DynamicFieldDefinition) -> None:
        """Create a field; a second field with the same name is refused, as in Znuny."""
        with self._lock:
            if definition.Name in self._fields:
                raise ValueError(f"dynamic field {definition.Name} already exists")
            order = definition.FieldOrder or len(self._fields) + 1
            self._fields[definition.Name] = definition.model_copy(update={"FieldOrder": order})

    def import_yaml(self, text: str) -> list[str]:
        """Create the fields of an import file; returns the names created.

        Accepts Znuny's export format ``{DynamicFields: {Name: {...}}}`` (the Admin UI's
        configuration import/export), ``{DynamicFields: [...]}`` or a bare list. Fields that
        already exist are skipped, like ``_DynamicFieldsCreateIfNotExists``.
        """
        document = yaml.safe_load(text)
        if isinstance(document, dict):
            document = document.get("DynamicFields")
        if isinstance(document, dict):
            document = list(document.values())
        if not isinstance(document, list):
            issue = ConfigIssue("dynamic fields", "DynamicFields", "expected fields")
            raise ConfigError([issue])
        created: list[str] = []
        for index, raw in enumerate(document):
            try:
                definition = DynamicFieldDefinition.model_validate(raw)
            except ValidationError as exc:
                issues = [
                    ConfigIssue(
                        "dynamic fields", f"[{index}]." + ".".join(map(str, e["loc"])), e["msg"]
                    )
                    for e in exc.errors()
                ]
                raise ConfigError(issues) from None
            if self.get(definition.Name) is None:
                self.add(definition)
                created.append(definition.Name)
        return created

    def get(self, name: str) -> DynamicFieldDefinition | None:
        with self._lock:
            return self._fields.get(name)

    def ticket_fields(self) -> list[DynamicFieldDefinition]:
        """Valid fields of object type Ticket: those TicketGet lists with ``DynamicFields=1``."""
        with self._lock:
            fields = [f for f in self._fields.values() if f.ObjectType == "Ticket"]
        return sorted((f for f in fields if f.ValidID == 1), key=lambda f: f.FieldOrder)


def normalise(definition: DynamicFieldDefinition, raw: object, now: dt.datetime) -> Value:
    """The value to store for ``raw``, or :class:`InvalidValue` if the backend refuses it.

    Args:
        definition: the field being written.
        raw: a JSON scalar, or a list for Multiselect; ``""``/``[]`` clear the field.
        now: the current time in ``OTRSTimeZone`` (naive), for ``DateRestriction``.
    """
    kind = definition.FieldType
    if kind == "Multiselect":
        items = raw if isinstance(raw, list) else [raw]
        keys = [_text(item) for item in items if item not in ("", None)]
        unknown = [key for key in keys if key not in definition.possible_values]
        if unknown:
            raise InvalidValue(f"{unknown} not in PossibleValues")
        return keys or None
    if isinstance(raw, list):
        raise InvalidValue("a list for a single-value field")
    text = _text(raw)
    if text == "":
        return None
    if kind in ("DateTime", "Date"):
        moment = _datetime(text)
        if kind == "Date" and moment.time() != dt.time(0):
            raise InvalidValue("a Date field takes YYYY-MM-DD 00:00:00")
        restriction = definition.config.get("DateRestriction") or ""
        if restriction == "DisablePastDates" and moment < now.replace(microsecond=0):
            raise InvalidValue("a date in the past")
        if restriction == "DisableFutureDates" and moment > now:
            raise InvalidValue("a date in the future")
    elif kind == "Dropdown":
        if text not in definition.possible_values:
            raise InvalidValue(f"{text!r} not in PossibleValues")
    elif kind == "Checkbox" and text not in ("0", "1"):
        raise InvalidValue("a checkbox takes 0 or 1")
    return text


def matches(value: Value, operators: Mapping[str, Any]) -> bool:
    """Whether a stored value satisfies a TicketSearch operator hash (all operators must hold).

    Multiselect values match when any selected key does. An unknown operator matches nothing
    (Znuny's driver refuses to build the SQL and the whole search returns no hits).
    """
    items = value if isinstance(value, list) else ([] if value is None else [value])
    for operator, wanted in operators.items():
        if operator == "Empty":
            if bool(items) == _truthy(wanted):
                return False
            continue
        if operator not in _OPERATORS:
            return False
        candidates = [_text(w) for w in wanted] if isinstance(wanted, list) else [_text(wanted)]
        if not any(_compare(item, operator, c) for item in items for c in candidates):
            return False
    return True


def _compare(stored: str, operator: str, wanted: str) -> bool:
    if operator == "Equals":
        return stored == wanted
    if operator == "Like":
        pattern = "^" + ".*".join(re.escape(part) for part in wanted.split("*")) + "$"
        return re.match(pattern, stored, re.IGNORECASE | re.DOTALL) is not None
    if operator == "GreaterThan":
        return stored > wanted
    if operator == "GreaterThanEquals":
        return stored >= wanted
    if operator == "SmallerThan":
        return stored < wanted
    return stored <= wanted  # SmallerThanEquals


def _datetime(text: str) -> dt.datetime:
    if not _DATETIME.match(text):
        raise InvalidValue("not YYYY-MM-DD HH:MM:SS")
    try:
        return dt.datetime.strptime(text, DATETIME_FORMAT)
    except ValueError:
        raise InvalidValue("not a valid date and time") from None


def _text(raw: object) -> str:
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise InvalidValue("not a string")
    if isinstance(raw, float) and raw.is_integer():
        return str(int(raw))
    return str(raw)


def _truthy(value: object) -> bool:
    return str(value).strip() not in ("", "0")
