"""The sandbox's Znuny database: directory data, tickets and articles behind one lock.

Every change of the ticket row records who made it (``ChangeBy`` and ``Changed`` are updated
by every attribute and dynamic-field write: ``ObjectType/Ticket.pm:106``) and the events Znuny
raises for it; every event also leaves a ticket *history* entry, which TicketSearch's
``TicketChangeTime*`` parameters search. The events are handed to the listener (the
GenericInterface event handler) once the change is complete and the lock released, as the
real handler runs at the end of the transaction (``Transaction: 1``, facts §1).

A new article does **not** touch the ticket row (``Article/Backend/MIMEBase.pm``
``ArticleCreate`` and ``Base.pm`` ``_MetaArticleCreate`` insert article rows and a history
row only): ``ChangeBy`` and ``Changed`` stay as they were. Only ``TicketUnlockTimeoutUpdate``,
which ``ArticleCreate`` calls for an agent article, or for a customer article whose previous
non-system article came from an agent, sets ``ChangeBy``/``Changed`` (and raises
``TicketUnlockTimeoutUpdate``). A customer's follow-up after the integration agent's write
therefore leaves ``ChangeBy`` at the integration agent.

Events and their data (facts §1, ``fixtures/znuny/event-blocks.captured.json``): a ticket
created raises TicketCreate, TicketCustomerUpdate and ArticleCreate (with ``OldTicketData``);
updates raise TicketTitleUpdate, TicketQueueUpdate, TicketStateUpdate, TicketCustomerUpdate,
TicketPriorityUpdate, TicketOwnerUpdate, TicketResponsibleUpdate, ArticleCreate and
``TicketDynamicFieldUpdate_<Name>`` ``{FieldName, Value, OldValue, TicketID, UserID}``, each only
when the value really changes. ``TicketID`` in the event data is whatever the caller held: an
int for events raised while creating the ticket, the string from the URL (or form) for updates.
"""

from __future__ import annotations

import copy
import datetime as dt
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from connector.sandbox.znuny import catalog
from connector.sandbox.znuny.changes import Directory, FieldWrite, NewArticle, TicketChange
from connector.sandbox.znuny.dynamic_fields import DynamicFieldRegistry, Value

T = TypeVar("T")


@dataclass
class Article:
    article_id: int
    ticket_id: int
    number: int
    sender_type: str
    channel: str
    subject: str
    body: str
    content_type: str
    from_: str
    to: str
    visible: bool
    created: dt.datetime
    create_by: int


@dataclass
class Ticket:
    ticket_id: int
    number: str
    title: str
    queue_id: int
    state_id: int
    priority_id: int
    customer_id: str
    customer_user_id: str
    created: dt.datetime
    changed: dt.datetime
    create_by: int
    change_by: int
    type_id: int = 1
    lock_id: int = 1
    owner_id: int = 1
    responsible_id: int = 1
    unlock_timeout: int = 0
    dynamic: dict[str, Value] = field(default_factory=dict)
    articles: list[Article] = field(default_factory=list)
    #: when each history entry was added (TicketSearch ``TicketChangeTime*``)
    history: list[dt.datetime] = field(default_factory=list)


@dataclass(frozen=True)
class TicketEvent:
    """One event as the GenericInterface handler receives it.

    Attributes:
        name: ``TicketCreate``, ``TicketDynamicFieldUpdate_SLADueDate``, ...
        ticket_id: the ticket, always as an int (for the sandbox's own bookkeeping).
        data: the event data exactly as Znuny passes it (``TicketID`` int or string).
    """

    name: str
    ticket_id: int
    data: dict[str, Any]

    def block(self) -> dict[str, Any]:
        """The invoker request's ``Event`` block: the event data plus ``Event`` (facts §1)."""
        return {**copy.deepcopy(self.data), "Event": self.name}


Listener = Callable[[list[TicketEvent]], None]


