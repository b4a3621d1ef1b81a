"""Trigger conditions (Zammad's ticket selectors), evaluated against one transaction.

Formats accepted (facts §3, ``api/trigger.rst``): a flat hash, all entries AND-ed
(``{"ticket.action": {"operator": "is", "value": "create"}, ...}``), or the expert form
``{"operator": "AND"|"OR"|"NOT", "conditions": [{"name", "operator", "value",
"pre_condition"}, ...]}`` with nested groups.

Attributes: ``ticket.action`` (``create``/``update``), ``ticket.<column>`` including custom
attributes and ``ticket.tags``, ``article.<column>`` (only matches when the transaction added an
article — admin docs "the changed ticket must have a new article"), ``customer.<column>`` and
``organization.<column>`` of the ticket's customer and organization.

Operators: ``is`` / ``is not`` (``pre_condition`` ``specific`` with a value list,
``current_user.id``, ``not_set``), ``has changed``, ``contains`` / ``contains not``,
``contains one`` / ``contains all`` / ``contains one not`` / ``contains all not`` (tags),
``is set`` / ``not set``, ``starts with`` / ``ends with``. Values compare as strings (ids as
``"3"``), booleans as ``"true"``/``"false"``. ``has changed`` on a create is true for every
attribute the new ticket has set (*inference*).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from connector.sandbox.zammad.errors import invalid
from connector.sandbox.zammad.times import iso

Row = dict[str, Any]
OPERATORS = frozenset(
    {
        "is",
        "is not",
        "has changed",
        "contains",
        "contains not",
        "contains one",
        "contains all",
        "contains one not",
        "contains all not",
        "is set",
        "not set",
        "starts with",
        "ends with",
    }
)
_GROUPS = frozenset({"AND", "OR", "NOT"})


@dataclass(frozen=True)
class Context:
    """What a condition is evaluated against: the ticket after the transaction.

    Attributes:
        action: ``create`` or ``update``.
        ticket: the ticket row.
        tags: the ticket's tags.
        changes: columns changed by the transaction.
        user_id: the acting user.
        article: the article added by the transaction, if any.
        customer: the ticket's customer row, if any.
        organization: the ticket's organization row, if any.
    """

    action: str
    ticket: Row
    tags: list[str]
    changes: frozenset[str]
    user_id: int
    article: Row | None = None
    customer: Row | None = None
    organization: Row | None = None


def leaves(condition: object) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every (attribute name, spec) of a condition in either format."""
    if not isinstance(condition, Mapping):
        return
    if "conditions" in condition and condition.get("operator") in _GROUPS:
        for item in condition.get("conditions") or []:
            if isinstance(item, Mapping) and "conditions" in item:
                yield from leaves(item)
            elif isinstance(item, Mapping):
                yield str(item.get("name", "")), item
        return
    for name, spec in condition.items():
        yield str(name), spec if isinstance(spec, Mapping) else {}


def validate(condition: object) -> None:
    """422 unless ``condition`` is a hash whose every entry names an attribute and operator."""
    if not isinstance(condition, Mapping):
        raise invalid("Condition must be an object")
    for name, spec in leaves(condition):
        if "." not in name:
            raise invalid(f"Condition {name!r} must be written as object.attribute")
        if spec.get("operator") not in OPERATORS:
            raise invalid(f"Condition {name!r} has an invalid operator {spec.get('operator')!r}")


def matches(condition: object, ctx: Context) -> bool:
    """Whether the current state of the ticket (and the transaction) meets ``condition``."""
    if not isinstance(condition, Mapping):
        return False
    if "conditions" in condition and condition.get("operator") in _GROUPS:
        results = [
            matches(item, ctx)
            if isinstance(item, Mapping) and "conditions" in item
            else _leaf(str(item.get("name", "")), item, ctx)
            for item in condition.get("conditions") or []
            if isinstance(item, Mapping)
        ]
        if condition["operator"] == "OR":
            return any(results)
        if condition["operator"] == "NOT":
            return not any(results)
        return all(results)
    return all(_leaf(name, spec, ctx) for name, spec in leaves(condition))


def _leaf(name: str, spec: Mapping[str, Any], ctx: Context) -> bool:
    obj, _, attribute = name.partition(".")
    operator = str(spec.get("operator", ""))
    if obj == "article" and ctx.article is None:
        return False
    if operator == "has changed":
        return obj == "ticket" and attribute in ctx.changes
    actual = _texts(_value(obj, attribute, ctx))
    expected = _expected(spec, ctx)
    if operator in ("is", "is not"):
        if spec.get("pre_condition") == "not_set":
            hit = not actual
        else:
            hit = any(value in expected for value in actual)
        return hit if operator == "is" else not hit
    if operator in ("is set", "not set"):
        return bool(actual) == (operator == "is set")
    lowered = [value.lower() for value in actual]
    wanted = [value.lower() for value in expected]
    if operator in ("contains", "contains not"):
        hit = any(w in value for w in wanted for value in lowered)
        return hit if operator == "contains" else not hit
    if operator in ("starts with", "ends with"):
        test = str.startswith if operator == "starts with" else str.endswith
        return any(test(value, w) for w in wanted for value in lowered)
    one = any(w in lowered for w in wanted)
    every = bool(wanted) and all(w in lowered for w in wanted)
    return {
        "contains one": one,
        "contains all": every,
        "contains one not": not one,
        "contains all not": not every,
    }.get(operator, False)


def _value(obj: str, attribute: str, ctx: Context) -> object:
    if obj == "ticket":
        if attribute == "action":
            return ctx.action
        if attribute == "tags":
            return ctx.tags
        return ctx.ticket.get(attribute)
    source = {"article": ctx.article, "customer": ctx.customer, "organization": ctx.organization}
    row = source.get(obj)
    return row.get(attribute) if row is not None else None


def _expected(spec: Mapping[str, Any], ctx: Context) -> list[str]:
    if spec.get("pre_condition") == "current_user.id":
        return [str(ctx.user_id)]
    value = spec.get("value")
    if isinstance(value, str) and "," in value and spec.get("operator", "").startswith("contains "):
        return [part.strip() for part in value.split(",") if part.strip()]
    return _texts(value)


def _texts(value: object) -> list[str]:
    """A value as the strings it holds (lists: each item; None and "" hold nothing)."""
    if value is None or value == "":
        return []
    if isinstance(value, list | tuple | set):
        return [text for item in value for text in _texts(item)]
    if isinstance(value, bool):
        return ["true" if value else "false"]
    if isinstance(value, dt.datetime):
        return [iso(value) or ""]
    return [str(value)]
