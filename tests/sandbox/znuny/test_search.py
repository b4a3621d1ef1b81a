"""TicketSearch: GET and the POST route, ``{}`` for no hits, operator hashes, state types, times."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from connector.sandbox.znuny import ZnunySandbox
from tests.clock import Clock
from tests.sandbox.znuny import ROOT, START, Api


@pytest.fixture
def clock() -> Clock:
    return Clock(START)


@pytest.fixture
def znuny(clock: Clock) -> Iterator[ZnunySandbox]:
    """Tickets 1 (new, due 12:00), 2 (open, no due time), 3 (closed), one minute apart."""
    with ZnunySandbox(clock=clock) as sandbox:
        sandbox.add_dynamic_field("SLADueDate", "DateTime")
        sandbox.add_queue("VIP")
        for title, state, due in (
            ("Site down", "new", "2026-11-28 12:00:00"),
            ("Question", "open", None),
            ("Old", "closed successful", None),
        ):
            fields = {"SLADueDate": due} if due else None
            sandbox.create_ticket(
                title=title, customer_user="c@shop.example", body="b", state=state,
                dynamic_fields=fields, queue="VIP" if title == "Question" else "Raw",
            )  # fmt: skip
            clock.advance(seconds=60)
        yield sandbox


@pytest.fixture
def api(znuny: ZnunySandbox) -> Iterator[Api]:
    client = Api(znuny.base_url)
    yield client
    client.session.close()


def get(api: Api, **params: Any) -> Any:
    answer = api("GET", "/Ticket", params={**ROOT, **params})
    assert answer.status_code == 200
    return answer.json()


def post(api: Api, **params: Any) -> Any:
    answer = api("POST", "/TicketSearch", json={**ROOT, **params})
    assert answer.status_code == 200
    return answer.json()


def test_ids_are_strings_newest_first(api: Api) -> None:
    assert get(api) == {"TicketID": ["3", "2", "1"]}
    assert get(api, OrderBy="Up") == {"TicketID": ["1", "2", "3"]}
    assert get(api, Limit=1) == {"TicketID": ["3"]}


def test_no_hits_is_an_empty_object(api: Api) -> None:
    assert get(api, Title="Nothing like this") == {}
    assert post(api, Title="Nothing like this") == {}


def test_title_and_queue_filters(api: Api) -> None:
    assert get(api, Title="site*") == {"TicketID": ["1"]}
    assert get(api, Queues="VIP") == {"TicketID": ["2"]}


@pytest.mark.parametrize(
    ("state_type", "expected"),
    [
        ("open", ["2"]),
        ("new", ["1"]),
        (["new", "open"], ["2", "1"]),
        ("Open", ["2", "1"]),
        ("Closed", ["3"]),
        ("nonsense", None),
    ],
)
def test_state_type(api: Api, state_type: str | list[str], expected: list[str] | None) -> None:
    answer = get(api, StateType=state_type)
    assert answer == ({"TicketID": expected} if expected else {})


def test_changed_since(api: Api, znuny: ZnunySandbox, clock: Clock) -> None:
    assert get(api, TicketChangeTimeNewerDate="2026-11-28 04:01:07") == {"TicketID": ["3", "2"]}
    clock.advance(seconds=600)
    znuny.update_ticket(1, title="Site down again")
    assert get(api, TicketChangeTimeNewerDate="2026-11-28 04:10:00") == {"TicketID": ["1"]}
    assert get(api, TicketChangeTimeNewerMinutes=5) == {"TicketID": ["1"]}


def test_an_iso_time_is_not_an_error_but_finds_nothing(api: Api) -> None:
    assert get(api, TicketChangeTimeNewerDate="2026-11-28T04:00:00Z") == {}


def test_dynamic_field_operators_need_the_post_route(api: Api) -> None:
    assert post(api, DynamicField_SLADueDate={"Empty": 1}) == {"TicketID": ["3", "2"]}
    assert post(api, DynamicField_SLADueDate={"Empty": 0}) == {"TicketID": ["1"]}
    due = {"SmallerThanEquals": "2026-11-28 12:00:00"}
    assert post(api, DynamicField_SLADueDate=due, StateType="Open") == {"TicketID": ["1"]}
    early = {"SmallerThan": "2026-11-28 12:00:00"}
    assert post(api, DynamicField_SLADueDate=early) == {}
    listed = [{"Name": "SLADueDate", "Equals": "2026-11-28 12:00:00"}]
    assert post(api, DynamicField=listed) == {"TicketID": ["1"]}


def test_a_flat_dynamic_field_parameter_is_silently_ignored(api: Api) -> None:
    assert get(api, DynamicField_SLADueDate="2026-11-28 12:00:00") == {"TicketID": ["3", "2", "1"]}
    assert post(api, DynamicField_SLADueDate="nothing matches this") == {
        "TicketID": ["3", "2", "1"]
    }


def test_search_needs_authentication(api: Api) -> None:
    answer = api("GET", "/Ticket", params={"UserLogin": "root@localhost", "Password": "x"})
    assert answer.json()["Error"]["ErrorCode"] == "TicketSearch.AuthFail"


def test_change_time_searches_history_last_change_time_the_ticket(
    api: Api, znuny: ZnunySandbox, clock: Clock
) -> None:
    """``TicketChangeTime*`` match a history entry (a new article adds one without touching
    the ticket row); ``TicketLastChangeTime*`` match the ticket's own ``Changed``."""
    clock.advance(seconds=600)  # 04:12:07
    znuny.add_article(2, body="any news?", sender_type="customer")
    assert znuny.ticket(2)["Changed"] == "2026-11-28 04:01:07"
    assert get(api, TicketChangeTimeNewerDate="2026-11-28 04:10:00") == {"TicketID": ["2"]}
    assert get(api, TicketLastChangeTimeNewerDate="2026-11-28 04:10:00") == {}
    assert get(api, TicketLastChangeTimeOlderDate="2026-11-28 04:01:07") == {"TicketID": ["2", "1"]}
    # one history entry must satisfy both ends: ticket 2 has none between 04:02 and 04:11
    window = {"TicketChangeTimeNewerDate": "2026-11-28 04:02:00"}
    assert get(api, **window, TicketChangeTimeOlderDate="2026-11-28 04:11:00") == {
        "TicketID": ["3"]
    }


def test_limit_defaults_to_500(api: Api, znuny: ZnunySandbox) -> None:
    for _ in range(500):
        znuny.create_ticket(title="bulk", customer_user="c@shop.example", body="b")
    assert len(get(api)["TicketID"]) == 500
    assert len(get(api, Limit=0)["TicketID"]) == 500  # 0 is "none given"
    assert len(post(api, Limit=600)["TicketID"]) == 503


def test_sort_by_changed_up_and_sub_sorting(api: Api, znuny: ZnunySandbox, clock: Clock) -> None:
    clock.advance(seconds=600)
    znuny.update_ticket(1, title="Site down again")  # 1 is now the latest change
    assert post(api, SortBy="Changed", OrderBy="Up") == {"TicketID": ["2", "3", "1"]}
    assert post(api, SortBy="Changed") == {"TicketID": ["1", "3", "2"]}  # Down by default
    assert post(api, SortBy=["Queue", "Age"], OrderBy=["Up", "Up"]) == {
        "TicketID": ["1", "3", "2"]  # Raw (1, 3) before VIP (2)
    }
    assert post(api, SortBy=["Queue", "Age"], OrderBy=["Up"]) == {
        "TicketID": ["3", "1", "2"]  # a missing direction is Down
    }
