"""The requester's success rule, RequestRetry, synchronous invokers and response tags."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from connector.sandbox.fake_helpdesk import wait_until
from connector.sandbox.znuny import RetryPolicy, ZnunySandbox, webservice_yaml
from tests.sandbox.znuny import ROOT, Api, Sink

QUICK = RetryPolicy(start=0.05, factor=2, max=0.15, count=3, period=60)
JSON = "application/json"


@pytest.fixture
def znuny() -> Iterator[ZnunySandbox]:
    with ZnunySandbox(retry=QUICK) as sandbox:
        sandbox.add_dynamic_field(
            "SupportTier", "Dropdown", config={"PossibleValues": {"gold": "G"}}
        )
        sandbox.create_ticket(title="t", customer_user="c@shop.example", body="b")
        yield sandbox


def subscribe(znuny: ZnunySandbox, url: str, **options: Any) -> None:
    options.setdefault("events", ["TicketTitleUpdate"])
    znuny.configure_webservice(webservice_yaml(url, **options))


def deliver(znuny: ZnunySandbox, answers: list[tuple[int, str, str]], **options: Any) -> Sink:
    sink = Sink(answers)
    subscribe(znuny, sink.url, **options)
    znuny.update_ticket(1, title="changed")
    wait_until(lambda: znuny.webhooks_pending == 0)
    sink.close()
    return sink


@pytest.mark.parametrize(
    "answer",
    [(200, "{}", JSON), (201, '{"ok": 1}', JSON), (204, "", JSON), (200, "ok", "text/plain")],
)
def test_success(znuny: ZnunySandbox, answer: tuple[int, str, str]) -> None:
    sink = deliver(znuny, [answer])
    assert len(sink.received) == 1
    assert [(d.status, d.error) for d in znuny.deliveries()] == [(answer[0], None)]


@pytest.mark.parametrize(
    "answer",
    [
        (200, "", JSON),  # 200 with an empty body [live]
        (500, "{}", JSON),
        (202 + 8, "{}", JSON),  # 210 does not match ^20\d$
        (200, "not json", JSON),
        (200, "[1, 2]", JSON),
        (302, "", "text/html"),
    ],
)
def test_failure_is_retried_with_the_same_event(
    znuny: ZnunySandbox, answer: tuple[int, str, str]
) -> None:
    sink = deliver(znuny, [answer])
    assert len(sink.received) == 2
    first, second = znuny.deliveries()
    assert (first.ok, first.status, first.retry_in) == (False, answer[0], 0.05)
    assert (second.ok, second.attempt) == (True, 2)
    assert sink.received[0].body["Event"] == sink.received[1].body["Event"]


def test_request_retry_schedule_then_silence(znuny: ZnunySandbox) -> None:
    sink = deliver(znuny, [(500, "boom", "text/plain")] * 10)
    assert len(sink.received) == 4  # the first attempt and RetryCountMax (3) retries
    gaps = [b.at - a.at for a, b in zip(sink.received, sink.received[1:], strict=False)]
    assert [round(g, 2) >= minimum for g, minimum in zip(gaps, (0.05, 0.1, 0.15), strict=True)] == [
        True
    ] * 3
    assert [d.retry_in for d in znuny.deliveries()] == [0.05, 0.1, 0.15, None]
    assert znuny.webhooks_abandoned == 1
    assert "Response code '500'" in str(znuny.deliveries()[-1].error)


def test_without_error_handling_nothing_is_retried(znuny: ZnunySandbox) -> None:
    sink = deliver(znuny, [(500, "boom", "text/plain")], retry=False)
    assert len(sink.received) == 1
    assert znuny.webhooks_abandoned == 1


def test_the_yaml_numbers_apply_without_an_override() -> None:
    with ZnunySandbox() as sandbox:
        sandbox.create_ticket(title="t", customer_user="c@shop.example", body="b")
        sink = Sink([(500, "boom", "text/plain")])
        try:
            subscribe(sandbox, sink.url, retry={"RetryIntervalStart": "7"})
            sandbox.update_ticket(1, title="x")
            wait_until(lambda: sandbox.deliveries())
            assert sandbox.deliveries()[0].retry_in == 7
        finally:
            sink.close()


def test_retry_only_for_the_filtered_invoker(znuny: ZnunySandbox) -> None:
    sink = deliver(znuny, [(500, "", JSON)], retry={"InvokerFilter": ["OtherInvoker"]})
    assert len(sink.received) == 1


def test_unreachable_endpoint_is_retried(znuny: ZnunySandbox) -> None:
    sink = Sink()
    url = sink.url
    sink.close()
    subscribe(znuny, url)
    znuny.update_ticket(1, title="x")
    wait_until(lambda: znuny.webhooks_pending == 0)
    assert [d.attempt for d in znuny.deliveries()] == [1, 2, 3, 4]
    assert all(d.status is None for d in znuny.deliveries())


def test_synchronous_invoker_runs_inside_the_rest_request(znuny: ZnunySandbox) -> None:
    sink = Sink()
    try:
        subscribe(
            znuny, sink.url, asynchronous=False, events=["TicketDynamicFieldUpdate_SupportTier"]
        )
        znuny.pause_daemon()
        Api(znuny.base_url).patch(1, {"DynamicField": {"Name": "SupportTier", "Value": "gold"}})
        assert len(sink.received) == 1  # already delivered when the PATCH answered
        assert znuny.deliveries()[0].asynchronous is False
    finally:
        sink.close()


def test_synchronous_failure_does_not_fail_the_update(znuny: ZnunySandbox) -> None:
    sink = Sink([(500, "", JSON)])
    try:
        subscribe(znuny, sink.url, asynchronous=False)
        znuny.pause_daemon()
        answer = Api(znuny.base_url).patch(1, {"Ticket": {"Title": "new"}}, auth=ROOT)
        assert "Error" not in answer
        assert (len(sink.received), znuny.webhooks_pending) == (1, 1)  # retry waits for the daemon
        znuny.resume_daemon()
        wait_until(lambda: len(sink.received) == 2)
    finally:
        sink.close()


def test_response_tags_set_a_field_and_raise_its_event(znuny: ZnunySandbox) -> None:
    tag = '{"OTRS_TicketDynamicFieldSet_SupportTier": "gold"}'
    sink = Sink([(200, tag, JSON)])
    try:
        events = ["TicketTitleUpdate", "TicketDynamicFieldUpdate_SupportTier"]
        subscribe(znuny, sink.url, events=events, skip_user_id=None)
        znuny.update_ticket(1, title="x", user_id=2)
        wait_until(lambda: len(sink.received) == 2)
        assert znuny.ticket(1)["DynamicField_SupportTier"] == "gold"
        assert znuny.ticket(1)["ChangeBy"] == 1
        assert sink.events() == ["TicketTitleUpdate", "TicketDynamicFieldUpdate_SupportTier"]
    finally:
        sink.close()


def test_controller_parameters_are_interpolated(znuny: ZnunySandbox) -> None:
    sink = Sink()
    try:
        subscribe(
            znuny, sink.url + "/:Event.Event/:Ticket.TicketNumber", events=["TicketTitleUpdate"]
        )
        Api(znuny.base_url).patch(1, {"Ticket": {"Title": "x"}}, auth=ROOT)
        wait_until(lambda: sink.received)
        number = znuny.ticket(1)["TicketNumber"]
        assert sink.received[0].path == f"/znuny/hook/TicketTitleUpdate/{number}"
    finally:
        sink.close()


@pytest.mark.parametrize(
    ("start", "factor", "maximum", "count", "period", "expected"),
    [
        (10, 2, 60, 3, 600, [10, 20, 40, None]),  # [live]: attempts at 0, +10, +30, +70 s
        (10, 2, 15, 3, 600, [10, 15, 15, None]),
        (10, 1.5, 0, 5, 600, [10, 15, 22.5, 33.75, 50.625, None]),
        (10, 2, 60, 9, 50, [10, 20, None]),  # 10 + 20 + 40 would pass RetryPeriodMax
    ],
)
def test_retry_policy_formula(
    start: float, factor: float, maximum: float, count: int, period: float, expected: list[Any]
) -> None:
    policy = RetryPolicy(start=start, factor=factor, max=maximum, count=count, period=period)
    delays: list[float | None] = []
    elapsed = 0.0
    for retries in range(len(expected)):
        delay = policy.delay(retries, elapsed)
        delays.append(delay)
        elapsed += delay or 0
    assert delays == expected
