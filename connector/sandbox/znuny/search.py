"""TicketSearch over TicketGet hashes, with Znuny's parameter names and quirks.

Facts (§2) and the ``Kernel::System::Ticket::TicketSearch`` parameters it relies on:

* The answer is ``{"TicketID": ["3", "2"]}``: ids as strings, newest first (``SortBy`` Age,
  ``OrderBy`` Down by default); **no hits is ``{}``**, not an empty list [live].
* At most ``Limit`` ids come back; without one (or with 0) the operation uses 500
  (``Operation/Ticket/TicketSearch.pm``: ``Limit || Config SearchLimit || 500``). There is no
  offset. ``SortBy``/``OrderBy`` may be lists for sub-sorting (a missing direction is
  ``Down``); Znuny adds no tie-breaker, so equal keys come in whatever order the database
  returns; the sandbox orders them by TicketID (in the first key's direction).
* Dynamic fields are searched only with operator hashes, ``"DynamicField_X": {"Empty": 1}`` or
  ``{"SmallerThanEquals": "2026-12-01 12:00:00"}`` (or the list form ``"DynamicField":
  [{"Name": "X", "Equals": ...}]``); a flat ``DynamicField_X=v`` is **silently ignored** [live]
  (``Operation/Ticket/TicketSearch.pm:522-582``), so the search returns every other match.
* Times (``TicketChangeTimeNewerDate`` ...) are ``YYYY-MM-DD HH:MM:SS`` in ``OTRSTimeZone``,
  compared inclusively; a time in another format is not an error: Znuny logs it and the search
  finds nothing. ``TicketChangeTime*`` select tickets with a **history entry** in the range
  (``th.create_time``, one entry must satisfy both ends), which a new article adds too;
  ``TicketLastChangeTime*`` select by the ticket's own ``Changed``; ``TicketCreateTime*`` by
  ``Created`` (``Kernel/System/Ticket/TicketSearch.pm``).
* ``StateType`` takes state type names (``open``, ``new``, ``pending reminder`` ...; an array for
  several); the two special values ``Open`` and ``Closed`` mean all viewable (new, open,
  pending) and all closed states. This comes from the TicketSearch documentation, not from the
  facts doc: note that ``StateType=open`` does **not** find tickets in state ``new``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from typing import Any

from connector.sandbox.znuny import catalog
from connector.sandbox.znuny.dynamic_fields import DynamicFieldRegistry, InvalidValue, matches

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
#: a time parameter's key in the ticket hash; ``_HISTORY``: the ticket's history entries
_HISTORY = "History"
_TIMES = {
    "TicketCreateTime": "Created",
    "TicketLastChangeTime": "Changed",
    "TicketChangeTime": _HISTORY,
}
#: ``Limit`` when the request gives none (the operation's ``SearchLimit`` default)
DEFAULT_LIMIT = 500
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
    "Created": "Created",
    "Changed": "Changed",
    "Type": "TypeID",
    "Lock": "LockID",
    "Owner": "Owner",
    "Responsible": "Responsible",
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
    history: Mapping[int, Sequence[str]] | None = None,
) -> list[str]:
    """Ids (strings) of the tickets matching ``params``, sorted and limited.

    Args:
        params: the operation's parameters (query and/or JSON body).
        tickets: TicketGet hashes with ``DynamicField_*`` keys.
        fields: the field registry (only defined fields can be searched).
        now: the current time as ``YYYY-MM-DD HH:MM:SS`` in ``OTRSTimeZone``.
        history: TicketID -> times of its history entries (same format); without it a
            ticket's history is its ``Created`` and ``Changed``.
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
        if not _times_match(ticket, bounds, history):
            continue
        if not all(_field_matches(ticket.get(f"DynamicField_{n}"), ops) for n, ops in conditions):
            continue
        hits.append(ticket)
    _sort(hits, params.get("SortBy"), params.get("OrderBy"))
    raw = params.get("Limit")
    given = isinstance(raw, int | str) and str(raw).isdigit() and int(raw) > 0
    limit = int(str(raw)) if given else DEFAULT_LIMIT
    return [str(ticket["TicketID"]) for ticket in hits][:limit]


def _sort(hits: list[dict[str, Any]], sort_by: object, order_by: object) -> None:
    """Sort in place by ``SortBy`` (default ``Age``), each key ``Up`` or else ``Down``."""
    keys = [_SORT.get(name, "Created") for name in _values(sort_by or "Age")] or ["Created"]
    directions = _values(order_by or "Down")
    ups = [index < len(directions) and directions[index] == "Up" for index in range(len(keys))]
    hits.sort(key=lambda ticket: int(ticket["TicketID"]), reverse=not ups[0])  # ties
    for key, up in reversed(list(zip(keys, ups, strict=True))):
        hits.sort(key=lambda ticket: str(ticket.get(key) or ""), reverse=not up)


def _times_match(
    ticket: Mapping[str, Any],
    bounds: dict[str, list[tuple[str, str]]],
    history: Mapping[int, Sequence[str]] | None,
) -> bool:
    """Whether the ticket's times fall within ``bounds``; for ``TicketChangeTime*`` one
    history entry must lie within all of them (a single joined ``ticket_history`` row)."""
    for key, low in bounds["min"]:
        if key != _HISTORY and not low <= ticket[key]:
            return False
    for key, high in bounds["max"]:
        if key != _HISTORY and not ticket[key] <= high:
            return False
    lows = [low for key, low in bounds["min"] if key == _HISTORY]
    highs = [high for key, high in bounds["max"] if key == _HISTORY]
    if not (lows or highs):
        return True
    entries = (
        history.get(int(ticket["TicketID"]), ())
        if history is not None
        else (ticket["Created"], ticket["Changed"])
    )
    return any(
        all(low <= entry for low in lows) and all(entry <= high for high in highs)
        for entry in entries
    )


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
