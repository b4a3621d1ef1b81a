"""REST endpoints for tickets, articles and tags (facts §4.4, §4.5).

* ``GET /api/v1/tickets/:id[?expand=true]`` → 200 (ids only; expanded: names, ``article_ids``).
* ``PUT /api/v1/tickets/:id[?expand=true]`` → 200 full ticket; 422 on validation errors.
* ``POST /api/v1/tickets`` → 201 (``article``: the first article);
  ``GET /api/v1/tickets?page=&per_page=`` → 200 array, at most 100 per page.
* ``GET /api/v1/tickets/search?query=&limit=&page=&sort_by=&order_by=&expand=`` → 200
  ``{"tickets": [ids], "tickets_count": n, "assets": {...}}``, with ``expand=true`` an array of
  expanded tickets; ``limit``/``per_page`` default 50, max 200; ``tickets_count`` counts the
  returned page, not the total.
* ``GET /api/v1/ticket_articles/by_ticket/:id``, ``GET /api/v1/ticket_articles/:id`` → 200;
  ``POST /api/v1/ticket_articles`` → 201 (an update transaction of its ticket).
* ``GET /api/v1/tags?object=Ticket&o_id=`` → 200 ``{"tags": [...]}``;
  ``POST /api/v1/tags/add`` → **201** ``true``; ``DELETE /api/v1/tags/remove`` → **200** ``true``.

Agents (``ticket.agent``) see every ticket; a customer sees only their own and may not tag.
"""

from __future__ import annotations

from typing import Any

from connector.sandbox.zammad import search, views
from connector.sandbox.zammad.api import Call, Core, Routes
from connector.sandbox.zammad.errors import ApiError, Forbidden
from connector.sandbox.zammad.state import Row

SEARCH_DEFAULT_LIMIT = 50
SEARCH_MAX_LIMIT = 200
INDEX_MAX_PER_PAGE = 100


def _visible(core: Core, call: Call, ticket: Row) -> Row:
    if not core.store.is_agent(call.actor_id) and ticket["customer_id"] != call.actor_id:
        raise Forbidden()
    return ticket


def _ticket(core: Core, call: Call, ticket: Row) -> Row:
    return views.ticket(core.store, ticket, expand=call.expand)


def _number(call: Call, *names: str, default: int, most: int | None = None) -> int:
    for name in names:
        raw = call.params.get(name)
        if raw is not None and str(raw).strip():
            try:
                value = max(int(str(raw)), 1)
            except ValueError:
                message = f"Invalid value for param '{name}': {raw!r}"
                raise ApiError(422, message, message) from None
            return min(value, most) if most is not None else value
    return default


def show(core: Core, call: Call, ticket_id: int) -> tuple[int, object]:
    ticket = _visible(core, call, core.store.get("Ticket", ticket_id))
    return 200, _ticket(core, call, ticket)


def update(core: Core, call: Call, ticket_id: int) -> tuple[int, object]:
    _visible(core, call, core.store.get("Ticket", ticket_id))
    if not isinstance(call.body, dict):
        raise ApiError(422, "Need a JSON object", "Need a JSON object")
    ticket = core.tickets.update(ticket_id, call.body, call.actor_id, api=True)
    return 200, _ticket(core, call, ticket)


def create(core: Core, call: Call) -> tuple[int, object]:
    if not isinstance(call.body, dict):
        raise ApiError(422, "Need a JSON object", "Need a JSON object")
    ticket = core.tickets.create(call.body, call.actor_id, api=True)
    return 201, _ticket(core, call, ticket)


def index(core: Core, call: Call) -> tuple[int, object]:
    per_page = _number(call, "per_page", "limit", default=50, most=INDEX_MAX_PER_PAGE)
    page = _number(call, "page", default=1)
    rows = [
        row
        for row in sorted(core.store.tables["Ticket"].values(), key=lambda r: r["id"])
        if core.store.is_agent(call.actor_id) or row["customer_id"] == call.actor_id
    ]
    chosen = rows[(page - 1) * per_page : page * per_page]
    return 200, [_ticket(core, call, row) for row in chosen]


