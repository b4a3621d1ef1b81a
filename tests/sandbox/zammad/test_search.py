"""GET /api/v1/tickets/search: the query forms the adapter uses, paging and both answer shapes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from connector.sandbox.zammad import ZammadSandbox
from tests.clock import Clock
from tests.sandbox.zammad import Api, customer_ticket, license_attribute

OPEN = 'state.name:(new OR open OR "pending reminder")'


@pytest.fixture
def zammad(clock: Clock) -> Iterator[ZammadSandbox]:
    with ZammadSandbox(clock=clock) as sandbox:
        yield sandbox


def ids(api: Api, **params: object) -> list[int]:
    response = api("GET", "/api/v1/tickets/search", params=params)
    assert response.status_code == 200, response.text
    return list(response.json()["tickets"])


@pytest.fixture
def tickets(zammad: ZammadSandbox, clock: Clock) -> list[int]:
    """Five tickets one minute apart: new, open, pending reminder, closed, open."""
    created = []
    for state in ("new", "open", "pending reminder", "closed", "open"):
        created.append(customer_ticket(zammad, f"ticket {state}", state=state))
        clock.advance(minutes=1)
    return created


def test_open_states_and_updated_since(
    zammad: ZammadSandbox, api: Api, clock: Clock, tickets: list[int]
) -> None:
    assert ids(api, query=OPEN, sort_by="id", order_by="asc") == [1, 2, 3, 5]
    zammad.update_ticket(tickets[0], title="touched")
    since = f"{clock.now:%Y-%m-%dT%H:%M:%S}Z"
    assert ids(api, query=f"{OPEN} AND updated_at:>={since}") == [1]
    assert ids(api, query=f'{OPEN} AND updated_at:>="{since}"') == [1]
    escaped = since.replace(":", "\\:")
    assert ids(api, query=f"{OPEN} AND updated_at:>={escaped}") == [1]
    assert ids(api, query=f"updated_at:[{since} TO *]") == [1]
    before = "updated_at:<2026-03-02T09:02:00Z"
    assert ids(api, query=before, sort_by="id", order_by="asc") == [2]


def test_times_are_searched_in_the_milliseconds_zammad_shows(
    zammad: ZammadSandbox, api: Api, clock: Clock
) -> None:
    clock.advance(microseconds=377_912)
    first = customer_ticket(zammad)
    clock.advance(microseconds=50)  # the same millisecond
    second = customer_ticket(zammad)
    shown = zammad.ticket(first)["updated_at"]
    assert shown == zammad.ticket(second)["updated_at"] == "2026-03-02T09:00:00.377Z"
    moment = shown.replace(":", "\\:")
    exact = f"updated_at:>={moment} AND updated_at:<={moment}"
    assert ids(api, query=exact, sort_by="id", order_by="asc") == [first, second]
    assert ids(api, query=f"updated_at:>{moment}") == []
    assert ids(api, query=f"updated_at:>={moment}", sort_by="updated_at", order_by="desc") == [
        second,
        first,
    ]  # equal times: by id (Elasticsearch leaves their order open)


def test_id_ranges_page_by_id(zammad: ZammadSandbox, api: Api, tickets: list[int]) -> None:
    assert ids(api, query="id:>2", sort_by="id", order_by="asc") == [3, 4, 5]


def test_default_order_is_updated_at_descending(
    zammad: ZammadSandbox, api: Api, clock: Clock, tickets: list[int]
) -> None:
    assert ids(api, query=OPEN) == [5, 3, 2, 1]
    clock.advance(minutes=1)
    zammad.update_ticket(tickets[1], title="most recent")
    assert ids(api, query=OPEN) == [2, 5, 3, 1]
    assert ids(api, query=OPEN, sort_by="created_at", order_by="asc") == [1, 2, 3, 5]


def test_paging_limit_and_count(api: Api, tickets: list[int]) -> None:
    first = api("GET", "/api/v1/tickets/search", params={"query": "*", "limit": 2, "page": 1})
    body = first.json()
    assert (body["tickets"], body["tickets_count"]) == ([5, 4], 2)
    assert ids(api, query="*", limit=2, page=3) == [1]
    assert ids(api, query="*", limit=2, page=4) == []
    assert ids(api, query="*", per_page=3) == [5, 4, 3]


def test_limit_is_capped_at_200(zammad: ZammadSandbox, api: Api) -> None:
    customer = zammad.add_customer("bulk@example.org")
    for number in range(205):
        zammad.create_ticket(f"bulk {number}", customer=customer["id"])
    assert len(ids(api, query="*", limit=500)) == 200
    assert len(ids(api, query="*")) == 50


def test_assets_without_expand_and_array_with_expand(
    zammad: ZammadSandbox, api: Api, tickets: list[int]
) -> None:
    body = api("GET", "/api/v1/tickets/search", params={"query": "state.name:closed"}).json()
    assert body["tickets"] == [4]
    assert set(body["assets"]) >= {"Ticket", "User"}
    assert body["assets"]["Ticket"]["4"]["title"] == "ticket closed"
    customer_id = str(body["assets"]["Ticket"]["4"]["customer_id"])
    assert body["assets"]["User"][customer_id]["login"].startswith("customer")
    expanded = api(
        "GET", "/api/v1/tickets/search", params={"query": "state.name:closed", "expand": "true"}
    ).json()
    assert isinstance(expanded, list)
    assert [(t["id"], t["state"]) for t in expanded] == [(4, "closed")]


def test_organization_attributes_tags_and_free_text(zammad: ZammadSandbox, api: Api) -> None:
    license_attribute(zammad)
    org = zammad.add_organization("Studio", bitrix_license_type="partner")
    ana = zammad.add_customer("ana@studio.example", organization=org["id"])
    first = zammad.create_ticket("VPN drops every hour", customer=ana["id"])["id"]
    second = customer_ticket(zammad, "Printer on fire")
    zammad.add_tag(second, "sla:tier:commercial")
    assert ids(api, query="organization.bitrix_license_type:partner") == [first]
    assert ids(api, query='organization.name:"Studio"') == [first]
    assert ids(api, query="tags:sla\\:tier\\:commercial") == [second]
    assert ids(api, query="title:vpn") == [first]
    assert ids(api, query="fire") == [second]
    assert ids(api, query="customer.email:ana@studio.example") == [first]
    assert ids(api, query="NOT title:vpn AND state:new") == [second]
    assert ids(api, query="title:vpn OR title:printer", sort_by="id", order_by="asc") == [
        first,
        second,
    ]


@pytest.mark.parametrize("query", ["state.name:(open", 'title:"unterminated', "updated_at:>=soon"])
def test_unparsable_queries_are_422(api: Api, tickets: list[int], query: str) -> None:
    response = api("GET", "/api/v1/tickets/search", params={"query": query})
    assert response.status_code == 422
    assert response.json()["error"].startswith("Invalid search query")
