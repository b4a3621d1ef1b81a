"""The provider operations: SessionCreate, TicketGet, TicketSearch, TicketCreate, TicketUpdate.

Facts (§2): every operation first authenticates (``UserLogin`` + ``Password`` of an agent, or a
``SessionID`` from SessionCreate) and then answers **HTTP 200** either with its data or with
``{"Error": {"ErrorCode": "<Operation>.<Kind>", "ErrorMessage": "<Operation>: ..."}}``
(``Operation/Common.pm:116-135`` sets Success=1 for these): ``AuthFail``, ``MissingParameter``,
``InvalidParameter``, ``AccessDenied`` (TicketGet answers AccessDenied for a ticket that does
not exist, too), and ``TicketGet.WrongStructure`` for a TicketID that is not a positive
integer (``Operation/Ticket/TicketGet.pm``). A refused request changes nothing. Customer
logins (``CustomerUserLogin``) are not modelled: they always fail authentication.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from connector.sandbox.znuny import catalog
from connector.sandbox.znuny.changes import (
    Problem,
    field_writes,
    new_article,
    ticket_change,
)
from connector.sandbox.znuny.search import search
from connector.sandbox.znuny.state import ZnunyState
from connector.sandbox.znuny.ticket_data import Renderer

JsonObject = dict[str, Any]
_POSITIVE = re.compile(r"^[1-9]\d*$")


@dataclass(frozen=True)
class OperationRecord:
    """One operation the provider ran, as the web service's Debugger would list it.

    Attributes:
        operation: ``TicketGet``, ``TicketUpdate``, ...
        ticket_id: the ``TicketID`` parameter as given, if any.
        error_code: ``TicketUpdate.InvalidParameter`` ...; None when it succeeded.
    """

    operation: str
    ticket_id: str | None
    error_code: str | None


class NotModelled(Exception):
    """An operation type the sandbox does not implement (answered like a framework error)."""


class Sessions:
    """SessionIDs handed out by SessionCreate, each standing for an agent's UserID."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[str, int] = {}

    def create(self, user_id: int) -> str:
        session_id = secrets.token_urlsafe(24)
        with self._lock:
            self._sessions[session_id] = user_id
        return session_id

    def user(self, session_id: str) -> int | None:
        with self._lock:
            return self._sessions.get(session_id)

    def expire_all(self) -> None:
        """Forget every session, as when ``SessionMaxTime`` has passed."""
        with self._lock:
            self._sessions.clear()