def find(core: Core, call: Call) -> tuple[int, object]:
    store = core.store
    limit = _number(call, "limit", "per_page", default=SEARCH_DEFAULT_LIMIT, most=SEARCH_MAX_LIMIT)
    page = _number(call, "page", default=1)
    predicate = search.parse(str(call.params.get("query") or ""), store.now())
    agent = store.is_agent(call.actor_id)
    hits = [
        row
        for row in store.tables["Ticket"].values()
        if (agent or row["customer_id"] == call.actor_id) and predicate(search.document(store, row))
    ]
    ordered = search.order(hits, call.params.get("sort_by"), call.params.get("order_by"))
    chosen = ordered[(page - 1) * limit : page * limit]
    if call.expand:
        return 200, [views.ticket(store, row, expand=True) for row in chosen]
    return 200, {
        "tickets": [row["id"] for row in chosen],
        "tickets_count": len(chosen),
        "assets": views.search_assets(store, chosen),
    }


def articles(core: Core, call: Call, ticket_id: int) -> tuple[int, object]:
    ticket = _visible(core, call, core.store.get("Ticket", ticket_id))
    rows = [
        row
        for row in core.store.tables["TicketArticle"].values()
        if row["ticket_id"] == ticket["id"]
        and (core.store.is_agent(call.actor_id) or not row["internal"])
    ]
    return 200, [views.article(core.store, row) for row in sorted(rows, key=lambda r: r["id"])]


def article(core: Core, call: Call, article_id: int) -> tuple[int, object]:
    row = core.store.get("TicketArticle", article_id)
    _visible(core, call, core.store.get("Ticket", row["ticket_id"]))
    return 200, views.article(core.store, row)


def add_article(core: Core, call: Call) -> tuple[int, object]:
    ticket_id = call.params.get("ticket_id")
    _visible(core, call, core.store.get("Ticket", ticket_id))
    body: dict[str, Any] = {k: v for k, v in call.params.items() if k != "ticket_id"}
    before = set(core.store.tables["TicketArticle"])
    core.tickets.update(ticket_id, {"article": body}, call.actor_id, api=True)
    new = sorted(set(core.store.tables["TicketArticle"]) - before)
    return 201, views.article(core.store, core.store.tables["TicketArticle"][new[-1]])


def _tag_target(core: Core, call: Call) -> Row:
    store = core.store
    if not (store.is_agent(call.actor_id) or store.is_admin(call.actor_id)):
        raise Forbidden()
    if call.params.get("object", "Ticket") != "Ticket":
        message = f"Tags on {call.params.get('object')!r} are not supported by the sandbox"
        raise ApiError(422, message, message)
    return store.get("Ticket", call.params.get("o_id"))


def tags(core: Core, call: Call) -> tuple[int, object]:
    ticket = _tag_target(core, call)
    return 200, {"tags": list(core.store.tags.get(ticket["id"], []))}


def tag_add(core: Core, call: Call) -> tuple[int, object]:
    core.tickets.tag_add(_tag_target(core, call)["id"], call.params.get("item"))
    return 201, True


def tag_remove(core: Core, call: Call) -> tuple[int, object]:
    core.tickets.tag_remove(_tag_target(core, call)["id"], call.params.get("item"))
    return 200, True


ROUTES: Routes = (
    ("/api/v1/tickets", "GET", index),
    ("/api/v1/tickets", "POST", create),
    ("/api/v1/tickets/search", "GET", find),
    ("/api/v1/tickets/<int:ticket_id>", "GET", show),
    ("/api/v1/tickets/<int:ticket_id>", "PUT", update),
    ("/api/v1/ticket_articles", "POST", add_article),
    ("/api/v1/ticket_articles/by_ticket/<int:ticket_id>", "GET", articles),
    ("/api/v1/ticket_articles/<int:article_id>", "GET", article),
    ("/api/v1/tags", "GET", tags),
    ("/api/v1/tags/add", "POST", tag_add),
    ("/api/v1/tags/remove", "DELETE", tag_remove),
)
