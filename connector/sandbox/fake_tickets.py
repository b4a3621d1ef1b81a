"""The fake helpdesk's tickets: an in-memory store behind one lock.

It behaves like a small, strict helpdesk: ticket ids are sequential strings, timestamps are
aware UTC, custom fields must be declared before the API may write them (as in Zammad's object
manager or Znuny's dynamic fields), a PATCH with one bad field changes nothing, tags are a set.
The Python API (``create``/``update``) stands for an admin or agent in the web UI and may set
anything.
"""

from __future__ import annotations

import copy
import datetime as dt
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

JsonObject = dict[str, Any]
STATES = ("open", "closed")
_SCALARS = (str, int, float, bool, type(None))
DEFAULT_CUSTOMER = {"id": "1", "name": "Customer", "email": "customer@example.com"}
_EDITABLE = frozenset(
    {"subject", "body", "customer", "organization", "group", "priority", "state", "fields", "tags"}
)

#: a few tickets for the standalone demo server
SAMPLE_TICKETS: tuple[JsonObject, ...] = (
    {
        "subject": "Сайт не открывается",
        "body": "Публичная часть сайта полностью не работает, ошибка 500.",
        "customer": {"id": "10", "name": "Иван Петров", "email": "ivan@shop.example"},
        "organization": {"id": "5", "name": "ООО Магазин", "fields": {"license": "business"}},
        "group": "Support",
        "priority": "2 normal",
    },
    {
        "subject": "Question about the REST API",
        "body": "How do I list infoblock elements through the D7 ORM?",
        "customer": {"id": "11", "name": "Jane Doe", "email": "jane@partner.example"},
        "group": "Support",
        "priority": "2 normal",
    },
    {
        "subject": "Old ticket",
        "body": "Already answered.",
        "state": "closed",
        "tags": ["archived"],
    },
)


class StoreError(Exception):
    """A request the store refuses; ``status`` is what the REST API answers."""

    status = 422


class TicketNotFound(StoreError, KeyError):
    """No ticket with that id."""

    status = 404

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "ticket not found"


def iso(moment: dt.datetime) -> str:
    """A UTC timestamp as the fake writes it: ISO 8601 with microseconds and ``Z``."""
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


@dataclass
class _Ticket:
    id: str
    created_at: dt.datetime
    updated_at: dt.datetime
    subject: str
    body: str
    customer: JsonObject
    organization: JsonObject | None
    group: str | None
    priority: str | None
    state: str
    fields: dict[str, Any]
    tags: set[str]

    def to_json(self) -> JsonObject:
        return {
            "id": self.id,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "subject": self.subject,
            "body": self.body,
            "customer": copy.deepcopy(self.customer),
            "organization": copy.deepcopy(self.organization),
            "group": self.group,
            "priority": self.priority,
            "state": self.state,
            "fields": copy.deepcopy(self.fields),
            "tags": sorted(self.tags),
        }


