"""The sandbox's Python API for what an admin or agent does in Znuny's web interface.

Changes made here go through the same checks and raise the same events as changes through
the REST API (they are "agent" changes, UserID 1 by default), so an invoker fires for them.
The agent interface passes the TicketID of an update as a form string, so events raised by
:meth:`Admin.update_ticket` carry a string ``TicketID``; those raised by
:meth:`Admin.create_ticket` carry an int, like the captured TicketCreate (facts §1).
A refused change raises ``ValueError`` naming Znuny's error kind and changes nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

from connector.sandbox.znuny import catalog
from connector.sandbox.znuny.changes import (
    Directory,
    NewArticle,
    Problem,
    field_writes,
    new_article,
    ticket_change,
)
from connector.sandbox.znuny.dynamic_fields import (
    DynamicFieldDefinition,
    DynamicFieldRegistry,
    FieldType,
)
from connector.sandbox.znuny.state import ZnunyState
from connector.sandbox.znuny.ticket_data import Renderer


class Admin:
    """Directory data, dynamic fields and tickets, changed as an admin or agent would."""

    def __init__(
        self,
        clock: Callable[[], dt.datetime],
        zone: dt.tzinfo,
        agents: Mapping[str, str] | None,
    ) -> None:
        self._clock = clock
        self.directory = Directory(zone, catalog.format_time(clock(), zone), agents)
        self.fields = DynamicFieldRegistry()
        self._renderer = Renderer(self.directory, self.fields, clock)
        self._state = ZnunyState(self.directory, self.fields, clock, self._renderer.ticket)

    # --- directory -------------------------------------------------------------------------

    def add_queue(self, name: str, *, comment: str = "") -> int:
        """Create a queue; returns its QueueID."""
        with self._state.lock:
            if self.directory.queue_id(name) is not None:
                raise ValueError(f"queue {name!r} already exists")
            queue_id = max(self.directory.queues) + 1
            self.directory.queues[queue_id] = catalog.Queue(
                queue_id, name, comment, self._now_text()
            )
            return queue_id

    def add_customer_company(self, customer_id: str, name: str, **fields: Any) -> None:
        """Create a customer company; ``fields`` are extra attributes (a license type ...)."""
        with self._state.lock:
            self.directory.companies[customer_id] = catalog.CustomerCompany(
                customer_id, name, self._now_text(), dict(fields)
            )

    def add_customer_user(
        self,
        login: str,
        *,
        email: str,
        customer_id: str,
        first_name: str = "",
        last_name: str = "",
        **fields: Any,
    ) -> None:
        """Create a customer user of company ``customer_id``; ``fields`` are extra attributes."""
        with self._state.lock:
            self.directory.customers[login] = catalog.CustomerUser(
                login, email, customer_id, first_name, last_name, self._now_text(), dict(fields)
            )

    def agent_id(self, login: str) -> int:
        """The UserID of an agent."""
        found = self.directory.agent_id(login)
        if found is None:
            raise KeyError(login)
        return found

    # --- dynamic fields --------------------------------------------------------------------

    def add_dynamic_field(
        self,
        name: str,
        field_type: FieldType,
        *,
        label: str = "",
        config: Mapping[str, Any] | None = None,
        object_type: str = "Ticket",
    ) -> None:
        """Create a dynamic field (``DynamicFieldAdd``); see facts §3 for ``config``."""
        definition = DynamicFieldDefinition.model_validate(
            {
                "Name": name,
                "Label": label or name,
                "FieldType": field_type,
                "ObjectType": object_type,
                "Config": dict(config or {}),
            }
        )
        self.fields.add(definition)

    def import_dynamic_fields(self, text: str) -> list[str]:
        """Create the fields of a YAML export that do not exist yet; returns their names."""
        return self.fields.import_yaml(text)

    def dynamic_field_names(self) -> list[str]:
        """Names of the valid ticket dynamic fields, in field order."""
        return [field.Name for field in self.fields.ticket_fields()]

    # --- tickets ---------------------------------------------------------------------------

    def create_ticket(
        self,
        *,
        title: str,
        customer_user: str,
        body: str,
        subject: str | None = None,
        queue: str = "Raw",
        state: str = "new",
        priority: str = "3 normal",
        sender_type: str = "customer",
        dynamic_fields: Mapping[str, Any] | None = None,
        user_id: int = 1,
    ) -> int:
        """Create a ticket with its first article; returns the TicketID."""
        raw = {
            "Title": title,
            "Queue": queue,
            "State": state,
            "Priority": priority,
            "CustomerUser": customer_user,
        }
        article = {
            "Subject": subject or title,
            "Body": body,
            "ContentType": "text/plain; charset=utf8",
            "SenderType": sender_type,
        }
        try:
            change = ticket_change(raw, self.directory, create=True)
            first = new_article(article, sender=sender_type, channel="Email")
            writes = field_writes(_pairs(dynamic_fields), self.fields, self._local_now())
        except Problem as problem:
            raise ValueError(f"{problem.kind}: {problem}") from None
        ticket, _ = self._state.create(change, first, writes, user_id)
        return ticket.ticket_id

    def update_ticket(
        self,
        ticket_id: int,
        *,
        title: str | None = None,
        queue: str | None = None,
        state: str | None = None,
        priority: str | None = None,
        customer_user: str | None = None,
        dynamic_fields: Mapping[str, Any] | None = None,
        user_id: int = 1,
    ) -> None:
        """Change a ticket as an agent; a field value of None clears the field."""
        given = {
            "Title": title,
            "Queue": queue,
            "State": state,
            "Priority": priority,
            "CustomerUser": customer_user,
        }
        raw = {key: value for key, value in given.items() if value is not None}
        self._change(ticket_id, raw, None, dynamic_fields, user_id, str(ticket_id))

    def add_article(
        self,
        ticket_id: int,
        *,
        body: str,
        subject: str = "Re:",
        sender_type: str = "agent",
        user_id: int = 1,
    ) -> int:
        """Add an article (a reply, a note, a customer follow-up); returns its ArticleID."""
        channel = "Internal" if sender_type == "agent" else "Email"
        article = NewArticle(subject, body, sender_type=sender_type, channel=channel)
        article_id = self._change(ticket_id, {}, article, None, user_id, str(ticket_id))
        assert article_id is not None
        return article_id

    def ticket(self, ticket_id: int) -> dict[str, Any]:
        """The TicketGet hash (flat ``DynamicField_*`` keys); KeyError if there is none."""
        found = self._state.read(int(ticket_id), self._renderer.ticket)
        if found is None:
            raise KeyError(ticket_id)
        return found

    def deep_ticket(self, ticket_id: int) -> dict[str, Any]:
        """The TicketDeepGet hash an invoker would send now."""
        found = self._state.read(int(ticket_id), self._renderer.deep)
        if found is None:
            raise KeyError(ticket_id)
        return found

    def ticket_ids(self) -> list[int]:
        return self._state.each(lambda ticket: ticket.ticket_id)

    def _change(
        self,
        ticket_id: int,
        raw: Mapping[str, Any],
        article: NewArticle | None,
        dynamic_fields: Mapping[str, Any] | None,
        user_id: int,
        event_id: int | str,
    ) -> int | None:
        try:
            change = ticket_change(dict(raw), self.directory, create=False)
            writes = field_writes(_pairs(dynamic_fields), self.fields, self._local_now())
        except Problem as problem:
            raise ValueError(f"{problem.kind}: {problem}") from None
        _, article_id = self._state.update(
            int(ticket_id), change, article, writes, user_id, event_id
        )
        return article_id

    def _now_text(self) -> str:
        return catalog.format_time(self._clock(), self.directory.zone)

    def _local_now(self) -> dt.datetime:
        return self._clock().astimezone(self.directory.zone).replace(tzinfo=None)


def _pairs(values: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    return [{"Name": k, "Value": "" if v is None else v} for k, v in (values or {}).items()]
