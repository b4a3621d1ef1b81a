"""Values of custom attributes: checking what an API call writes, and showing what is stored.

Facts §4.4 and §4.7: a ``datetime`` attribute with ``past: false`` refuses past values ("does
not allow past dates."), ``future: false`` refuses future ones; times are ISO 8601 and are shown
with milliseconds; a value outside a select's ``options`` (or a tree select's ``a::b`` paths) is
refused. Refusals are 422 with Rails' "Validation failed: <Attribute> <message>" wording, the
attribute humanized as Rails does (``sla_due_at`` → "Sla due at"); the exact messages other than
"does not allow past dates." and "is required but missing." are the sandbox's.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Mapping
from typing import Any

from connector.sandbox.zammad.errors import invalid
from connector.sandbox.zammad.times import iso, parse_time

Row = dict[str, Any]
_TEXT_TYPES = ("input", "textarea", "richtext")


def humanize(name: str) -> str:
    """Rails' ``humanize`` of an attribute name, as used in validation messages."""
    text = name[:-3] if name.endswith("_id") else name
    return text.replace("_", " ").capitalize()


def coerce(name: str, attribute: Row, value: object) -> Any:
    """The stored form of ``value`` for the attribute record ``attribute``; 422 if invalid."""
    option, data_type = attribute["data_option"], attribute["data_type"]
    if value is None or (value == "" and data_type not in _TEXT_TYPES):
        return None
    label = humanize(name)
    if data_type in ("datetime", "date"):
        try:
            moment = parse_time(value)
        except ValueError:
            raise invalid(f"{label} is not a valid ISO 8601 time: {value!r}") from None
        return moment if data_type == "datetime" else moment.date()
    if data_type in ("select", "tree_select"):
        if str(value) not in _option_values(option.get("options")):
            raise invalid(f"{label} has an invalid value {value!r}")
        return str(value)
    if data_type == "multiselect":
        items = value if isinstance(value, list) else [value]
        allowed = _option_values(option.get("options"))
        if any(str(item) not in allowed for item in items):
            raise invalid(f"{label} has an invalid value {value!r}")
        return [str(item) for item in items]
    if data_type == "boolean":
        if isinstance(value, bool) or str(value).lower() in ("true", "false"):
            return value if isinstance(value, bool) else str(value).lower() == "true"
        raise invalid(f"{label} must be true or false")
    if data_type == "integer":
        return _integer(label, value, option)
    text = str(value)
    maxlength = option.get("maxlength")
    if isinstance(maxlength, int) and len(text) > maxlength:
        raise invalid(f"{label} is too long (maximum is {maxlength} characters)")
    return text


def check_time(name: str, attribute: Row, value: object, now: dt.datetime) -> None:
    """Apply a datetime attribute's ``past``/``future`` flags to a value being written.

    Callers check only values that change: a stored due time that has since passed does not
    block unrelated updates (*inference*: the facts doc names the rule, not its scope).
    """
    if attribute["data_type"] != "datetime" or not isinstance(value, dt.datetime):
        return
    option, label = attribute["data_option"], humanize(name)
    if option.get("past") is False and value < now:
        raise invalid(f"{label} does not allow past dates.")
    if option.get("future") is False and value > now:
        raise invalid(f"{label} does not allow future dates.")


def output(value: object) -> object:
    """The JSON form of a stored value (times with milliseconds, dates as ``YYYY-MM-DD``).

    Hashes and lists (``preferences``, multiselects) are copied with their times converted too.
    """
    if isinstance(value, dt.datetime):
        return iso(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {key: output(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [output(item) for item in value]
    return copy.deepcopy(value)


def _option_values(options: object) -> set[str]:
    """Allowed values of a select (a value→label map or a list) or tree (``a::b`` paths)."""
    if isinstance(options, Mapping):
        return {str(key) for key in options}
    allowed: set[str] = set()
    for item in options if isinstance(options, list) else ():
        if isinstance(item, Mapping):
            allowed.add(str(item.get("value", item.get("name", ""))))
            allowed |= _option_values(item.get("children") or [])
        else:
            allowed.add(str(item))
    return allowed


def _integer(label: str, value: object, option: Row) -> int:
    if isinstance(value, bool) or not str(value).lstrip("-").isdigit():
        raise invalid(f"{label} is not a number")
    number = int(str(value))
    low, high = option.get("min"), option.get("max")
    if (isinstance(low, int) and number < low) or (isinstance(high, int) and number > high):
        raise invalid(f"{label} must be between {low} and {high}")
    return number