class TicketStore:
    """Thread-safe tickets; ``on_change(ticket_id, event)`` runs after each committed change.

    Args:
        declared_fields: custom fields the REST API may write.
        clock: the current time (aware); injectable so tests can control ``updated_at``.
        on_change: told ``("7", "ticket.created")`` etc., outside the lock.
    """

    def __init__(
        self,
        declared_fields: Iterable[str],
        clock: Callable[[], dt.datetime],
        on_change: Callable[[str, str], None],
    ) -> None:
        self._lock = threading.Lock()
        self._tickets: dict[str, _Ticket] = {}
        self._last_id = 0
        self._declared = set(declared_fields)
        self._clock = clock
        self._on_change = on_change

    def declare(self, name: str) -> None:
        """Allow the REST API to write custom field ``name``."""
        with self._lock:
            self._declared.add(name)

    def create(self, values: Mapping[str, Any]) -> JsonObject:
        """A new open ticket from ``values`` (keys as in the ticket JSON)."""
        _check_keys(values)
        now = self._now()
        with self._lock:
            self._last_id += 1
            ticket = _Ticket(
                id=str(self._last_id),
                created_at=now,
                updated_at=now,
                subject=str(values.get("subject") or ""),
                body=str(values.get("body") or ""),
                customer=_customer(values.get("customer") or DEFAULT_CUSTOMER),
                organization=_organization(values.get("organization")),
                group=_text(values.get("group")),
                priority=_text(values.get("priority")),
                state=_state(values.get("state", "open")),
                fields=_fields(values.get("fields") or {}),
                tags=_tags(values.get("tags") or ()),
            )
            self._tickets[ticket.id] = ticket
            result = ticket.to_json()
        self._on_change(ticket.id, "ticket.created")
        return result

    def get(self, ticket_id: str) -> JsonObject:
        """The ticket's JSON; :class:`TicketNotFound` if there is none."""
        with self._lock:
            return self._find(ticket_id).to_json()

    def update(self, ticket_id: str, changes: Mapping[str, Any]) -> JsonObject:
        """Change anything, like an agent: ``fields`` are merged, ``tags`` replaced."""
        _check_keys(changes)
        normal = {key: _normalise(key, value) for key, value in changes.items()}
        with self._lock:
            ticket = self._find(ticket_id)
            for key, value in normal.items():
                if key == "fields":
                    ticket.fields.update(value)
                else:
                    setattr(ticket, key, value)
            result = self._touch(ticket)
        self._on_change(ticket.id, "ticket.updated")
        return result

    def patch_fields(self, ticket_id: str, values: Mapping[str, Any]) -> JsonObject:
        """Set declared custom fields; one unknown or invalid field and nothing changes."""
        with self._lock:
            ticket = self._find(ticket_id)
            for name, value in values.items():
                if name not in self._declared:
                    raise StoreError(f"unknown field {name!r}")
                if not isinstance(value, _SCALARS):
                    raise StoreError(f"field {name!r} must be a string, number, boolean or null")
            ticket.fields.update(values)
            result = self._touch(ticket)
        self._on_change(ticket.id, "ticket.updated")
        return result

    def change_tags(self, ticket_id: str, add: Iterable[str], remove: Iterable[str]) -> JsonObject:
        """Add and remove tags; adding a present or removing an absent tag is not an error."""
        added, removed = _tags(add), _tags(remove)
        both = sorted(added & removed)
        if both:
            raise StoreError(f"tag {both[0]!r} is both added and removed")
        with self._lock:
            ticket = self._find(ticket_id)
            ticket.tags = (ticket.tags - removed) | added
            result = self._touch(ticket)
        self._on_change(ticket.id, "ticket.updated")
        return result

    def list_ids(self, state: str | None, changed_since: dt.datetime | None) -> list[str]:
        """Ids of tickets in ``state`` updated at or after ``changed_since``, by number."""
        with self._lock:
            tickets = list(self._tickets.values())
        return [
            ticket.id
            for ticket in sorted(tickets, key=lambda t: int(t.id))
            if (state is None or ticket.state == state)
            and (changed_since is None or ticket.updated_at >= changed_since)
        ]

    def _find(self, ticket_id: str) -> _Ticket:
        ticket = self._tickets.get(str(ticket_id))
        if ticket is None:
            raise TicketNotFound(f"ticket {ticket_id} not found")
        return ticket

    def _touch(self, ticket: _Ticket) -> JsonObject:
        """Bump ``updated_at`` (the caller holds the lock) and return the new JSON."""
        ticket.updated_at = max(self._now(), ticket.updated_at)
        return ticket.to_json()

    def _now(self) -> dt.datetime:
        now = self._clock()
        if now.tzinfo is None:
            raise ValueError("the fake helpdesk's clock must return aware datetimes")
        return now.astimezone(dt.UTC)


def _check_keys(values: Mapping[str, Any]) -> None:
    unknown = sorted(set(values) - _EDITABLE)
    if unknown:
        raise StoreError(f"unknown ticket attribute {unknown[0]!r}")


def _normalise(key: str, value: object) -> Any:
    if key == "customer":
        return _customer(value)
    if key == "organization":
        return _organization(value)
    if key == "fields":
        return _fields(value)
    if key == "tags":
        return _tags(value)
    if key == "state":
        return _state(value)
    if key in ("subject", "body"):
        return str(value or "")
    return _text(value)


def _customer(value: object) -> JsonObject:
    if not isinstance(value, Mapping):
        raise StoreError("customer must be an object")
    party = _party(value)
    return {"id": party["id"], "name": party["name"], "email": _text(value.get("email")), **party}


def _organization(value: object) -> JsonObject | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise StoreError("organization must be an object or null")
    return _party(value)


def _party(value: Mapping[str, Any]) -> JsonObject:
    return {
        "id": _text(value.get("id")),
        "name": _text(value.get("name")),
        "fields": _fields(value.get("fields") or {}),
    }


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _fields(value: object) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise StoreError("fields must be an object")
    return copy.deepcopy(dict(value))


def _state(value: object) -> str:
    if value not in STATES:
        raise StoreError(f"state must be one of {', '.join(STATES)}, not {value!r}")
    return str(value)


def _tags(values: object) -> set[str]:
    if isinstance(values, str) or not isinstance(values, Iterable):
        raise StoreError("tags must be a list of strings")
    tags: set[str] = set()
    for tag in values:
        if not isinstance(tag, str) or not tag.strip():
            raise StoreError("tags must be non-empty strings")
        tags.add(tag.strip())
    return tags
