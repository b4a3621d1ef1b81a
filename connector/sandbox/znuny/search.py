"""TicketSearch over TicketGet hashes, with Znuny's parameter names and quirks.

Facts (§2) and the ``Kernel::System::Ticket::TicketSearch`` parameters it relies on:

* The answer is ``{"TicketID": ["3", "2"]}``: ids as strings, newest first (``SortBy`` Age,
  ``OrderBy`` Down by default); **no hits is ``{}``**, not an empty list [live].
* Dynamic fields are searched only with operator hashes, ``"DynamicField_X": {"Empty": 1}`` or
  ``{"SmallerThanEquals": "2026-12-01 12:00:00"}`` (or the list form ``"DynamicField":
  [{"Name": "X", "Equals": ...}]``); a flat ``DynamicField_X=v`` is **silently ignored** [live]
  (``Operation/Ticket/TicketSearch.pm:522-582``), so the search returns every other match.
* Times (``TicketChangeTimeNewerDate`` ...) are ``YYYY-MM-DD HH:MM:SS`` in ``OTRSTimeZone``,
  compared inclusively; a time in another format is not an error: Znuny logs it and the search
  finds nothing.
* ``StateType`` takes state type names (``open``, ``new``, ``pending reminder`` ...; an array for
  several); the two special values ``Open`` and ``Closed`` mean all viewable (new, open,
  pending) and all closed states. This comes from the TicketSearch documentation, not from the
  facts doc: note that ``StateType=open`` does **not** find tickets in state ``new``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

from connector.sandbox.znuny import catalog
from connector.sandbox.znuny.dynamic_fields import DynamicFieldRegistry, InvalidValue, matches

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
_TIMES = {"TicketCreateTime": "Created", "TicketChangeTime": "Changed"}
#: parameter -> (ticket key, matched with wildcards)
_ATTRIBUTES: dict[str, tuple[str, bool]] = {
    "TicketNumber": ("TicketNumber", True),
    "Title": ("Title", True),
    "Queues": ("Queue", False),
    "QueueIDs": ("QueueID", False),
    "States": ("State", False),
    "StateIDs": ("StateID", False),
    "Priorities": ("Priority", False),
    "PriorityIDs": ("PriorityID", False),
    "Types": ("Type", False),
    "TypeIDs": ("TypeID", False),
    "OwnerIDs": ("OwnerID", False),
    "ResponsibleIDs": ("ResponsibleID", False),
    "CustomerID": ("CustomerID", True),
    "CustomerUserLogin": ("CustomerUserID", True),
}
_SORT = {
    "Age": "Created",
    "Changed": "Changed",
    "TicketNumber": "TicketNumber",
    "Title": "Title",
    "Queue": "Queue",
    "State": "State",
    "Priority": "PriorityID",
    "CustomerID": "CustomerID",
}


def search(
    params: Mapping[str, Any],
    tickets: list[dict[str, Any]],
    fields: DynamicFieldRegistry,
    now: str,
) -> list[str]:
    """Ids (strings) of the tickets matching ``params``, sorted and limited.

    Args:
        params: the operation's parameters (query and/or JSON body).
        tickets: TicketGet hashes with ``DynamicField_*`` keys.
        fields: the field registry (only defined fields can be searched).
        now: the current time as ``YYYY-MM-DD HH:MM:SS`` in ``OTRSTimeZone``.
    """
    try:
        conditions = _dynamic_field_conditions(params, fields)
        bounds = _time_bounds(params, now)
        state_types = _state_types(params.get("StateType"))
    except LookupError:
        return []
    hits = []
    for ticket in tickets:
        if state_types is not None and ticket["StateType"] not in state_types:
            continue
        if not all(_attribute_matches(ticket, p, params[p]) for p in _ATTRIBUTES if p in params):
            continue
        if not all(lo <= ticket[key] for key, lo in bounds["min"]):
            continue
        if not all(ticket[key] <= hi for key, hi in bounds["max"]):
            continue
        if not all(_field_matches(ticket.get(f"DynamicField_{n}"), ops) for n, ops in conditions):
            continue
        hits.append(ticket)
    key = _SORT.get(str(params.get("SortBy") or "Age"), "Created")
    hits.sort(key=lambda t: (str(t.get(key) or ""), t["TicketID"]))
    if str(params.get("OrderBy") or "Down") != "Up":
        hits.reverse()
    limit = params.get("Limit")
    ids = [str(ticket["TicketID"]) for ticket in hits]
    if isinstance(limit, int | str) and str(limit).isdigit() and int(limit) > 0:
        ids = ids[: int(limit)]
    return ids


def _values(raw: object) -> list[str]:
    items = raw if isinstance(raw, list) else [raw]
    return [str(item) for item in items if item is not None and not isinstance(item, dict)]


def _attribute_matches(ticket: Mapping[str, Any], param: str, raw: object) -> bool:
    key, wildcards = _ATTRIBUTES[param]
    wanted = _values(raw)
    if not wanted:
        return True
    value = "" if ticket.get(key) is None else str(ticket[key])
    for pattern in wanted:
        if wildcards:
            regex = "^" + ".*".join(re.escape(part) for part in pattern.split("*")) + "$"
            if re.match(regex, value, re.IGNORECASE):
                return True
        elif value == pattern:
            return True
    return False


def _state_types(raw: object) -> set[str] | None:
    if raw in (None, "", []):
        return None
    if raw == "Open":
        return set(catalog.VIEWABLE_STATE_TYPES)
    if raw == "Closed":
        return {"closed"}
    wanted = set(_values(raw))
    if not wanted <= set(catalog.STATE_TYPES):
        raise LookupError("unknown state type")
    return wanted


def _time_bounds(params: Mapping[str, Any], now: str) -> dict[str, list[tuple[str, str]]]:
    bounds: dict[str, list[tuple[str, str]]] = {"min": [], "max": []}
    reference = dt.datetime.strptime(now, "%Y-%m-%d %H:%M:%S")
    for prefix, key in _TIMES.items():
        for suffix, side in (("NewerDate", "min"), ("OlderDate", "max")):
            value = params.get(prefix + suffix)
            if value in (None, ""):
                continue
            if not isinstance(value, str) or not _DATE.match(value):
                raise LookupError("invalid time format")
            bounds[side].append((key, value))
        for suffix, side in (("NewerMinutes", "min"), ("OlderMinutes", "max")):
            value = params.get(prefix + suffix)
            if value in (None, ""):
                continue
            if not str(value).isdigit():
                raise LookupError("invalid minutes")
            moment = reference - dt.timedelta(minutes=int(str(value)))
            bounds[side].append((key, moment.strftime("%Y-%m-%d %H:%M:%S")))
    return bounds


def _dynamic_field_conditions(
    params: Mapping[str, Any], fields: DynamicFieldRegistry
) -> list[tuple[str, Mapping[str, Any]]]:
    conditions: list[tuple[str, Mapping[str, Any]]] = []
    for definition in fields.ticket_fields():
        operators = params.get(f"DynamicField_{definition.Name}")
        if isinstance(operators, dict):  # a flat value is ignored, as in Znuny
            conditions.append((definition.Name, operators))
    listed = params.get("DynamicField")
    for entry in listed if isinstance(listed, list) else [listed]:
        if isinstance(entry, dict) and fields.get(str(entry.get("Name"))) is not None:
            operators = {k: v for k, v in entry.items() if k != "Name"}
            conditions.append((str(entry["Name"]), operators))
    return conditions


def _field_matches(value: Any, operators: Mapping[str, Any]) -> bool:
    try:
        return matches(value, operators)
    except InvalidValue:
        return False
