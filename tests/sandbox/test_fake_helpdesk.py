"""The fake helpdesk on a real socket: REST API, pause/resume, faults, webhooks, call log."""

from __future__ import annotations

import datetime as dt
import email.utils
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import pytest
import requests
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from connector.errors import RequestError
from connector.helpdesks.base import IncomingEvent
from connector.helpdesks.fake import FakeReceiver
from connector.sandbox.fake_helpdesk import FakeHelpdesk, wait_until
from tests.clock import Clock

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

TOKEN = "api-s3cret-token"
HOOK_TOKEN = "hook-s3cret-token"
START = dt.datetime(2026, 1, 12, 9, 0, tzinfo=dt.UTC)


class Api:
    """A plain ``requests`` client of the fake's REST API."""

    def __init__(self, base_url: str, token: str = TOKEN) -> None:
        self.base_url = base_url
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Token token={token}"

    def __call__(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.session.request(method, self.base_url + path, timeout=5, **kwargs)


class _Quiet(WSGIRequestHandler):
    def log(self, type: str, message: str, *args: Any) -> None:
        pass


class Sink:
    """A webhook endpoint on a real socket that checks deliveries with ``FakeReceiver``.

    It answers ``fail`` with 500 for its first ``failures`` requests, then 202 (or the
    receiver's refusal status) like the real edge would.
    """

    def __init__(self, failures: int = 0, fail: int = 500) -> None:
        self.receiver = FakeReceiver("test", HOOK_TOKEN)
        self.events: list[IncomingEvent] = []
        self.refused: list[str] = []
        self.failures, self._fail = failures, fail
        self._server: BaseWSGIServer = make_server(
            "127.0.0.1", 0, self._app, threaded=True, request_handler=_Quiet
        )
        self.url = f"http://127.0.0.1:{self._server.server_port}/hook"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,))
        self._thread.start()

    def _app(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        body, headers = request.get_data(), request.headers
        if self.failures > 0:
            self.failures -= 1
            return Response("try later", self._fail)(environ, start_response)
        try:
            self.receiver.authenticate(headers, body)
            self.events.append(self.receiver.parse(headers, body))
        except RequestError as exc:
            self.refused.append(str(exc))
            return Response(str(exc), exc.status)(environ, start_response)
        return Response("{}", self.receiver.success[0])(environ, start_response)

    def close(self) -> None:
        self._server.shutdown()
        self._thread.join()


@pytest.fixture
def clock() -> Clock:
    return Clock(START)


@pytest.fixture
def helpdesk(clock: Clock) -> Iterator[FakeHelpdesk]:
    with FakeHelpdesk(TOKEN, clock=clock, retry_schedule=(0.02, 0.02)) as server:
        yield server


@pytest.fixture
def api(helpdesk: FakeHelpdesk) -> Iterator[Api]:
    client = Api(helpdesk.base_url)
    yield client
    client.session.close()


@pytest.fixture
def sink() -> Iterator[Sink]:
    endpoint = Sink()
    yield endpoint
    endpoint.close()


# --- REST API -------------------------------------------------------------------------------


@pytest.mark.parametrize("auth", [None, "Token token=wrong", f"Bearer {TOKEN}", "Token token="])
def test_api_refuses_requests_without_the_token(
    helpdesk: FakeHelpdesk, api: Api, auth: str | None
) -> None:
    helpdesk.create_ticket(subject="x")
    response = requests.get(
        f"{helpdesk.base_url}/api/tickets/1",
        headers={"Authorization": auth} if auth else {},
        timeout=5,
    )
    assert (response.status_code, response.json()) == (401, {"error": "authentication failed"})
    assert api("GET", "/api/tickets/1").status_code == 200


def test_ticket_json_has_the_documented_shape(helpdesk: FakeHelpdesk, api: Api) -> None:
    helpdesk.create_ticket(
        subject="Site down",
        body="Error 500 everywhere",
        customer={"id": 10, "name": "Ivan", "email": "ivan@shop.example"},
        organization={"id": "5", "name": "Shop", "fields": {"license": "business"}},
        group="Support",
        priority="2 normal",
        fields={"topic": "errors"},
        tags=["b", "a"],
    )
    assert api("GET", "/api/tickets/1").json() == {
        "id": "1",
        "created_at": "2026-01-12T09:00:00Z",
        "updated_at": "2026-01-12T09:00:00Z",
        "subject": "Site down",
        "body": "Error 500 everywhere",
        "customer": {"id": "10", "name": "Ivan", "email": "ivan@shop.example", "fields": {}},
        "organization": {"id": "5", "name": "Shop", "fields": {"license": "business"}},
        "group": "Support",
        "priority": "2 normal",
        "state": "open",
        "fields": {"topic": "errors"},
        "tags": ["a", "b"],
    }


def test_create_through_the_api_gives_sequential_ids(helpdesk: FakeHelpdesk, api: Api) -> None:
    first = api("POST", "/api/tickets", json={"subject": "one"})
    second = api("POST", "/api/tickets", json={"subject": "two", "organization": None})
    assert (first.status_code, first.json()["id"]) == (201, "1")
    assert (second.json()["id"], second.json()["organization"]) == ("2", None)
    assert api("POST", "/api/tickets", json={"colour": "red"}).status_code == 422


def test_unknown_ticket_is_404(api: Api) -> None:
    response = api("GET", "/api/tickets/99")
    assert (response.status_code, response.json()) == (404, {"error": "ticket 99 not found"})


def test_patch_sets_declared_fields_and_bumps_updated_at(
    helpdesk: FakeHelpdesk, api: Api, clock: Clock
) -> None:
    helpdesk.create_ticket(fields={"sla_level": "old"})
    clock.advance(minutes=5)
    response = api(
        "PATCH", "/api/tickets/1", json={"fields": {"sla_tier": "vip", "sla_level": None}}
    )
    assert response.status_code == 200
    assert response.json()["fields"] == {"sla_tier": "vip", "sla_level": None}
    assert response.json()["updated_at"] == "2026-01-12T09:05:00Z"


def test_unknown_field_is_422_and_nothing_changes(
    helpdesk: FakeHelpdesk, api: Api, clock: Clock
) -> None:
    before = helpdesk.create_ticket()
    clock.advance(minutes=5)
    response = api("PATCH", "/api/tickets/1", json={"fields": {"sla_tier": "vip", "x": 1}})
    assert (response.status_code, response.json()) == (422, {"error": "unknown field 'x'"})
    assert helpdesk.ticket(1) == before
    helpdesk.declare_field("x")
    assert api("PATCH", "/api/tickets/1", json={"fields": {"x": 1}}).status_code == 200


def test_tags_are_a_sorted_set(helpdesk: FakeHelpdesk, api: Api) -> None:
    helpdesk.create_ticket(tags=["keep", "sla:old"])
    body = {"add": ["sla:new", "keep", "a"], "remove": ["sla:old", "absent"]}
    response = api("POST", "/api/tickets/1/tags", json=body)
    assert response.json() == {"tags": ["a", "keep", "sla:new"]}
    assert helpdesk.ticket(1)["tags"] == ["a", "keep", "sla:new"]
    clash = api("POST", "/api/tickets/1/tags", json={"add": ["a"], "remove": ["a"]})
    assert clash.status_code == 422


def test_list_pages_in_id_order(helpdesk: FakeHelpdesk, api: Api) -> None:
    for _ in range(5):
        helpdesk.create_ticket()
    pages = [api("GET", "/api/tickets", params={"per_page": 2, "page": n}).json() for n in (1, 3)]
    assert pages == [
        {"tickets": ["1", "2"], "next_page": 2},
        {"tickets": ["5"], "next_page": None},
    ]
    assert api("GET", "/api/tickets", params={"per_page": 500}).json()["tickets"] == [
        "1",
        "2",
        "3",
        "4",
        "5",
    ]


def test_list_filters_by_state_and_changed_since(
    helpdesk: FakeHelpdesk, api: Api, clock: Clock
) -> None:
    for _ in range(3):
        helpdesk.create_ticket()
    clock.advance(minutes=10)
    helpdesk.update_ticket(2, subject="edited")
    helpdesk.update_ticket(3, state="closed")
    since = (START + dt.timedelta(minutes=10)).isoformat()
    query = {"state": "open", "changed_since": since}
    assert api("GET", "/api/tickets", params=query).json()["tickets"] == ["2"]
    assert api("GET", "/api/tickets", params={"state": "open"}).json()["tickets"] == ["1", "2"]


@pytest.mark.parametrize(
    "params",
    [{"changed_since": "2026-01-12T09:00:00"}, {"changed_since": "yesterday"}, {"page": "0"}],
)
def test_bad_list_queries_are_400(api: Api, params: dict[str, str]) -> None:
    assert api("GET", "/api/tickets", params=params).status_code == 400


def test_pause_refuses_connections_and_resume_keeps_state(helpdesk: FakeHelpdesk, api: Api) -> None:
    helpdesk.create_ticket(subject="kept")
    url = helpdesk.base_url
    helpdesk.pause()
    with pytest.raises(requests.ConnectionError, match="refused"):
        api("GET", "/api/tickets/1")
    helpdesk.resume()
    assert helpdesk.base_url == url
    assert api("GET", "/api/tickets/1").json()["subject"] == "kept"


# --- faults ---------------------------------------------------------------------------------


def test_fail_next_fails_matching_requests_then_recovers(helpdesk: FakeHelpdesk, api: Api) -> None:
    helpdesk.create_ticket()
    helpdesk.faults.fail_next(2, status=503, retry_after=7, methods=["PATCH"])
    assert api("GET", "/api/tickets/1").status_code == 200  # not a PATCH: untouched
    statuses = []
    for _ in range(3):
        response = api("PATCH", "/api/tickets/1", json={"fields": {"sla_tier": "vip"}})
        statuses.append((response.status_code, response.headers.get("Retry-After")))
    assert statuses == [(503, "7"), (503, "7"), (200, None)]


def test_fault_bodies_and_http_date_retry_after(helpdesk: FakeHelpdesk, api: Api) -> None:
    when = email.utils.format_datetime(START, usegmt=True)
    helpdesk.faults.fail_next(1, status=429, retry_after=when, body="slow down")
    helpdesk.faults.fail_next(1, status=500, body={"error": "boom", "error_human": "Boom!"})
    first, second = api("GET", "/api/tickets/1"), api("GET", "/api/tickets/1")
    assert (first.status_code, first.text, first.headers["Retry-After"]) == (429, "slow down", when)
    assert (second.status_code, second.json()["error_human"]) == (500, "Boom!")


def test_fail_for_expires_by_itself(helpdesk: FakeHelpdesk, api: Api) -> None:
    helpdesk.create_ticket()
    helpdesk.faults.fail_for(0.3, status=502)
    assert api("GET", "/api/tickets/1").status_code == 502
    wait_until(lambda: api("GET", "/api/tickets/1").status_code == 200)


def test_latency_delays_every_request_until_cleared(helpdesk: FakeHelpdesk, api: Api) -> None:
    helpdesk.faults.latency(0.2)
    started = time.perf_counter()
    api("GET", "/api/tickets")
    assert time.perf_counter() - started >= 0.2
    helpdesk.faults.fail_next(5)
    helpdesk.faults.clear()
    assert helpdesk.faults.delay == 0
    assert api("GET", "/api/tickets").status_code == 200


def test_drop_after_apply_loses_only_the_answer(helpdesk: FakeHelpdesk, api: Api) -> None:
    helpdesk.create_ticket()
    helpdesk.faults.drop_next(1, after_apply=True)
    with pytest.raises(requests.ConnectionError):
        api("PATCH", "/api/tickets/1", json={"fields": {"sla_tier": "vip"}})
    assert helpdesk.ticket(1)["fields"] == {"sla_tier": "vip"}
    helpdesk.faults.drop_next(1)
    with pytest.raises(requests.ConnectionError):
        api("PATCH", "/api/tickets/1", json={"fields": {"sla_tier": "basic"}})
    assert helpdesk.ticket(1)["fields"] == {"sla_tier": "vip"}
    assert [call.status for call in helpdesk.calls("PATCH")] == [None, None]


# --- call log -------------------------------------------------------------------------------


def test_call_log_records_requests_and_writes(helpdesk: FakeHelpdesk, api: Api) -> None:
    helpdesk.create_ticket()
    api("GET", "/api/tickets/1", headers={"X-Request-Id": "req-1"})
    api("PATCH", "/api/tickets/1", json={"fields": {"x": 1}})
    api("PATCH", "/api/tickets/1", json={"fields": {"sla_tier": "vip"}})
    api("POST", "/api/tickets/1/tags", json={"add": ["sla:tier:vip"]})
    api("GET", "/api/tickets")
    first = helpdesk.calls()[0]
    assert (first.method, first.path, first.ticket_id, first.status) == (
        "GET",
        "/api/tickets/1",
        "1",
        200,
    )
    assert first.request_id == "req-1"
    assert first.finished is not None
    assert first.finished >= first.started
    assert [c.status for c in helpdesk.calls("patch", ticket_id=1)] == [422, 200]
    assert [(c.method, c.path) for c in helpdesk.writes("1")] == [
        ("PATCH", "/api/tickets/1"),
        ("POST", "/api/tickets/1/tags"),
    ]
    helpdesk.clear_calls()
    assert helpdesk.calls() == []


def test_max_concurrent_per_ticket_sees_overlapping_requests(
    helpdesk: FakeHelpdesk, api: Api
) -> None:
    for _ in range(2):
        helpdesk.create_ticket()
    helpdesk.faults.latency(0.3)

    def together(*paths: str) -> None:
        threads = [threading.Thread(target=api, args=("GET", path)) for path in paths]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    together("/api/tickets/1", "/api/tickets/2", "/api/tickets")
    assert helpdesk.max_concurrent_per_ticket() == 1
    together("/api/tickets/1", "/api/tickets/1")
    assert helpdesk.max_concurrent_per_ticket() == 2


# --- webhooks -------------------------------------------------------------------------------


def test_webhooks_fire_on_create_agent_edit_and_api_writes(
    helpdesk: FakeHelpdesk, api: Api, sink: Sink
) -> None:
    helpdesk.configure_webhook(sink.url, HOOK_TOKEN)
    helpdesk.create_ticket()
    helpdesk.update_ticket(1, priority="3 high")
    api("PATCH", "/api/tickets/1", json={"fields": {"sla_tier": "vip"}})
    api("POST", "/api/tickets/1/tags", json={"add": ["sla:tier:vip"]})
    api("PATCH", "/api/tickets/1", json={"fields": {"nope": 1}})  # refused: no webhook
    wait_until(lambda: helpdesk.webhooks_sent >= 4 and helpdesk.webhooks_pending == 0)
    assert [(e.ticket_id, e.event) for e in sink.events] == [("1", "ticket.created")] + [
        ("1", "ticket.updated")
    ] * 3
    assert all(uuid.UUID(event.delivery_id) for event in sink.events)
    assert len({event.delivery_id for event in sink.events}) == 4
    assert (helpdesk.webhooks_sent, helpdesk.webhooks_failed) == (4, 0)


def test_failed_webhooks_are_retried_with_the_same_delivery_id(
    helpdesk: FakeHelpdesk, sink: Sink
) -> None:
    sink.failures = 2
    helpdesk.configure_webhook(sink.url, HOOK_TOKEN)
    helpdesk.create_ticket()
    wait_until(lambda: helpdesk.webhooks_sent == 1)
    attempts = helpdesk.deliveries()
    assert [(a.attempt, a.status) for a in attempts] == [(1, 500), (2, 500), (3, 202)]
    assert len({a.delivery_id for a in attempts}) == 1
    assert sink.events[0].delivery_id == attempts[0].delivery_id
    assert (helpdesk.webhooks_failed, helpdesk.webhooks_abandoned) == (2, 0)


def test_webhooks_are_abandoned_after_the_schedule(helpdesk: FakeHelpdesk, sink: Sink) -> None:
    helpdesk.configure_webhook(sink.url, "wrong-token")
    helpdesk.create_ticket()
    wait_until(lambda: helpdesk.webhooks_abandoned == 1)
    assert [a.status for a in helpdesk.deliveries()] == [401, 401, 401]
    assert sink.refused[0] == "X-Fake-Token header does not match the configured token"
    assert (helpdesk.webhooks_sent, helpdesk.webhooks_failed) == (0, 3)


def test_unreachable_webhook_target_counts_failures(helpdesk: FakeHelpdesk) -> None:
    with FakeHelpdesk() as other:
        url = other.base_url + "/hook"
    helpdesk.configure_webhook(url, HOOK_TOKEN)
    helpdesk.create_ticket()
    wait_until(lambda: helpdesk.webhooks_abandoned == 1)
    assert [a.status for a in helpdesk.deliveries()] == [None, None, None]
    assert helpdesk.deliveries()[0].error == "ConnectionError"


def test_standalone_server_prints_its_url_and_serves_samples() -> None:
    command = [sys.executable, "-m", "connector.sandbox.fake_helpdesk", "--token", TOKEN]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            base_url = process.stdout.readline().strip()
            api = Api(base_url)
            with api.session:
                listed = api("GET", "/api/tickets", params={"state": "open"}).json()
            assert listed == {"tickets": ["1", "2"], "next_page": None}
        finally:
            process.terminate()
            process.wait(timeout=10)
