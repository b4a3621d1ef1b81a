"""Checking what an operation or an agent asks to change, before anything changes.

Znuny's TicketCreate/TicketUpdate operations check the whole request (``Ticket``, ``Article``,
``DynamicField``) first and answer the first problem as ``<Operation>.MissingParameter`` or
``<Operation>.InvalidParameter`` (HTTP 200, facts §2) without touching the ticket; only a
request that passed every check is applied. This module is that checking step: it resolves
names to ids against the :class:`Directory` and turns field values into what the backend
stores, raising :class:`Problem` otherwise.
"""

from __future__ import annotations

import datetime as dt
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from connector.sandbox.znuny import catalog
from connector.sandbox.znuny.dynamic_fields import (
    DynamicFieldRegistry,
    InvalidValue,
    Value,
    normalise,
)

FieldWrite = tuple[str, Value]
ProblemKind = Literal[
    "MissingParameter", "InvalidParameter", "AccessDenied", "AuthFail", "WrongStructure"
]
DEFAULT_AGENTS = {"root@localhost": "root", "slabot": "slabot"}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class Problem(Exception):
    """A refused request; the operation answers ``<Operation>.<kind>`` with the message."""

    def __init__(self, kind: ProblemKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass
class TicketChange:
    """Resolved ticket attributes; None means "leave as it is"."""

    title: str | None = None
    queue_id: int | None = None
    state_id: int | None = None
    priority_id: int | None = None
    type_id: int | None = None
    customer_user: str | None = None
    customer_id: str | None = None
    owner_id: int | None = None
    responsible_id: int | None = None


@dataclass
class NewArticle:
    subject: str
    body: str
    content_type: str = "text/plain; charset=utf8"
    sender_type: str = "agent"
    channel: str = "Internal"
    visible: bool = True
    from_: str | None = None


class Directory:
    """Agents, queues, customer companies and customer users (the admin's side of Znuny)."""

    def __init__(self, zone: dt.tzinfo, created: str, agents: Mapping[str, str] | None) -> None:
        self.zone = zone
        self.created = created
        self.agents: dict[int, catalog.Agent] = {}
        for user_id, (login, password) in enumerate((agents or DEFAULT_AGENTS).items(), 1):
            first, last = ("Admin", "OTRS") if user_id == 1 else (login, "Agent")
            email = login if "@" in login else f"{login}@localhost"
            self.agents[user_id] = catalog.Agent(
                user_id, login, password, first, last, email, created
            )
        self.queues = {
            qid: catalog.Queue(qid, name, comment, created)
            for qid, name, comment in catalog.STOCK_QUEUES
        }
        self.companies: dict[str, catalog.CustomerCompany] = {}
        self.customers: dict[str, catalog.CustomerUser] = {}

    def authenticate(self, login: str, password: str | bytes) -> int | None:
        """The UserID of an agent whose password matches (compared in constant time).

        As ``Auth/DB.pm`` does, the password's UTF-8 bytes are compared: text (a body or query
        parameter, decoded by Znuny) is encoded first; bytes (the ``X-OTRS-Header-Password``
        header, which Znuny does not decode) are taken as they are.
        """
        given = password if isinstance(password, bytes) else password.encode("utf-8")
        for agent in self.agents.values():
            if agent.login == login:
                ok = hmac.compare_digest(agent.password.encode("utf-8"), given)
                return agent.user_id if ok else None
        return None

    def agent_id(self, login: str) -> int | None:
        return next((a.user_id for a in self.agents.values() if a.login == login), None)

    def queue_id(self, name: str) -> int | None:
        return next((q.queue_id for q in self.queues.values() if q.name == name), None)

    def customer_id_of(self, login: str) -> str:
        """The CustomerID a ticket gets for a customer user (its company, or the address)."""
        customer = self.customers.get(login)
        return customer.customer_id if customer else login


def ticket_change(raw: object, directory: Directory, *, create: bool) -> TicketChange:
    """Resolve a ``Ticket`` hash; with ``create`` the attributes TicketCreate needs are required."""
    if raw is None and not create:
        return TicketChange()
    if not isinstance(raw, dict):
        raise Problem("MissingParameter", "Ticket parameter is missing or not valid!")
    change = TicketChange()
    if "Title" in raw or create:
        title = raw.get("Title")
        if title in (None, ""):
            raise Problem("MissingParameter", "Ticket->Title parameter is missing!")
        if not isinstance(title, str | int | float):
            raise Problem("InvalidParameter", "Ticket->Title parameter is invalid!")
        change.title = str(title)
    change.queue_id = _lookup(raw, "Queue", directory.queue_id, set(directory.queues), create)
    states = {name: sid for sid, name, _ in catalog.STATES}
    change.state_id = _lookup(raw, "State", states.get, set(states.values()), create)
    priorities = {name: pid for pid, name in catalog.PRIORITIES}
    change.priority_id = _lookup(
        raw, "Priority", priorities.get, set(dict(catalog.PRIORITIES)), create
    )
    types = {name: tid for tid, name in catalog.TYPES.items()}
    change.type_id = _lookup(raw, "Type", types.get, set(catalog.TYPES), False)
    change.owner_id = _lookup(raw, "Owner", directory.agent_id, set(directory.agents), False)
    agents = set(directory.agents)
    change.responsible_id = _lookup(raw, "Responsible", directory.agent_id, agents, False)
    customer = raw.get("CustomerUser")
    if customer in (None, "") and create:
        raise Problem("MissingParameter", "Ticket->CustomerUser parameter is missing!")
    if customer not in (None, ""):
        known = isinstance(customer, str) and customer in directory.customers
        if not known and not (isinstance(customer, str) and _EMAIL.match(customer)):
            raise Problem("InvalidParameter", "Ticket->CustomerUser parameter is invalid!")
        change.customer_user = str(customer)
    if raw.get("CustomerID") not in (None, ""):
        change.customer_id = str(raw["CustomerID"])
    return change


def new_article(raw: object, *, sender: str, channel: str) -> NewArticle:
    """Check an ``Article`` hash (``Subject``, ``Body`` and a content type are required)."""
    if not isinstance(raw, dict):
        raise Problem("MissingParameter", "Article parameter is missing or not valid!")
    for key in ("Subject", "Body"):
        if not isinstance(raw.get(key), str) or raw[key] == "":
            raise Problem("MissingParameter", f"Article->{key} parameter is missing!")
    content_type = raw.get("ContentType")
    if not content_type:
        if not (raw.get("MimeType") and raw.get("Charset")):
            raise Problem(
                "MissingParameter", "Article->ContentType or MimeType and Charset is required!"
            )
        content_type = f"{raw['MimeType']}; charset={raw['Charset']}"
    sender_type = raw.get("SenderType") or sender
    if sender_type not in catalog.SENDER_TYPES:
        raise Problem("InvalidParameter", "Article->SenderType parameter is invalid!")
    channel = raw.get("CommunicationChannel") or channel
    if channel not in catalog.CHANNELS:
        raise Problem("InvalidParameter", "Article->CommunicationChannel parameter is invalid!")
    visible = raw.get("IsVisibleForCustomer", 1) not in (0, "0", False)
    sent_from = raw.get("From") if isinstance(raw.get("From"), str) else None
    return NewArticle(
        raw["Subject"], raw["Body"], str(content_type), sender_type, channel, visible, sent_from
    )


def field_writes(raw: object, fields: DynamicFieldRegistry, now: dt.datetime) -> list[FieldWrite]:
    """Check a ``DynamicField`` list (or single hash) of ``{Name, Value}``.

    ``Value`` must be a string, number or list (``null`` is a missing parameter; ``""`` clears);
    the name must be a valid ticket field and the value acceptable to its backend.

    Args:
        now: the current time in ``OTRSTimeZone`` (naive), for ``DateRestriction``.
    """
    if raw is None:
        return []
    items = [raw] if isinstance(raw, dict) else raw
    if not isinstance(items, list):
        raise Problem("InvalidParameter", "DynamicField parameter is invalid!")
    writes: list[FieldWrite] = []
    for item in items:
        if not isinstance(item, dict):
            raise Problem("MissingParameter", "DynamicField parameter is missing or not valid!")
        name, value = item.get("Name"), item.get("Value")
        if not isinstance(name, str) or not name:
            raise Problem("MissingParameter", "DynamicField->Name parameter is missing!")
        if value is None or isinstance(value, bool | dict):
            raise Problem("MissingParameter", "DynamicField->Value parameter is missing!")
        definition = fields.get(name)
        if definition is None or definition.ObjectType != "Ticket" or definition.ValidID != 1:
            raise Problem("InvalidParameter", "DynamicField->Name parameter is invalid!")
        try:
            writes.append((name, normalise(definition, value, now)))
        except InvalidValue:
            raise Problem("InvalidParameter", "DynamicField->Value parameter is invalid!") from None
    return writes


def _lookup(
    raw: Mapping[str, Any],
    key: str,
    by_name: Any,
    ids: set[int],
    required: bool,
) -> int | None:
    """Resolve ``<key>`` (a name) or ``<key>ID``; the name wins when both are given."""
    name, given_id = raw.get(key), raw.get(f"{key}ID")
    if name not in (None, ""):
        found = by_name(name) if isinstance(name, str) else None
        if found is None:
            raise Problem("InvalidParameter", f"Ticket->{key} parameter is invalid!")
        return int(found)
    if given_id not in (None, ""):
        number = _int(given_id)
        if number is None or number not in ids:
            raise Problem("InvalidParameter", f"Ticket->{key}ID parameter is invalid!")
        return number
    if required:
        raise Problem("MissingParameter", f"Ticket->{key}ID or Ticket->{key} parameter is missing!")
    return None


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None