class Operations:
    """Runs one operation on merged request parameters and returns the JSON answer."""

    def __init__(self, state: ZnunyState, renderer: Renderer, sessions: Sessions) -> None:
        self._state = state
        self._renderer = renderer
        self._sessions = sessions
        self._lock = threading.Lock()
        self._records: list[OperationRecord] = []
        self._handlers: dict[str, Callable[[Mapping[str, Any], int], JsonObject]] = {
            "TicketGet": self._ticket_get,
            "TicketSearch": self._ticket_search,
            "TicketCreate": self._ticket_create,
            "TicketUpdate": self._ticket_update,
        }

    def run(self, operation_type: str, params: Mapping[str, Any]) -> JsonObject:
        """Answer ``operation_type`` (e.g. ``Ticket::TicketGet``); raises NotModelled."""
        name = operation_type.rpartition("::")[2]
        handler = self._handlers.get(name)
        if handler is None and name != "SessionCreate":
            raise NotModelled(operation_type or "(no operation type)")
        error_code = None
        try:
            if handler is None:
                answer = self._session_create(params)
            else:
                answer = handler(params, self._authenticate(params))
        except Problem as problem:
            error_code = f"{name}.{problem.kind}"
            answer = {"Error": {"ErrorCode": error_code, "ErrorMessage": f"{name}: {problem}"}}
        raw_id = params.get("TicketID")
        ticket_id = None if raw_id in (None, "") else str(raw_id)
        with self._lock:
            self._records.append(OperationRecord(name, ticket_id, error_code))
        return answer

    def records(self) -> list[OperationRecord]:
        """Every operation run so far, oldest first."""
        with self._lock:
            return list(self._records)

    def _authenticate(self, params: Mapping[str, Any]) -> int:
        login, password = params.get("UserLogin"), params.get("Password")
        session, customer = params.get("SessionID"), params.get("CustomerUserLogin")
        if not (login or customer or session):
            raise Problem(
                "MissingParameter", "UserLogin, CustomerUserLogin or SessionID is required!"
            )
        if (login or customer) and not password and not session:
            raise Problem("MissingParameter", "Password or SessionID is required!")
        user_id = None
        if session:
            user_id = self._sessions.user(str(session))
        elif login and not customer:
            user_id = self._state.directory.authenticate(str(login), _password(password))
        if user_id is None:
            raise Problem("AuthFail", "User could not be authenticated!")
        return user_id

    def _session_create(self, params: Mapping[str, Any]) -> JsonObject:
        login, password = params.get("UserLogin"), params.get("Password")
        if not (login or params.get("CustomerUserLogin")):
            raise Problem("MissingParameter", "UserLogin or CustomerUserLogin is required!")
        if not password:
            raise Problem("MissingParameter", "Password is required!")
        user_id = (
            self._state.directory.authenticate(str(login), _password(password)) if login else None
        )
        if user_id is None:
            raise Problem("AuthFail", "Authorization failing!")
        return {"SessionID": self._sessions.create(user_id)}

    def _ticket_get(self, params: Mapping[str, Any], user_id: int) -> JsonObject:
        raw = params.get("TicketID")
        items = raw if isinstance(raw, list) else str(raw or "").split(",")
        ids = [str(item).strip() for item in items if str(item).strip()]
        if not ids:
            raise Problem("MissingParameter", "TicketID parameter is missing!")
        if not all(_POSITIVE.match(ticket_id) for ticket_id in ids):
            raise Problem("WrongStructure", "Invalid ticket ID parameter(s) found!")
        order = str(params.get("ArticleOrder") or "ASC").upper()
        limit = str(params.get("ArticleLimit") or "")
        senders = params.get("ArticleSenderType") or []

        def render(ticket: Any) -> JsonObject:
            return self._renderer.rest(
                ticket,
                dynamic_fields=_flag(params.get("DynamicFields")),
                all_articles=_flag(params.get("AllArticles")),
                descending=order == "DESC",
                limit=int(limit) if limit.isdigit() else None,
                sender_types=senders if isinstance(senders, list) else [str(senders)],
            )

        tickets = []
        for ticket_id in ids:
            found = self._state.read(int(ticket_id), render)
            if found is None:
                raise Problem("AccessDenied", "User does not have access to the ticket!")
            tickets.append(found)
        return {"Ticket": tickets}

    def _ticket_search(self, params: Mapping[str, Any], user_id: int) -> JsonObject:
        rows = self._state.each(lambda t: (self._renderer.ticket(t), self._renderer.history(t)))
        now = catalog.format_time(self._state.now(), self._state.directory.zone)
        history = {int(ticket["TicketID"]): entries for ticket, entries in rows}
        ids = search(params, [ticket for ticket, _ in rows], self._state.fields, now, history)
        return {"TicketID": ids} if ids else {}

    def _ticket_create(self, params: Mapping[str, Any], user_id: int) -> JsonObject:
        change = ticket_change(params.get("Ticket"), self._state.directory, create=True)
        article = new_article(params.get("Article"), sender="customer", channel="Email")
        writes = field_writes(params.get("DynamicField"), self._state.fields, self._local_now())
        ticket, article_id = self._state.create(change, article, writes, user_id)
        return {
            "TicketID": str(ticket.ticket_id),
            "TicketNumber": ticket.number,
            "ArticleID": str(article_id),
        }

    def _ticket_update(self, params: Mapping[str, Any], user_id: int) -> JsonObject:
        raw_id, number = params.get("TicketID"), params.get("TicketNumber")
        if raw_id in (None, "") and number in (None, ""):
            raise Problem("MissingParameter", "TicketID or TicketNumber is required!")
        ticket_id = self._resolve(raw_id, number)
        if ticket_id is None:
            raise Problem("AccessDenied", "User does not have access to the ticket!")
        change = ticket_change(params.get("Ticket"), self._state.directory, create=False)
        raw_article = params.get("Article")
        article = None
        if raw_article not in (None, {}, ""):
            article = new_article(raw_article, sender="agent", channel="Internal")
        writes = field_writes(params.get("DynamicField"), self._state.fields, self._local_now())
        event_id = str(raw_id) if raw_id not in (None, "") else str(ticket_id)
        try:
            ticket, article_id = self._state.update(
                ticket_id, change, article, writes, user_id, event_id
            )
        except KeyError:
            raise Problem("AccessDenied", "User does not have access to the ticket!") from None
        answer: JsonObject = {"TicketID": str(ticket.ticket_id), "TicketNumber": ticket.number}
        if article_id is not None:
            answer["ArticleID"] = str(article_id)
        return answer

    def _resolve(self, raw_id: object, number: object) -> int | None:
        if raw_id not in (None, ""):
            text = str(raw_id).strip()
            if not text.isdigit():
                return None
            return self._state.read(int(text), lambda t: t.ticket_id)
        found = [
            tid for tid, num in self._state.each(lambda t: (t.ticket_id, t.number)) if num == number
        ]
        return found[0] if found else None

    def _local_now(self) -> dt.datetime:
        zone = self._state.directory.zone
        return self._state.now().astimezone(zone).replace(tzinfo=None)


def _password(value: object) -> str | bytes:
    """The ``X-OTRS-Header-Password`` header arrives as raw bytes; body and query as text."""
    return value if isinstance(value, bytes) else str(value)


def _flag(value: object) -> bool:
    return str(value).strip() not in ("", "0", "None")
