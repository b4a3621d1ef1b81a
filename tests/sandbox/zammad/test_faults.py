"""Fault injection, pause/resume and the call log of the Zammad sandbox."""

from __future__ import annotations

import time

import pytest
import requests

from connector.sandbox.fake_helpdesk import wait_until
from connector.sandbox.zammad import ZammadSandbox
from tests.sandbox.zammad import Api, customer_ticket


def test_throttle_answers_429_with_retry_after_before_auth(zammad: ZammadSandbox, api: Api) -> None:
    zammad.faults.fail_next(1, status=429, retry_after=7)
    with Api(zammad.base_url, token=None) as anonymous:
        throttled = anonymous("GET", "/api/v1/tickets/1")
    assert (throttled.status_code, throttled.text) == (429, "Retry later\n")
    assert throttled.headers["Retry-After"] == "7"
    assert api("GET", "/api/v1/users/me").status_code == 200


def test_fail_next_only_matching_methods(zammad: ZammadSandbox, api: Api) -> None:
    ticket_id = customer_ticket(zammad)
    zammad.faults.fail_next(2, status=503, methods=["PUT"])
    assert api("GET", f"/api/v1/tickets/{ticket_id}").status_code == 200
    statuses = [
        api("PUT", f"/api/v1/tickets/{ticket_id}", json={"title": str(n)}).status_code
        for n in range(3)
    ]
    assert statuses == [503, 503, 200]
    assert zammad.ticket(ticket_id)["title"] == "2"


def test_fail_for_expires(zammad: ZammadSandbox, api: Api) -> None:
    zammad.faults.fail_for(0.3, status=502)
    assert api("GET", "/api/v1/users/me").status_code == 502
    wait_until(lambda: api("GET", "/api/v1/users/me").status_code == 200)


def test_latency(zammad: ZammadSandbox, api: Api) -> None:
    zammad.faults.latency(0.2)
    started = time.perf_counter()
    api("GET", "/api/v1/users/me")
    assert time.perf_counter() - started >= 0.2
    zammad.faults.clear()


def test_drop_after_apply_loses_only_the_answer(zammad: ZammadSandbox, api: Api) -> None:
    ticket_id = customer_ticket(zammad)
    zammad.faults.drop_next(1, after_apply=True)
    with pytest.raises(requests.ConnectionError):
        api("PUT", f"/api/v1/tickets/{ticket_id}", json={"title": "applied"})
    assert zammad.ticket(ticket_id)["title"] == "applied"
    zammad.faults.drop_next(1)
    with pytest.raises(requests.ConnectionError):
        api("PUT", f"/api/v1/tickets/{ticket_id}", json={"title": "lost"})
    assert zammad.ticket(ticket_id)["title"] == "applied"


def test_pause_refuses_connections_and_resume_keeps_state(zammad: ZammadSandbox, api: Api) -> None:
    ticket_id = customer_ticket(zammad, "kept")
    url = zammad.base_url
    zammad.pause()
    with pytest.raises(requests.ConnectionError):
        api("GET", f"/api/v1/tickets/{ticket_id}")
    zammad.resume()
    assert zammad.base_url == url
    assert api("GET", f"/api/v1/tickets/{ticket_id}").json()["title"] == "kept"


def test_call_log_and_writes(zammad: ZammadSandbox, api: Api) -> None:
    ticket_id = customer_ticket(zammad)
    tag = {"item": "sla:x", "object": "Ticket", "o_id": ticket_id}
    api("GET", f"/api/v1/tickets/{ticket_id}", headers={"X-Request-Id": "req-1"})
    api("PUT", f"/api/v1/tickets/{ticket_id}", json={"priority": "no such"})
    api("PUT", f"/api/v1/tickets/{ticket_id}", json={"title": "ok"})
    api("POST", "/api/v1/tags/add", json=tag)
    api("DELETE", "/api/v1/tags/remove", json=tag)
    api("GET", "/api/v1/tags", params={"object": "Ticket", "o_id": ticket_id})
    calls = zammad.calls(ticket_id=ticket_id)
    assert [(c.method, c.status) for c in calls] == [
        ("GET", 200),
        ("PUT", 422),
        ("PUT", 200),
        ("POST", 201),
        ("DELETE", 200),
        ("GET", 200),
    ]
    assert calls[0].request_id == "req-1"
    assert [(c.method, c.path) for c in zammad.writes(ticket_id)] == [
        ("PUT", f"/api/v1/tickets/{ticket_id}"),
        ("POST", "/api/v1/tags/add"),
        ("DELETE", "/api/v1/tags/remove"),
    ]
    zammad.clear_calls()
    assert zammad.calls() == []
