"""REST side of a Zammad instance: read a ticket into a snapshot, apply a plan, list changes.

Reading (facts §4.4–§4.6): ``GET /api/v1/tickets/:id?expand=true`` gives the ticket's columns,
its custom attributes at the same level, and with ``expand=true`` the *names* of group, state,
priority, organization and customer (strings, unlike the webhook payload's objects). The
customer and organization are fetched separately because only those calls carry their custom
attributes (``GET /api/v1/users/:id``, ``GET /api/v1/organizations/:id``); tags are not part of
any ticket JSON (``GET /api/v1/tags?object=Ticket&o_id=:id``), nor is the article text
(``GET /api/v1/ticket_articles/by_ticket/:id``).

Writing (facts §3, §4.4, §4.5): ``PUT /api/v1/tickets/:id`` with only the changed managed
attributes. Unknown keys would be dropped silently, ``updated_by_id`` is set by Zammad to the
token's user — which is what lets the update trigger exclude our own writes — and a PUT never
carries an ``article`` (article conditions must not match our updates). Zammad takes a row lock
and the last write wins; there is no optimistic locking and no 409. The response is ignored: it
may show pre-trigger data (#6255). Tags are added and removed one call each; tag changes are not
ticket updates for triggers, so they cannot loop (they do "touch" ``updated_at``).

Listing (facts §4.4): ``GET /api/v1/tickets/search`` with an Elasticsearch query string,
``limit`` ≤ 200, ``page``, ``sort_by``/``order_by``; ``tickets_count`` is the count on this
page, not a total, so paging stops at the first short page.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import requests
from pydantic import AwareDatetime, BaseModel, ConfigDict

from connector.errors import PermanentError
from connector.helpdesks.base import MANAGED_FIELDS, ApiCall, WritePlan
from connector.helpdesks.http import parse_body
from connector.helpdesks.zammad import text
from connector.helpdesks.zammad.options import ZammadOptions
from connector.helpdesks.zammad.payload import NamedPayload, TicketId
from connector.helpdesks.zammad.rest import ZammadApi, record_path
from connector.policy.ticket import Party, TicketSnapshot

SEARCH_LIMIT = 200  # Zammad's maximum per page (tickets_controller, 2021)


class _Record(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    def extra(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class TicketJson(_Record):
    """``GET /api/v1/tickets/:id?expand=true``."""

    id: TicketId
    number: str | int | None = None
    title: str | None = None
    created_at: AwareDatetime
    customer_id: int | None = None
    organization_id: int | None = None
    group: NamedPayload | str | None = None
    state: NamedPayload | str | None = None
    priority: NamedPayload | str | None = None


class UserJson(_Record):
    """``GET /api/v1/users/:id?expand=true``."""

    id: int
    login: str | None = None
    email: str | None = None
    firstname: str | None = None
    lastname: str | None = None


class OrganizationJson(_Record):
    """``GET /api/v1/organizations/:id``."""

    id: int
    name: str | None = None


class TagsJson(BaseModel):
    """``GET /api/v1/tags?object=Ticket&o_id=:id`` → ``{"tags": [...]}``."""

    tags: list[str] = []


class SearchJson(BaseModel):
    """``GET /api/v1/tickets/search`` without ``expand``: ids and UI assets."""

    tickets: list[TicketId] = []
    tickets_count: int | None = None


class ZammadAdapter:
    """:class:`~connector.helpdesks.base.HelpdeskAdapter` for one Zammad instance.

    Args:
        instance: the configured instance name, copied into every snapshot.
        api: the instance's REST session (owned: :meth:`close` closes it).
        options: the instance's validated options (attribute names, tag prefix, open states).
    """

    kind = "zammad"

    def __init__(self, instance: str, api: ZammadApi, options: ZammadOptions) -> None:
        self.instance = instance
        self.api = api
        self.options = options

    def read(self, ticket_id: str) -> TicketSnapshot:
        """The ticket now, with the three managed attributes in ``managed_fields``."""
        path = record_path("tickets", ticket_id)
        ticket = self.api.get(path, TicketJson, {"expand": "true"})
        customer = organization = None
        if ticket.customer_id:
            user = self.api.get(
                record_path("users", ticket.customer_id), UserJson, {"expand": "true"}
            )
            customer = Party(
                id=str(user.id),
                name=text.person_name(user.firstname, user.lastname, user.login),
                email=user.email or (user.login if user.login and "@" in user.login else None),
                fields=text.custom_fields(user.extra(), text.USER_COLUMNS),
            )
        if ticket.organization_id:
            org = self.api.get(
                record_path("organizations", ticket.organization_id), OrganizationJson
            )
            organization = Party(
                id=str(org.id),
                name=org.name,
                fields=text.custom_fields(org.extra(), text.ORGANIZATION_COLUMNS),
            )
        tags = self.api.get("/api/v1/tags", TagsJson, {"object": "Ticket", "o_id": ticket.id})
        articles = self.api.get_list(
            f"/api/v1/ticket_articles/by_ticket/{ticket.id}", {"expand": "true"}
        )
        body = text.first_customer_text(articles)
        extra = ticket.extra()
        attributes = self.options.attribute_names
        managed = {name: extra.pop(attributes[name], None) for name in MANAGED_FIELDS}
        return TicketSnapshot(
            helpdesk=self.kind,
            instance=self.instance,
            id=str(ticket.id),
            number=None if ticket.number is None else str(ticket.number),
            created_at=ticket.created_at,
            subject=ticket.title or "",
            body=body,
            customer=customer,
            organization=organization,
            group=_name(ticket.group),
            priority=_name(ticket.priority),
            state=_name(ticket.state),
            fields=text.custom_fields(extra, text.TICKET_COLUMNS),
            tags=tuple(tags.tags),
            managed_fields={
                "sla_due_at": text.utc_iso(managed["sla_due_at"]),
                "sla_tier": _text(managed["sla_tier"]),
                "sla_level": _text(managed["sla_level"]),
            },
        )

    def apply(self, plan: WritePlan) -> list[ApiCall]:
        """One PUT with the changed attributes, then one call per tag; nothing for no change."""
        if plan.is_empty:
            return []
        path = record_path("tickets", plan.ticket_id)
        prefix = self.options.tag_prefix.lower()
        foreign = [
            tag for tag in (*plan.add_tags, *plan.remove_tags) if not tag.lower().startswith(prefix)
        ]
        if foreign:
            raise PermanentError(
                f"refusing to change tags outside the managed prefix {self.options.tag_prefix!r}: "
                f"{sorted(foreign)} (options.tag_prefix must equal overrides.yaml tag_prefix)"
            )
        unknown = sorted(set(plan.fields) - set(MANAGED_FIELDS))
        if unknown:
            raise PermanentError(
                f"refusing to write fields the connector does not manage: {unknown}"
            )
        calls: list[ApiCall] = []
        if plan.fields:
            attributes = self.options.attribute_names
            body = {attributes[name]: value for name, value in plan.fields.items()}
            calls.append(self.api.call("PUT", path, json=body)[1])
        ticket_id = int(path.rsplit("/", 1)[1])
        for tag in plan.add_tags:
            item = {"item": tag, "object": "Ticket", "o_id": ticket_id}
            calls.append(self.api.call("POST", "/api/v1/tags/add", json=item)[1])
        for tag in plan.remove_tags:
            item = {"item": tag, "object": "Ticket", "o_id": ticket_id}
            calls.append(self.api.call("DELETE", "/api/v1/tags/remove", json=item)[1])
        return calls

    def changed_since(self, since: dt.datetime | None) -> Iterator[str]:
        """Open tickets updated at or after ``since``, oldest change first, 200 per page.

        A ticket updated while the pages are read moves to the end and may show up twice
        (reported once) or push another ticket onto a page already read; that one was changed
        after ``since`` too and is found by the next sweep.
        """
        query = self.search_query(since)
        seen: set[int] = set()
        page = 1
        while True:
            params = {
                "query": query,
                "limit": SEARCH_LIMIT,
                "page": page,
                "sort_by": "updated_at",
                "order_by": "asc",
            }
            response, _ = self.api.call("GET", "/api/v1/tickets/search", params=params)
            ids = _search_ids(response)
            fresh = [ticket_id for ticket_id in ids if ticket_id not in seen]
            seen.update(fresh)
            yield from (str(ticket_id) for ticket_id in fresh)
            if len(ids) < SEARCH_LIMIT or not fresh:
                return
            page += 1

    def search_query(self, since: dt.datetime | None) -> str:
        """The Elasticsearch query string for open tickets changed since ``since``.

        ``:`` is reserved in the query-string syntax, so the time's colons are escaped
        (``updated_at:>=2025-03-04T08\\:12\\:40Z``); state names are quoted because
        ``pending reminder`` has a space.
        """
        states = " OR ".join(f'"{state}"' for state in self.options.open_states)
        query = f"state.name:({states})"
        if since is not None:
            if since.tzinfo is None:
                raise ValueError("since must be an aware datetime")
            moment = since.astimezone(dt.UTC).strftime("%Y-%m-%dT%H\\:%M\\:%SZ")
            query += f" AND updated_at:>={moment}"
        return query

    def close(self) -> None:
        """Release the HTTP connection pool."""
        self.api.close()


def _name(value: NamedPayload | str | None) -> str | None:
    if isinstance(value, NamedPayload):
        return value.name
    return value


def _text(value: object) -> str | None:
    return None if value is None or value == "" else str(value)


def _search_ids(response: requests.Response) -> list[int]:
    """Ticket ids of a search page: ``{"tickets": [ids], ...}`` or, expanded, ``[{...}]``."""
    try:
        data = response.json()
    except ValueError:
        raise PermanentError("ticket search: response is not JSON") from None
    if isinstance(data, list):
        return [int(item["id"]) for item in data if isinstance(item, dict) and "id" in item]
    return list(parse_body(SearchJson, response, "GET /api/v1/tickets/search").tickets)
