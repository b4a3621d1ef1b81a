"""Zammad's object manager: custom attributes of tickets, users, organizations and groups.

Behaviour reproduced (facts §4.7, §4.4):

* ``POST /api/v1/object_manager_attributes`` answers **201** with ``to_create: true,
  to_migrate: true``; the attribute is **not usable** (it has no database column) until
  ``POST /api/v1/object_manager_attributes_execute_migrations`` ran. Until then a ticket ``PUT``
  silently drops it like any unknown key.
* An update (``PUT …/:id``, ``data_option`` always sent, the type cannot change) and a delete
  are also only pending (``to_config`` / ``to_delete``) until the next migration run.
* Data types ``input`` (``type``, ``maxlength``), ``select``/``multiselect`` (``options``),
  ``tree_select`` (nested ``options``, values joined with ``::``), ``boolean``, ``integer``
  (``min``/``max``), ``date`` (``diff``), ``datetime`` (``future``, ``past``, ``diff``), plus
  ``textarea``/``richtext``. Requiring those ``data_option`` keys on create is this sandbox's
  reading of §4.7, which lists them per type.
* Values written through the API are checked by :mod:`~connector.sandbox.zammad.values`
  (past/future datetimes, select options, ISO times).
* The attribute list also contains Zammad's built-in attributes (``editable: false``), as the real
  ``GET /api/v1/object_manager_attributes`` does.
"""

from __future__ import annotations

import copy
import datetime as dt
import re
from collections.abc import Callable, Mapping
from typing import Any

from connector.sandbox.zammad import values
from connector.sandbox.zammad.errors import ApiError, NotFound, invalid
from connector.sandbox.zammad.times import with_iso_times

Row = dict[str, Any]
OBJECTS = ("Ticket", "User", "Organization", "Group")
DATA_TYPES = (
    "input",
    "textarea",
    "richtext",
    "select",
    "multiselect",
    "tree_select",
    "boolean",
    "integer",
    "date",
    "datetime",
)
_REQUIRED_OPTIONS = {
    "input": ("type", "maxlength"),
    "select": ("options",),
    "multiselect": ("options",),
    "tree_select": ("options",),
    "integer": ("min", "max"),
    "date": ("diff",),
    "datetime": ("future", "past", "diff"),
}
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,59}$")
_RESERVED = frozenset({"id", "action", "tags", "type", "object", "article", "number"})
_BUILTIN = {
    "Ticket": (
        ("number", "input"),
        ("title", "input"),
        ("customer_id", "user_autocompletion"),
        ("organization_id", "autocompletion_ajax_customer_organization"),
        ("group_id", "tree_select"),
        ("owner_id", "select"),
        ("state_id", "select"),
        ("pending_time", "datetime"),
        ("priority_id", "select"),
    ),
    "User": (
        ("login", "input"),
        ("firstname", "input"),
        ("lastname", "input"),
        ("email", "input"),
        ("organization_id", "autocompletion_ajax"),
        ("vip", "boolean"),
        ("note", "richtext"),
    ),
    "Organization": (
        ("name", "input"),
        ("shared", "boolean"),
        ("domain", "input"),
        ("vip", "boolean"),
        ("note", "richtext"),
    ),
    "Group": (("name", "input"), ("follow_up_possible", "select"), ("note", "richtext")),
}


