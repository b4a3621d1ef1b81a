"""REST side of a Zammad instance: read a ticket into a snapshot, apply a plan, list changes.

Reading (facts §4.4–§4.6): ``GET /api/v1/tickets/:id?expand=true`` gives the ticket's columns,
its custom attributes at the same level, and with ``expand=true`` the *names* of group, state,
priority, organization and customer (strings, unlike the webhook payload's objects). The
customer and organization are fetched separately because only those calls carry their custom
attributes (``GET /api/v1/users/:id``, ``GET /api/v1/organizations/:id``); tags are not part of
any ticket JSON (``GET /api/v1/tags?object=Ticket&o_id=:id``), nor is the article text
(``GET /api/v1/ticket_articles/by_ticket/:id``).

Writing (facts §3, §4.4, §4.5): ``PUT /api/v1/tickets/:id`` with only the changed managed
attributes. ``updated_by_id`` is set by Zammad to the token's user — which is what lets the
update trigger exclude our own writes — and a PUT never carries an ``article`` (article
conditions must not match our updates). Zammad takes a row lock and the last write wins; there
is no optimistic locking and no 409. The response's *values* are ignored: they may show
pre-trigger data (#6255). Its *keys* are not: it is the whole ticket
(``attributes_with_association_ids``: every column, ``null`` ones included), and Zammad drops
unknown keys silently, so an attribute we sent that the answer lacks is no column — not created
or not migrated — and the write is refused as permanent instead of "succeeding" for ever. Tags
are added and removed one call each; tag changes are not ticket updates for triggers, so they
cannot loop (they do "touch" ``updated_at``).

Listing (facts §4.4): ``GET /api/v1/tickets/search`` with an Elasticsearch query string,
``limit`` ≤ 200, ``sort_by``/``order_by``; ``tickets_count`` is the count on this page, not a
total, so a short page is the last. The answer without ``expand`` lists the ids in order and
carries every ticket's columns, ``updated_at`` among them, in ``assets.Ticket``; with
``expand=true`` it is an array of tickets. Paging is by ``updated_at`` (keyset), not by
``page`` (offset): see :meth:`ZammadAdapter.changed_since`.
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
#: how many of a page's last tickets the sweep takes its next lower bound from: the oldest of
#: their times is one Elasticsearch sorted by unless every one of them was updated and not
#: indexed again yet (see ZammadAdapter.changed_since)
SETTLED_TAIL = 10
#: managed field → the option that names its ticket attribute
_OPTION_KEYS = {
    "sla_due_at": "due_at_attribute",
    "sla_tier": "tier_attribute",
    "sla_level": "level_attribute",
}


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
    assets: dict[str, dict[str, Any]] = {}


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
            response, call = self.api.call("PUT", path, json=body)
            calls.append(call)
            self._check_kept(response, path, body)
        ticket_id = int(path.rsplit("/", 1)[1])
        for tag in plan.add_tags:
            item = {"item": tag, "object": "Ticket", "o_id": ticket_id}
            calls.append(self.api.call("POST", "/api/v1/tags/add", json=item)[1])
        for tag in plan.remove_tags:
            item = {"item": tag, "object": "Ticket", "o_id": ticket_id}
            calls.append(self.api.call("DELETE", "/api/v1/tags/remove", json=item)[1])
        return calls

    def _check_kept(self, response: requests.Response, path: str, sent: dict[str, Any]) -> None:
        """Refuse a PUT whose answer lacks an attribute we sent: Zammad dropped it silently.

        Zammad keeps only attributes that are columns (facts §4.4), so before ``setup`` has
        created and migrated them every PUT "succeeds" and changes nothing, and every later job
        writes the same value again. Only the answer's keys are looked at — a key is there
        whatever a trigger did to its value (#6255) — and only in an answer that is a ticket.
        """
        try:
            ticket = response.json()
        except ValueError:
            return
        if not isinstance(ticket, dict) or "id" not in ticket:
            return
        dropped = sorted(name for name in sent if name not in ticket)
        if not dropped:
            return
        fields = {attribute: field for field, attribute in self.options.attribute_names.items()}
        named = ", ".join(
            f"{name!r} (options.{_OPTION_KEYS.get(fields.get(name, ''), '?')})" for name in dropped
        )
        raise PermanentError(
            f"{self.api.source}: PUT {path} -> 200, but Zammad dropped the ticket attribute(s) "
            f"{named}: no such attribute, or not migrated yet. Create and migrate them — "
            f"`bitrix-sla setup zammad --instance {self.instance} --apply`, then restart a "
            "self-hosted Zammad — or fix the option"
        )

    def changed_since(self, since: dt.datetime | None) -> Iterator[str]:
        """Open tickets updated at or after ``since``, oldest change first, 200 per search.

        Paged by ``updated_at`` (keyset), never by ``page``: with offset paging, a ticket of a
        page already read that is updated meanwhile (our own write-back does that) moves to the
        end, every later ticket moves one place forward, and the first one of the next page is
        never listed — nor by the next sweep, since it did not change. Instead each search asks
        for ``updated_at >= <a time the previous page reached>``, oldest first, and skips the
        ids already listed.

        Elasticsearch orders and filters by the ``updated_at`` it has indexed, while the times
        in the answer's assets come from the database; a ticket updated a moment ago and not
        indexed again yet shows a newer time than its place in the list. Moving the search on
        to the newest time of a page would then jump past every ticket indexed in between, and
        those did not change, so no later sweep would list them. So the search moves on to the
        oldest time among the page's last :data:`SETTLED_TAIL` tickets: a ticket whose index
        is current has the time it is sorted by, and every ticket sorted before it was listed.

        * a short page is the last;
        * a full page that cannot move on by time (its tail shares the lower bound) walks that
          instant by id (``id:>last``, sorted by id), then goes on strictly after it.
          Elasticsearch's order among equal times is not defined, so nothing depends on it.

        A ticket updated while the sweep runs may be listed once more; that is harmless (the
        job store coalesces) and it is never listed twice by one call.
        """
        seen: set[int] = set()
        lower, strict = (None if since is None else _millis(since)), False
        while True:
            page = self._search(self._query(lower, strict=strict), sort_by="updated_at")
            fresh = [ticket_id for ticket_id, _ in page if ticket_id not in seen]
            seen.update(fresh)
            yield from (str(ticket_id) for ticket_id in fresh)
            if len(page) < SEARCH_LIMIT:
                return
            newest = max(moment for _, moment in page)
            if lower is not None and (newest < lower or (strict and newest == lower)):
                raise PermanentError(
                    f"ticket search: asked for updated_at {'>' if strict else '>='} "
                    f"{lower.isoformat()}, got tickets up to {newest.isoformat()} only; "
                    "the search does not honour the updated_at condition"
                )
            reached = min(moment for _, moment in page[-SETTLED_TAIL:])
            if lower is None or reached > lower:
                lower, strict = reached, False
            else:  # the page's tail shares this instant: time cannot move the search on
                yield from self._walk_instant(lower, seen)
                strict = True

    def _walk_instant(self, moment: dt.datetime, seen: set[int]) -> Iterator[str]:
        """Every open ticket whose ``updated_at`` is exactly ``moment``, by id, 200 at a time."""
        after = 0
        while True:
            query = self._query(moment, exact=True, after_id=after)
            page = self._search(query, sort_by="id")
            fresh = [ticket_id for ticket_id, _ in page if ticket_id not in seen]
            seen.update(fresh)
            yield from (str(ticket_id) for ticket_id in fresh)
            if len(page) < SEARCH_LIMIT:
                return
            last = max(ticket_id for ticket_id, _ in page)
            if last <= after:
                raise PermanentError(
                    f"ticket search: asked for id > {after}, got ids up to {last} only; "
                    "the search does not honour the id condition"
                )
            after = last

    def _search(self, query: str, *, sort_by: str) -> list[tuple[int, dt.datetime]]:
        """One page of ``GET /api/v1/tickets/search``: (id, ``updated_at``) in answer order."""
        params = {"query": query, "limit": SEARCH_LIMIT, "sort_by": sort_by, "order_by": "asc"}
        response, _ = self.api.call("GET", "/api/v1/tickets/search", params=params)
        return _search_page(response)

    def search_query(self, since: dt.datetime | None) -> str:
        """The Elasticsearch query string for open tickets changed since ``since``.

        ``:`` is reserved in the query-string syntax, so the time's colons are escaped
        (``updated_at:>=2025-03-04T08\\:12\\:40Z``); state names are quoted because
        ``pending reminder`` has a space.
        """
        return self._query(since)

    def _query(
        self,
        moment: dt.datetime | None,
        *,
        strict: bool = False,
        exact: bool = False,
        after_id: int = 0,
    ) -> str:
        """Open tickets with ``updated_at`` ``>=`` (``strict``: ``>``; ``exact``: ``=``)
        ``moment``, and with ``after_id``: only ids above it."""
        states = " OR ".join(f'"{state}"' for state in self.options.open_states)
        query = f"state.name:({states})"
        if moment is not None:
            time = _query_time(moment)
            if exact:
                query += f" AND updated_at:>={time} AND updated_at:<={time}"
            else:
                query += f" AND updated_at:{'>' if strict else '>='}{time}"
        if after_id:
            query += f" AND id:>{after_id}"
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


def _millis(moment: dt.datetime) -> dt.datetime:
    """``moment`` in UTC, cut to whole milliseconds: the precision of Zammad's times and of
    Elasticsearch's dates (facts §2.1), so that times read and times asked for compare alike."""
    if moment.tzinfo is None:
        raise ValueError("since must be an aware datetime")
    utc = moment.astimezone(dt.UTC)
    return utc.replace(microsecond=utc.microsecond // 1000 * 1000)


def _query_time(moment: dt.datetime) -> str:
    """``moment`` for a query string: ``2025-03-04T08\\:12\\:40Z``, or with milliseconds
    (``…40.377Z``) when it has them; finer digits are cut (:func:`_millis`)."""
    utc = _millis(moment)
    text = utc.strftime("%Y-%m-%dT%H\\:%M\\:%S")
    if utc.microsecond:
        text += f".{utc.microsecond // 1000:03d}"
    return text + "Z"


def _search_page(response: requests.Response) -> list[tuple[int, dt.datetime]]:
    """(id, ``updated_at``) of each ticket of a search page, in the answer's order.

    Without ``expand`` the answer is ``{"tickets": [ids], "assets": {"Ticket": {"<id>":
    {...}}}}``; expanded it is ``[{...}]``. Paging needs every ticket's ``updated_at``: an
    answer without it is refused rather than paged blindly.
    """
    what = "GET /api/v1/tickets/search"
    try:
        data = response.json()
    except ValueError:
        raise PermanentError(f"{what}: response is not JSON") from None
    records: dict[int, object]
    if isinstance(data, list):
        records = {
            int(item["id"]): item for item in data if isinstance(item, dict) and "id" in item
        }
        ids = list(records)
    else:
        body = parse_body(SearchJson, response, what)
        ids = list(body.tickets)
        tickets = body.assets.get("Ticket") or {}
        records = {ticket_id: tickets.get(str(ticket_id)) for ticket_id in ids}
    page: list[tuple[int, dt.datetime]] = []
    for ticket_id in ids:
        record = records.get(ticket_id)
        raw = record.get("updated_at") if isinstance(record, dict) else None
        moment = _aware(raw)
        if moment is None:
            raise PermanentError(
                f"{what}: the answer has no readable updated_at for ticket {ticket_id} "
                f"(got {raw!r}); the sweep pages by it"
            )
        page.append((ticket_id, moment))
    return page


def _aware(value: object) -> dt.datetime | None:
    """An ISO 8601 time from Zammad (``2025-03-04T08:12:40.377Z``) as an aware datetime."""
    if not isinstance(value, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return _millis(moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC))
