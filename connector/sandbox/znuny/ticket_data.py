"""Tickets rendered the way Znuny hands them out: TicketGet, TicketDeepGet and the REST answer.

Shapes (facts §1-§2, ``fixtures/znuny/TicketCreate.captured.json``):

* ``TicketGet`` with dynamic fields: one flat hash, times ``YYYY-MM-DD HH:MM:SS`` in
  ``OTRSTimeZone``, ids as ints, ``ServiceID``/``SLAID`` ``""`` when unset, ``Escalation*Time``
  0, and one ``DynamicField_<Name>`` key per valid ticket field (``null`` when unset, a list for
  Multiselect). Conditions, ``OldTicketData`` and the search see this hash.
* ``TicketDeepGet`` (the invoker's ``Ticket``): the same plus ``Article`` (the event's article or
  the first), ``Articles``, ``CustomerUser``, ``CustomerCompany``, ``QueueData``,
  ``PriorityData``, ``TypeData``, ``OwnerData``, ``ResponsibleData``, ``CreateByData``,
  ``SLAData``/``ServiceData`` (``{}`` when unset).
* REST ``TicketGet`` (``Operation/Ticket/TicketGet.pm``): ``{"Ticket": [hash, ...]}`` where the
  flat ``DynamicField_*`` keys become ``"DynamicField": [{"Name", "Value"}]`` sorted by name
  (only with ``DynamicFields=1``) and ``"Article": [...]`` is present only with
  ``AllArticles=1``. The facts do not pin the JSON types of this answer; the sandbox uses the
  captured TicketGet types (ints), so a reader should accept ints and numeric strings alike.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection
from typing import Any

from connector.sandbox.znuny import catalog
from connector.sandbox.znuny.changes import Directory
from connector.sandbox.znuny.dynamic_fields import DynamicFieldRegistry
from connector.sandbox.znuny.state import Article, Ticket


class Renderer:
    """Turns stored tickets into Znuny's hashes; call it with the state's lock held."""

    def __init__(
        self,
        directory: Directory,
        fields: DynamicFieldRegistry,
        clock: Callable[[], dt.datetime],
    ) -> None:
        self._directory = directory
        self._fields = fields
        self._clock = clock

    def _time(self, moment: dt.datetime) -> str:
        return catalog.format_time(moment, self._directory.zone)

    def ticket(self, ticket: Ticket, *, dynamic_fields: bool = True) -> dict[str, Any]:
        """The ``TicketGet`` hash."""
        state = catalog.state_by_id(ticket.state_id) or (ticket.state_id, "?", "?")
        queue = self._directory.queues[ticket.queue_id]
        agents = self._directory.agents
        age = int((self._clock() - ticket.created).total_seconds())
        data: dict[str, Any] = {
            "TicketID": ticket.ticket_id,
            "TicketNumber": ticket.number,
            "Title": ticket.title,
            "QueueID": ticket.queue_id,
            "Queue": queue.name,
            "GroupID": queue.group_id,
            "StateID": ticket.state_id,
            "State": state[1],
            "StateType": state[2],
            "PriorityID": ticket.priority_id,
            "Priority": dict(catalog.PRIORITIES)[ticket.priority_id],
            "TypeID": ticket.type_id,
            "Type": catalog.TYPES[ticket.type_id],
            "LockID": ticket.lock_id,
            "Lock": catalog.LOCKS[ticket.lock_id],
            "OwnerID": ticket.owner_id,
            "Owner": agents[ticket.owner_id].login,
            "ResponsibleID": ticket.responsible_id,
            "Responsible": agents[ticket.responsible_id].login,
            "CustomerID": ticket.customer_id or None,
            "CustomerUserID": ticket.customer_user_id or None,
            "ServiceID": "",
            "SLAID": "",
            "ArchiveFlag": "n",
            "Created": self._time(ticket.created),
            "Changed": self._time(ticket.changed),
            "CreateBy": ticket.create_by,
            "ChangeBy": ticket.change_by,
            "Age": max(age, 0),
            "UnlockTimeout": ticket.unlock_timeout,
            "UntilTime": 0,
            "RealTillTimeNotUsed": 0,
            "EscalationTime": 0,
            "EscalationResponseTime": 0,
            "EscalationUpdateTime": 0,
            "EscalationSolutionTime": 0,
        }
        if dynamic_fields:
            for definition in self._fields.ticket_fields():
                value = ticket.dynamic.get(definition.Name)
                data[f"DynamicField_{definition.Name}"] = (
                    list(value) if isinstance(value, list) else value
                )
        return data

    def history(self, ticket: Ticket) -> list[str]:
        """When each ticket history entry was added (what ``TicketChangeTime*`` searches)."""
        return [self._time(moment) for moment in ticket.history]

    def article(self, article: Article) -> dict[str, Any]:
        """One article hash, as in the captured ``Article``/``Articles``."""
        mime, _, rest = article.content_type.partition(";")
        charset = rest.strip().removeprefix("charset=") or "utf8"
        realname = article.from_.split("<")[0].strip().strip('"') or article.from_
        created = self._time(article.created)
        return {
            "ArticleID": article.article_id,
            "TicketID": article.ticket_id,
            "ArticleNumber": article.number,
            "SenderType": article.sender_type,
            "SenderTypeID": catalog.SENDER_TYPES[article.sender_type],
            "CommunicationChannelID": catalog.CHANNELS[article.channel],
            "IsVisibleForCustomer": int(article.visible),
            "From": article.from_,
            "FromRealname": realname,
            "To": article.to,
            "ToRealname": article.to,
            "Cc": "",
            "Bcc": "",
            "ReplyTo": "",
            "Subject": article.subject,
            "Body": article.body,
            "ContentType": article.content_type,
            "MimeType": mime.strip(),
            "Charset": charset,
            "ContentCharset": charset,
            "MessageID": "",
            "InReplyTo": "",
            "References": "",
            "IncomingTime": int(article.created.timestamp()),
            "CreateTime": created,
            "ChangeTime": created,
            "CreateBy": article.create_by,
            "ChangeBy": article.create_by,
        }

    def deep(self, ticket: Ticket, article_id: int | None = None) -> dict[str, Any]:
        """The ``TicketDeepGet`` hash an invoker sends as ``Ticket``."""
        data = self.ticket(ticket)
        articles = [self.article(a) for a in ticket.articles]
        chosen = next((a for a in articles if a["ArticleID"] == article_id), None)
        if chosen is None and articles:
            chosen = articles[0]
        created = self._directory.created
        customer = self._directory.customers.get(ticket.customer_user_id)
        company = self._directory.companies.get(ticket.customer_id)
        agents = self._directory.agents
        data.update(
            {
                "Article": chosen or {},
                "Articles": articles,
                "CustomerUser": customer.data(company) if customer else {},
                "CustomerCompany": company.data() if company else {},
                "QueueData": self._directory.queues[ticket.queue_id].data(),
                "PriorityData": catalog.priority_data(ticket.priority_id, created),
                "TypeData": catalog.type_data(ticket.type_id, created),
                "OwnerData": agents[ticket.owner_id].data(),
                "ResponsibleData": agents[ticket.responsible_id].data(),
                "CreateByData": agents[ticket.create_by].data(),
                "SLAData": {},
                "ServiceData": {},
            }
        )
        return data

    def rest(
        self,
        ticket: Ticket,
        *,
        dynamic_fields: bool,
        all_articles: bool,
        descending: bool = False,
        limit: int | None = None,
        sender_types: Collection[str] = (),
    ) -> dict[str, Any]:
        """One entry of the REST ``TicketGet`` answer's ``Ticket`` list."""
        flat = self.ticket(ticket, dynamic_fields=dynamic_fields)
        data = {k: v for k, v in flat.items() if not k.startswith("DynamicField_")}
        if dynamic_fields:
            data["DynamicField"] = [
                {"Name": key.removeprefix("DynamicField_"), "Value": flat[key]}
                for key in sorted(flat)
                if key.startswith("DynamicField_")
            ]
        if all_articles:
            articles = [
                a for a in ticket.articles if not sender_types or a.sender_type in sender_types
            ]
            if descending:
                articles.reverse()
            if limit is not None:
                articles = articles[:limit]
            data["Article"] = [self.article(a) for a in articles]
        return data