class ObjectManager:
    """Attribute definitions and the validation of attribute values.

    Args:
        now: the sandbox clock (aware UTC), for timestamps and past/future checks.
    """

    def __init__(self, now: Callable[[], dt.datetime]) -> None:
        self._now = now
        self._rows: dict[int, Row] = {}
        self._last_id = 0
        for obj, attributes in _BUILTIN.items():
            for name, data_type in attributes:
                self._insert(obj, name, data_type, {}, editable=False, actor_id=1)

    # --- definitions ----------------------------------------------------------------------

    def listing(self) -> list[Row]:
        """Every attribute record, as ``GET /api/v1/object_manager_attributes`` lists them."""
        return [self.show(row) for row in self._rows.values()]

    def get(self, attr_id: object) -> Row:
        """The record ``attr_id``; 404 if there is none."""
        row = self._rows.get(int(str(attr_id))) if str(attr_id).isdigit() else None
        if row is None:
            raise NotFound("ObjectManager::Attribute", attr_id)
        return row

    @staticmethod
    def show(row: Row) -> Row:
        """The JSON of one record."""
        return with_iso_times(row)

    def create(self, params: Mapping[str, Any], actor_id: int) -> Row:
        """Validate and add a pending attribute (``to_create``/``to_migrate``)."""
        obj, name = str(params.get("object") or ""), str(params.get("name") or "")
        if obj not in OBJECTS:
            raise invalid(f"Object is not one of {', '.join(OBJECTS)}")
        if not _NAME.match(name) or name in _RESERVED:
            raise invalid(f"Name {name!r} is not allowed (a-z, 0-9 and _, starting with a letter)")
        if self._find(obj, name) is not None:
            raise ApiError(422, "Object already exists!", "Object already exists!")
        data_type = str(params.get("data_type") or "")
        if data_type not in DATA_TYPES:
            raise invalid(f"Data type {data_type!r} is not one of {', '.join(DATA_TYPES)}")
        option = _data_option(data_type, params.get("data_option"))
        row = self._insert(obj, name, data_type, option, editable=True, actor_id=actor_id)
        for key in ("display", "active", "position", "screens"):
            if key in params:
                row[key] = copy.deepcopy(params[key])
        row.update(to_create=True, to_migrate=True)
        return row

    def update(self, attr_id: object, params: Mapping[str, Any], actor_id: int) -> Row:
        """Stage a change of ``data_option`` (applied by the next migration) and other keys."""
        row = self.get(attr_id)
        if not row["editable"]:
            raise invalid(f"Attribute {row['name']!r} is not editable")
        if params.get("data_type", row["data_type"]) != row["data_type"]:
            raise invalid("Data type can't be changed")
        row["data_option_new"] = _data_option(row["data_type"], params.get("data_option"))
        row["to_config"] = True
        for key in ("display", "active", "position", "screens"):
            if key in params:
                row[key] = copy.deepcopy(params[key])
        row.update(updated_by_id=actor_id, updated_at=self._now())
        return row

    def delete(self, attr_id: object) -> None:
        """Mark an attribute for deletion by the next migration run."""
        row = self.get(attr_id)
        if not row["editable"]:
            raise invalid(f"Attribute {row['name']!r} is not editable")
        row["to_delete"] = True

    def execute_migrations(self) -> list[tuple[str, str]]:
        """Create, reconfigure and drop pending attributes; returns the dropped (object, name)."""
        dropped: list[tuple[str, str]] = []
        for attr_id, row in list(self._rows.items()):
            if row["to_delete"]:
                del self._rows[attr_id]
                dropped.append((row["object"], row["name"]))
                continue
            if row["to_config"]:
                row["data_option"], row["data_option_new"] = row["data_option_new"], {}
            row.update(to_create=False, to_migrate=False, to_config=False)
        return dropped

    def columns(self, obj: str) -> dict[str, Row]:
        """Usable (migrated) custom attributes of ``obj``, by name."""
        return {
            row["name"]: row
            for row in self._rows.values()
            if row["object"] == obj and row["editable"] and not row["to_create"]
        }

    def required_on_edit(self, obj: str, permission: str) -> list[str]:
        """Usable attributes the ``edit`` screen marks required for ``permission`` (§4.4)."""
        return [
            name
            for name, row in self.columns(obj).items()
            if ((row.get("screens") or {}).get("edit") or {}).get(permission, {}).get("required")
        ]

    # --- values ---------------------------------------------------------------------------

    def checked_values(self, obj: str, given: Mapping[str, Any]) -> Row:
        """Values for the Python API (an admin in the UI): names must be usable attributes."""
        columns = self.columns(obj)
        unknown = sorted(set(given) - set(columns))
        if unknown:
            raise ValueError(f"{obj} has no attribute {unknown[0]!r}: create and migrate it first")
        return {name: self.coerce(obj, name, value) for name, value in given.items()}

    def coerce(self, obj: str, name: str, value: object) -> Any:
        """The stored form of ``value`` for usable attribute ``name`` of ``obj``; 422 if invalid."""
        return values.coerce(name, self.columns(obj)[name], value)

    def check_time(self, obj: str, name: str, value: object) -> None:
        """Apply a datetime attribute's ``past``/``future`` flags to a value an API call writes."""
        row = self.columns(obj).get(name)
        if row is not None:
            values.check_time(name, row, value, self._now())

    def _find(self, obj: str, name: str) -> Row | None:
        return next(
            (r for r in self._rows.values() if r["object"] == obj and r["name"] == name), None
        )

    def _insert(
        self, obj: str, name: str, data_type: str, option: Row, *, editable: bool, actor_id: int
    ) -> Row:
        self._last_id += 1
        now = self._now()
        row: Row = {
            "id": self._last_id,
            "object": obj,
            "object_lookup_id": OBJECTS.index(obj) + 1,
            "name": name,
            "display": name,
            "data_type": data_type,
            "data_option": option,
            "data_option_new": {},
            "editable": editable,
            "active": True,
            "screens": {},
            "to_create": False,
            "to_migrate": False,
            "to_delete": False,
            "to_config": False,
            "position": 1550,
            "created_by_id": actor_id,
            "updated_by_id": actor_id,
            "created_at": now,
            "updated_at": now,
        }
        self._rows[row["id"]] = row
        return row


def _data_option(data_type: str, given: object) -> Row:
    if not isinstance(given, Mapping):
        raise invalid("Data option is missing (data_option must be an object)")
    for key in _REQUIRED_OPTIONS.get(data_type, ()):
        if key not in given:
            raise invalid(f"Data option needs {key!r} for data type {data_type}")
    return copy.deepcopy(dict(given))