class ZnunyState:
    """Tickets, articles and the directory, changed only through methods that raise events."""

    def __init__(
        self,
        directory: Directory,
        fields: DynamicFieldRegistry,
        clock: Callable[[], dt.datetime],
        snapshot: Callable[[Ticket], dict[str, Any]],
    ) -> None:
        self.directory = directory
        self.fields = fields
        self.lock = threading.RLock()
        self._clock = clock
        self._snapshot = snapshot
        self._tickets: dict[int, Ticket] = {}
        self._next_ticket = 1
        self._next_article = 1
        self._counter: tuple[str, int] = ("", 0)
        self.listener: Listener = lambda events: None

    def now(self) -> dt.datetime:
        return self._clock().astimezone(dt.UTC)

    def read(self, ticket_id: int, render: Callable[[Ticket], T]) -> T | None:
        """``render(ticket)`` under the lock, or None if there is no such ticket."""
        with self.lock:
            ticket = self._tickets.get(ticket_id)
            return None if ticket is None else render(ticket)

    def each(self, render: Callable[[Ticket], T]) -> list[T]:
        """``render`` applied to every ticket, oldest first, under the lock."""
        with self.lock:
            return [render(ticket) for ticket in self._tickets.values()]

    def create(
        self,
        change: TicketChange,
        article: NewArticle,
        writes: list[FieldWrite],
        user_id: int,
    ) -> tuple[Ticket, int]:
        """Create a ticket with its first article (TicketCreate ... ArticleCreate events)."""
        with self.lock:
            now = self.now()
            ticket_id = self._next_ticket
            self._next_ticket += 1
            customer = change.customer_user or ""
            ticket = Ticket(
                ticket_id=ticket_id,
                number=self._ticket_number(now),
                title=change.title or "",
                queue_id=change.queue_id or 2,
                state_id=change.state_id or 1,
                priority_id=change.priority_id or 3,
                customer_id=change.customer_id or self.directory.customer_id_of(customer),
                customer_user_id=customer,
                created=now,
                changed=now,
                create_by=user_id,
                change_by=user_id,
                type_id=change.type_id or 1,
                owner_id=change.owner_id or user_id,
                responsible_id=change.responsible_id or user_id,
            )
            self._tickets[ticket_id] = ticket
            events: list[TicketEvent] = []
            for name in ("TicketCreate", "TicketCustomerUpdate"):
                self._raise(ticket, events, name, {"TicketID": ticket_id})
            article_id = self._add_article(ticket, article, user_id, ticket_id, events)
            self._write_fields(ticket, writes, user_id, ticket_id, events)
            result = copy.deepcopy(ticket)
        self.listener(events)
        return result, article_id

    def update(
        self,
        ticket_id: int,
        change: TicketChange,
        article: NewArticle | None,
        writes: list[FieldWrite],
        user_id: int,
        event_id: int | str,
    ) -> tuple[Ticket, int | None]:
        """Apply already validated changes; raises KeyError for an unknown ticket.

        Args:
            event_id: the TicketID to put in the event data (a string from a URL or form).
        """
        with self.lock:
            ticket = self._tickets[ticket_id]
            events: list[TicketEvent] = []

            def set_attribute(attribute: str, value: object, event: str) -> None:
                if value is None or getattr(ticket, attribute) == value:
                    return
                setattr(ticket, attribute, value)
                self._touch(ticket, user_id)
                self._raise(ticket, events, event, {"TicketID": event_id})

            set_attribute("title", change.title, "TicketTitleUpdate")
            set_attribute("queue_id", change.queue_id, "TicketQueueUpdate")
            set_attribute("type_id", change.type_id, "TicketTypeUpdate")
            set_attribute("state_id", change.state_id, "TicketStateUpdate")
            if change.customer_user is not None or change.customer_id is not None:
                user = change.customer_user or ticket.customer_user_id
                company = change.customer_id or self.directory.customer_id_of(user)
                if (user, company) != (ticket.customer_user_id, ticket.customer_id):
                    ticket.customer_user_id, ticket.customer_id = user, company
                    self._touch(ticket, user_id)
                    self._raise(ticket, events, "TicketCustomerUpdate", {"TicketID": event_id})
            set_attribute("priority_id", change.priority_id, "TicketPriorityUpdate")
            set_attribute("owner_id", change.owner_id, "TicketOwnerUpdate")
            set_attribute("responsible_id", change.responsible_id, "TicketResponsibleUpdate")
            article_id = None
            if article is not None:
                article_id = self._add_article(ticket, article, user_id, event_id, events)
            self._write_fields(ticket, writes, user_id, event_id, events)
            result = copy.deepcopy(ticket)
        self.listener(events)
        return result, article_id

    def _touch(self, ticket: Ticket, user_id: int) -> None:
        ticket.changed = self.now()
        ticket.change_by = user_id

    def _raise(
        self, ticket: Ticket, events: list[TicketEvent], name: str, data: dict[str, Any]
    ) -> None:
        """Queue event ``name`` for the listener and add its ticket history entry."""
        ticket.history.append(self.now())
        events.append(TicketEvent(name, ticket.ticket_id, data))

    def _add_article(
        self,
        ticket: Ticket,
        new: NewArticle,
        user_id: int,
        event_id: int | str,
        events: list[TicketEvent],
    ) -> int:
        old = self._snapshot(ticket)
        article_id = self._next_article
        self._next_article += 1
        queue = self.directory.queues[ticket.queue_id].name
        sender = new.from_ or self._default_from(ticket, new.sender_type, user_id)
        ticket.articles.append(
            Article(
                article_id=article_id,
                ticket_id=ticket.ticket_id,
                number=len(ticket.articles) + 1,
                sender_type=new.sender_type,
                channel=new.channel,
                subject=new.subject,
                body=new.body,
                content_type=new.content_type,
                from_=sender,
                to=queue,
                visible=new.visible,
                created=self.now(),
                create_by=user_id,
            )
        )
        data = {"TicketID": event_id, "ArticleID": article_id, "OldTicketData": old}
        self._raise(ticket, events, "ArticleCreate", data)  # the ticket row is not touched
        if self._resets_unlock_timeout(ticket):
            incoming = int(self.now().timestamp())
            if ticket.unlock_timeout != incoming:  # TicketUnlockTimeoutUpdate
                ticket.unlock_timeout = incoming
                self._touch(ticket, user_id)
                self._raise(ticket, events, "TicketUnlockTimeoutUpdate", {"TicketID": event_id})
        return article_id

    @staticmethod
    def _resets_unlock_timeout(ticket: Ticket) -> bool:
        """``ArticleCreate``'s rule: after an agent article, or after a customer article whose
        previous article (system ones skipped) came from an agent."""
        *earlier, new = ticket.articles
        if new.sender_type == "agent":
            return True
        if new.sender_type != "customer":
            return False
        previous = [article for article in earlier if article.sender_type != "system"]
        return bool(previous) and previous[-1].sender_type == "agent"

    def _default_from(self, ticket: Ticket, sender_type: str, user_id: int) -> str:
        if sender_type == "customer":
            customer = self.directory.customers.get(ticket.customer_user_id)
            return customer.email if customer else ticket.customer_user_id
        agent = self.directory.agents.get(user_id)
        if agent is None:
            return "system"
        return f'"{agent.first_name} {agent.last_name}" <{agent.email}>'

    def _write_fields(
        self,
        ticket: Ticket,
        writes: list[FieldWrite],
        user_id: int,
        event_id: int | str,
        events: list[TicketEvent],
    ) -> None:
        for name, value in writes:
            old = ticket.dynamic.get(name)
            if old == value:
                continue  # Backend ValueIsDifferent: no write, no event, ChangeBy untouched
            if value is None:
                ticket.dynamic.pop(name, None)
            else:
                ticket.dynamic[name] = value
            self._touch(ticket, user_id)
            data = {
                "FieldName": name,
                "Value": copy.deepcopy(value),
                "OldValue": copy.deepcopy(old),
                "TicketID": event_id,
                "UserID": user_id,
            }
            self._raise(ticket, events, f"TicketDynamicFieldUpdate_{name}", data)

    def _ticket_number(self, now: dt.datetime) -> str:
        day = catalog.format_time(now, self.directory.zone)[:10].replace("-", "")
        previous_day, count = self._counter
        count = count + 1 if previous_day == day else 1
        self._counter = (day, count)
        return catalog.ticket_number(day, count)
