"""FakeAdapter against the real fake helpdesk on a socket, and FakeReceiver on raw requests."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator

import pytest
import requests
from werkzeug.datastructures import Headers

from connector.errors import AuthError, PayloadError, PermanentError, TransientError
from connector.helpdesks.base import ApiCall, HelpdeskAdapter, WebhookReceiver, WritePlan
from connector.helpdesks.fake import FakeAdapter, FakeReceiver
from connector.helpdesks.signatures import HeaderSource
from connector.policy.ticket import Party
from connector.sandbox.fake_helpdesk import FakeHelpdesk
from tests.clock import Clock

TOKEN = "api-tok-5e6f7a8b"
HOOK_TOKEN = "hook-tok-1a2b3c"
START = dt.datetime(2026, 1, 12, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
def clock() -> Clock:
    return Clock(START)


@pytest.fixture
def helpdesk(clock: Clock) -> Iterator[FakeHelpdesk]:
    with FakeHelpdesk(TOKEN, clock=clock) as server:
        yield server


@pytest.fixture
def adapter(helpdesk: FakeHelpdesk) -> Iterator[FakeAdapter]:
    client = FakeAdapter("demo", helpdesk.base_url + "/", TOKEN, timeout=2)
    yield client
    client.close()


def test_it_implements_the_ports(adapter: FakeAdapter) -> None:
    port: HelpdeskAdapter = adapter
    receiver: WebhookReceiver = FakeReceiver("demo", HOOK_TOKEN)
    assert (port.kind, port.instance, receiver.kind) == ("fake", "demo", "fake")
    assert receiver.success == (202, {"status": "accepted"})


# --- read -----------------------------------------------------------------------------------


def test_read_maps_the_ticket_to_a_snapshot(helpdesk: FakeHelpdesk, adapter: FakeAdapter) -> None:
    helpdesk.create_ticket(
        subject="Site down",
        body="Error 500",
        customer={"id": 10, "name": "Ivan", "email": "ivan@shop.example"},
        organization={"id": 5, "name": "Shop", "fields": {"license": "business"}},
        group="Support",
        priority="2 normal",
        fields={"topic": "errors", "sla_tier": "vip", "sla_due_at": "2026-01-12T12:00:00Z"},
        tags=["sla:tier:vip", "other"],
    )
    snapshot = adapter.read("1")
    assert (snapshot.helpdesk, snapshot.instance, snapshot.id) == ("fake", "demo", "1")
    assert snapshot.created_at == START
    assert (snapshot.subject, snapshot.body, snapshot.group) == (
        "Site down",
        "Error 500",
        "Support",
    )
    assert (snapshot.priority, snapshot.state) == ("2 normal", "open")
    assert snapshot.customer == Party(id="10", name="Ivan", email="ivan@shop.example")
    assert snapshot.organization == Party(id="5", name="Shop", fields={"license": "business"})
    assert snapshot.fields == {"topic": "errors"}
    assert snapshot.managed_fields == {
        "sla_due_at": "2026-01-12T12:00:00Z",
        "sla_tier": "vip",
        "sla_level": None,
    }
    assert snapshot.tags == ("other", "sla:tier:vip")


def test_read_sends_the_token_and_a_request_id(
    helpdesk: FakeHelpdesk, adapter: FakeAdapter
) -> None:
    helpdesk.create_ticket(organization=None)
    assert adapter.read("1").organization is None
    (call,) = helpdesk.calls()
    assert (call.method, call.path, call.status) == ("GET", "/api/tickets/1", 200)
    assert call.request_id is not None
    assert len(call.request_id) == 32


# --- apply ----------------------------------------------------------------------------------


def test_apply_writes_fields_and_tags(helpdesk: FakeHelpdesk, adapter: FakeAdapter) -> None:
    helpdesk.create_ticket(fields={"sla_level": "old"}, tags=["sla:level:old", "keep"])
    plan = WritePlan(
        ticket_id="1",
        fields={"sla_due_at": "2026-01-12T15:00:00Z", "sla_level": None},
        add_tags=("sla:level:vip",),
        remove_tags=("sla:level:old",),
    )
    calls = adapter.apply(plan)
    assert [(c.method, c.path, c.status) for c in calls] == [
        ("PATCH", "/api/tickets/1", 200),
        ("POST", "/api/tickets/1/tags", 200),
    ]
    assert all(isinstance(c, ApiCall) and c.duration_ms > 0 for c in calls)
    ticket = helpdesk.ticket(1)
    assert ticket["fields"] == {"sla_level": None, "sla_due_at": "2026-01-12T15:00:00Z"}
    assert ticket["tags"] == ["keep", "sla:level:vip"]
    assert adapter.read("1").managed_fields["sla_due_at"] == "2026-01-12T15:00:00Z"


def test_apply_sends_only_what_the_plan_needs(helpdesk: FakeHelpdesk, adapter: FakeAdapter) -> None:
    helpdesk.create_ticket()
    adapter.apply(WritePlan(ticket_id="1", fields={"sla_tier": "vip"}))
    adapter.apply(WritePlan(ticket_id="1", remove_tags=("sla:x",)))
    assert [(c.method, c.path) for c in helpdesk.writes()] == [
        ("PATCH", "/api/tickets/1"),
        ("POST", "/api/tickets/1/tags"),
    ]


def test_an_empty_plan_makes_no_request(helpdesk: FakeHelpdesk, adapter: FakeAdapter) -> None:
    helpdesk.create_ticket()
    assert adapter.apply(WritePlan(ticket_id="1")) == []
    assert helpdesk.calls() == []


# --- changed_since --------------------------------------------------------------------------


def test_changed_since_none_lists_every_open_ticket_over_pages(
    helpdesk: FakeHelpdesk, adapter: FakeAdapter
) -> None:
    for number in range(1, 251):
        helpdesk.create_ticket(state="closed" if number % 50 == 0 else "open")
    ids = list(adapter.changed_since(None))
    assert ids == [str(n) for n in range(1, 251) if n % 50]
    assert len(helpdesk.calls("GET")) == 3


def test_changed_since_filters_by_update_time(
    helpdesk: FakeHelpdesk, adapter: FakeAdapter, clock: Clock
) -> None:
    for _ in range(3):
        helpdesk.create_ticket()
    clock.now = START + dt.timedelta(hours=1)
    helpdesk.update_ticket(3, subject="edited")
    helpdesk.update_ticket(1, priority="3 high")
    moscow = dt.timezone(dt.timedelta(hours=3))
    assert list(adapter.changed_since(dt.datetime(2026, 1, 12, 12, 30, tzinfo=moscow))) == [
        "1",
        "3",
    ]
    with pytest.raises(ValueError, match="aware"):
        list(adapter.changed_since(dt.datetime(2026, 1, 12)))


# --- errors ---------------------------------------------------------------------------------


def test_unknown_ticket_and_unknown_field_are_permanent(
    helpdesk: FakeHelpdesk, adapter: FakeAdapter
) -> None:
    helpdesk.create_ticket()
    with pytest.raises(PermanentError, match=r"GET /api/tickets/9 -> 404 .*ticket 9 not found"):
        adapter.read("9")
    with pytest.raises(PermanentError, match=r"422 .*unknown field 'sla_colour'"):
        adapter.apply(WritePlan(ticket_id="1", fields={"sla_colour": "red"}))


def test_a_wrong_token_is_permanent_and_not_in_the_message(helpdesk: FakeHelpdesk) -> None:
    wrong = FakeAdapter("demo", helpdesk.base_url, "wrong-tok-000")
    with pytest.raises(PermanentError) as caught:
        wrong.read("1")
    wrong.close()
    assert "401" in str(caught.value)
    assert "wrong-tok-000" not in str(caught.value)


def test_transient_failures_are_raised_once_not_retried(
    helpdesk: FakeHelpdesk, adapter: FakeAdapter
) -> None:
    helpdesk.create_ticket()
    helpdesk.faults.fail_next(1, status=503, retry_after=2)
    with pytest.raises(TransientError) as caught:
        adapter.read("1")
    assert caught.value.retry_after == 2.0
    assert str(caught.value).startswith("fake demo: GET /api/tickets/1 -> 503")
    assert len(helpdesk.calls()) == 1
    assert adapter.read("1").id == "1"


def test_paused_slow_and_dropped_helpdesks_are_transient(
    helpdesk: FakeHelpdesk, adapter: FakeAdapter
) -> None:
    helpdesk.create_ticket()
    helpdesk.faults.drop_next(1, after_apply=True)
    with pytest.raises(TransientError, match="connection failed"):
        adapter.apply(WritePlan(ticket_id="1", fields={"sla_tier": "vip"}))
    assert helpdesk.ticket(1)["fields"] == {"sla_tier": "vip"}  # applied, answer lost
    helpdesk.faults.latency(0.5)
    slow = FakeAdapter("demo", helpdesk.base_url, TOKEN, timeout=0.1)
    with pytest.raises(TransientError, match="read timeout"):
        slow.read("1")
    slow.close()
    helpdesk.pause()
    with pytest.raises(TransientError, match="connection failed"):
        adapter.read("1")


def test_an_unexpected_body_is_permanent(helpdesk: FakeHelpdesk, adapter: FakeAdapter) -> None:
    helpdesk.faults.fail_next(1, status=200, body={"id": "1"})
    with pytest.raises(PermanentError, match="unexpected response at created_at: Field required"):
        adapter.read("1")


def test_a_session_passed_in_is_used_and_left_open(helpdesk: FakeHelpdesk) -> None:
    helpdesk.create_ticket()
    with requests.Session() as session:
        FakeAdapter("demo", helpdesk.base_url, TOKEN, session=session).close()
        adapter = FakeAdapter("demo", helpdesk.base_url, TOKEN, session=session)
        assert adapter.read("1").id == "1"


# --- receiver -------------------------------------------------------------------------------

BODY = json.dumps({"ticket_id": "7", "event": "ticket.updated"}).encode()


@pytest.fixture
def receiver() -> FakeReceiver:
    return FakeReceiver("demo", HOOK_TOKEN)


@pytest.mark.parametrize(
    "headers", [{"X-Fake-Token": HOOK_TOKEN}, {"x-fake-token": HOOK_TOKEN}, Headers()]
)
def test_a_good_token_authenticates(receiver: FakeReceiver, headers: HeaderSource) -> None:
    if isinstance(headers, Headers):
        headers.add("X-FAKE-TOKEN", HOOK_TOKEN)
    receiver.authenticate(headers, BODY)


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "missing X-Fake-Token header"),
        ({"X-Fake-Token": ""}, "missing X-Fake-Token header"),
        ({"X-Fake-Token": "guess"}, "X-Fake-Token header does not match the configured token"),
    ],
)
def test_missing_or_wrong_token_is_refused(
    receiver: FakeReceiver, headers: dict[str, str], reason: str
) -> None:
    with pytest.raises(AuthError) as caught:
        receiver.authenticate(headers, BODY)
    assert str(caught.value) == reason
    assert HOOK_TOKEN not in str(caught.value)


def test_an_empty_token_cannot_be_configured() -> None:
    with pytest.raises(ValueError, match="must not be empty"):
        FakeReceiver("demo", "")


def test_parse_takes_the_delivery_id_from_the_header(receiver: FakeReceiver) -> None:
    event = receiver.parse({"x-fake-delivery": "d-1"}, BODY)
    assert (event.ticket_id, event.delivery_id, event.event) == ("7", "d-1", "ticket.updated")


def test_parse_derives_a_stable_delivery_id_without_the_header(receiver: FakeReceiver) -> None:
    first, second = receiver.parse({}, BODY), receiver.parse({"X-Fake-Delivery": " "}, BODY)
    assert first.delivery_id == second.delivery_id == f"sha256:{hashlib.sha256(BODY).hexdigest()}"
    assert receiver.parse({}, b'{"ticket_id": "8"}').delivery_id != first.delivery_id


def test_parse_accepts_an_integer_ticket_id(receiver: FakeReceiver) -> None:
    event = receiver.parse({}, b'{"ticket_id": 42}')
    assert (event.ticket_id, event.event) == ("42", "")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"ticket_id=7", "body is not valid JSON"),
        (b"\xff\xfe", "body is not UTF-8 (invalid byte at offset 0); send JSON as UTF-8"),
        (b"[1]", "body must be a JSON object, not list"),
        (b'{"event": "ticket.updated"}', "missing ticket_id"),
        (b'{"ticket_id": ""}', "ticket_id must be a non-empty string or an integer"),
        (b'{"ticket_id": null}', "ticket_id must be a non-empty string or an integer"),
        (b'{"ticket_id": true}', "ticket_id must be a non-empty string or an integer"),
        (b'{"ticket_id": {"id": 7}}', "ticket_id must be a non-empty string or an integer"),
    ],
)
def test_bad_payloads_name_the_problem(receiver: FakeReceiver, body: bytes, reason: str) -> None:
    with pytest.raises(PayloadError) as caught:
        receiver.parse({}, body)
    assert str(caught.value) == reason
