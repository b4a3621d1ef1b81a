"""The requester: events, the captured request shape, conditions, async order, retries."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest

from connector.sandbox.fake_helpdesk import wait_until
from connector.sandbox.znuny import RetryPolicy, ZnunySandbox, webservice_yaml
from tests.clock import Clock
from tests.sandbox.znuny import ROOT, SLABOT, START, Api, Sink, captured

QUICK = RetryPolicy(start=0.05, factor=2, max=0.2, count=3, period=60)
FIELDS = ("SLADueDate", "SupportTier", "SLAScopeTags", "SupportScope")


def make_znuny(**options: Any) -> ZnunySandbox:
    """Started sandbox with the captured instance's data: welcome ticket 1, alice, 4 fields.

    The welcome ticket is from the day before, so the next ticket is the day's first, as in
    the capture (``2026112810000011``).
    """
    clock = Clock(START - dt.timedelta(days=1))  # installed the day before
    sandbox = ZnunySandbox(clock=clock, retry=QUICK, **options)
    sandbox.start()
    sandbox.create_ticket(title="Welcome to Znuny!", customer_user="info@znuny.org", body="Hi")
    clock.now = START
    sandbox.add_customer_company("acme-gold", "ACME Gold Corp")
    sandbox.add_customer_user(
        "alice",
        email="alice@acme-gold.example",
        customer_id="acme-gold",
        first_name="Alice",
        last_name="Gold",
    )
    tiers = {"PossibleValues": {"gold": "Gold", "silver": "Silver"}}
    sandbox.add_dynamic_field("SLADueDate", "DateTime")
    sandbox.add_dynamic_field("SupportTier", "Dropdown", config=tiers)
    sandbox.add_dynamic_field("SLAScopeTags", "Multiselect", config={"PossibleValues": {}})
    sandbox.add_dynamic_field("SupportScope", "Multiselect", config={"PossibleValues": {}})
    return sandbox


@pytest.fixture
def sink() -> Iterator[Sink]:
    endpoint = Sink()
    yield endpoint
    endpoint.close()


@pytest.fixture
def znuny() -> Iterator[ZnunySandbox]:
    sandbox = make_znuny()
    yield sandbox
    sandbox.stop()


def create_over_rest(znuny: ZnunySandbox) -> int:
    """POST /Ticket as root, as the captured TicketCreate was made."""
    body = {
        **ROOT,
        "Ticket": {
            "Title": "Printer on fire",
            "Queue": "Raw",
            "State": "new",
            "Priority": "3 normal",
            "CustomerUser": "alice",
        },
        "Article": {
            "Subject": "Printer on fire",
            "Body": "Help, the printer is on fire.",
            "ContentType": "text/plain; charset=utf8",
        },
    }
    return int(Api(znuny.base_url)("POST", "/Ticket", json=body).json()["TicketID"])


def subscribe(znuny: ZnunySandbox, sink: Sink, *events: str, **options: Any) -> None:
    url = sink.url.replace("http://", "http://znuny-hook:hookpw@")
    headers = {"X-Webhook-Source": "znuny"}
    znuny.configure_webservice(webservice_yaml(url, events=events, headers=headers, **options))


def key_shape(value: Any) -> Any:
    """Keys (recursively) and JSON types of a payload, for comparing shapes, not values."""
    if isinstance(value, dict):
        return {key: key_shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [key_shape(value[0])] if value else []
    return type(value).__name__


def test_ticket_create_request_has_the_captured_shape(znuny: ZnunySandbox, sink: Sink) -> None:
    subscribe(znuny, sink, "TicketCreate", skip_user_id=None)
    create_over_rest(znuny)
    wait_until(lambda: sink.received)
    (request,) = sink.received
    real = captured("TicketCreate.captured.json")
    assert key_shape(request.body) == key_shape(real["body"])
    assert request.body["Event"] == {"TicketID": 2, "Event": "TicketCreate"}
    for header in ("Authorization", "Content-Type", "User-Agent", "X-Webhook-Source"):
        assert request.headers[header] == real["headers"][header], header
    assert (request.method, request.path) == ("POST", "/znuny/hook")
    ticket = request.body["Ticket"]
    assert (ticket["TicketNumber"], ticket["Created"]) == (
        "2026112810000011",
        "2026-11-28 04:00:07",
    )
    assert ticket["CustomerCompany"]["CustomerCompanyName"] == "ACME Gold Corp"


def test_event_blocks_as_captured(znuny: ZnunySandbox, sink: Sink) -> None:
    events = ("TicketCreate", "TicketCustomerUpdate", "ArticleCreate")
    subscribe(znuny, sink, *events, "TicketDynamicFieldUpdate_SupportTier", "TicketPriorityUpdate")
    ticket_id = create_over_rest(znuny)
    wait_until(lambda: len(sink.received) == 3)
    api = Api(znuny.base_url)
    api.patch(ticket_id, {"DynamicField": [{"Name": "SupportTier", "Value": "gold"}]})
    api.patch(ticket_id, {"Ticket": {"Priority": "4 high"}})
    wait_until(lambda: len(sink.received) == 5)
    blocks = {r.event: r.body["Event"] for r in sink.received}
    real = captured("event-blocks.captured.json")
    for name in ("TicketCreate", "TicketCustomerUpdate", "TicketPriorityUpdate"):
        assert blocks[name] == real[name], name
    assert (
        blocks["TicketDynamicFieldUpdate_SupportTier"]
        == real["TicketDynamicFieldUpdate_SupportTier"]
    )
    article = blocks["ArticleCreate"]
    assert {k: article[k] for k in ("TicketID", "ArticleID", "Event")} == {
        "TicketID": 2, "ArticleID": 2, "Event": "ArticleCreate"
    }  # fmt: skip
    assert article["OldTicketData"]["Title"] == "Printer on fire"
    assert article["OldTicketData"]["DynamicField_SLADueDate"] is None


def test_rest_writes_raise_events_unless_the_change_by_condition_skips_them(
    znuny: ZnunySandbox, sink: Sink
) -> None:
    subscribe(znuny, sink, "TicketDynamicFieldUpdate_SupportTier")  # ChangeBy must not be 2
    api = Api(znuny.base_url)
    znuny.pause_daemon()
    api.patch(1, {"DynamicField": [{"Name": "SupportTier", "Value": "silver"}]}, auth=SLABOT)
    assert znuny.webhooks_pending == 0
    api.patch(1, {"DynamicField": [{"Name": "SupportTier", "Value": "gold"}]}, auth=ROOT)
    assert znuny.webhooks_pending == 1
    znuny.resume_daemon()
    wait_until(lambda: sink.received)
    assert sink.received[0].body["Event"]["OldValue"] == "silver"
    assert sink.received[0].body["Ticket"]["ChangeBy"] == 1


def test_unchanged_value_raises_no_event(znuny: ZnunySandbox, sink: Sink) -> None:
    subscribe(znuny, sink, "TicketDynamicFieldUpdate_SupportTier", skip_user_id=None)
    znuny.pause_daemon()
    znuny.update_ticket(1, dynamic_fields={"SupportTier": "gold"})
    znuny.update_ticket(1, dynamic_fields={"SupportTier": "gold"})
    assert znuny.webhooks_pending == 1


def test_the_ticket_is_read_at_send_time(znuny: ZnunySandbox, sink: Sink) -> None:
    subscribe(znuny, sink, "TicketTitleUpdate")
    znuny.pause_daemon()
    znuny.update_ticket(1, title="First")
    znuny.update_ticket(1, title="Second")
    znuny.resume_daemon()
    wait_until(lambda: len(sink.received) == 2)
    assert [r.body["Ticket"]["Title"] for r in sink.received] == ["Second", "Second"]


def test_asynchronous_delivery_is_out_of_order(sink: Sink) -> None:
    znuny = make_znuny(async_workers=1)  # one worker: the order comes from the daemon alone
    subscribe(znuny, sink, "TicketCreate", skip_user_id=None)
    znuny.pause_daemon()
    created = [
        znuny.create_ticket(title=f"T{n}", customer_user="alice", body="b") for n in range(12)
    ]
    znuny.resume_daemon()
    wait_until(lambda: len(sink.received) == 12)
    znuny.stop()
    delivered = [r.body["Event"]["TicketID"] for r in sink.received]
    assert sorted(delivered) == created
    assert delivered != created  # 1 chance in 12! of passing by luck with a FIFO daemon


def test_delivery_order_follows_events_with_one_unshuffled_worker(sink: Sink) -> None:
    znuny = make_znuny(shuffle=False, async_workers=1)
    try:
        subscribe(znuny, sink, "TicketCreate", skip_user_id=None)
        znuny.pause_daemon()
        created = [
            znuny.create_ticket(title=f"T{n}", customer_user="alice", body="b") for n in range(8)
        ]
        znuny.resume_daemon()
        wait_until(lambda: len(sink.received) == 8)
        assert [r.body["Event"]["TicketID"] for r in sink.received] == created
    finally:
        znuny.stop()


# --- what Znuny's requester does to long credentials, to article events, to big tickets ------


def test_long_basic_credentials_are_wrapped_as_perl_wraps_them(
    znuny: ZnunySandbox, sink: Sink
) -> None:
    """``encode_base64`` breaks the base64 text after 76 characters; LWP sends the break as a
    space. Expected value: ``perl -MMIME::Base64 -e 'print encode_base64("znuny-hook:" . "f" x
    64)'``, line break replaced by a space, the trailing one dropped by the server."""
    url = sink.url.replace("http://", "http://znuny-hook:" + "f" * 64 + "@")
    znuny.configure_webservice(webservice_yaml(url, events=["TicketCreate"], skip_user_id=None))
    create_over_rest(znuny)
    wait_until(lambda: sink.received)
    assert sink.received[0].headers["Authorization"] == (
        "Basic em51bnktaG9vazpmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZm"
        " ZmZmZmZmZmZmZmZmZmZmZmZm"
    )


def test_article_conditions_see_the_articles_author(znuny: ZnunySandbox, sink: Sink) -> None:
    """``ObjectType/Article.pm`` merges the article over the ticket, so for ``ArticleCreate``
    the ``ChangeBy`` Condition tests the article's author, not the ticket's last changer."""
    subscribe(znuny, sink, "ArticleCreate")  # ChangeBy must not be 2
    Api(znuny.base_url).patch(1, {"DynamicField": {"Name": "SupportTier", "Value": "gold"}}, SLABOT)
    znuny.pause_daemon()
    znuny.add_article(1, body="any news?", sender_type="customer", user_id=1)
    assert znuny.ticket(1)["ChangeBy"] == 2  # the ticket row is not touched by an article
    assert znuny.webhooks_pending == 1  # yet the follow-up fires: its own ChangeBy is 1
    znuny.resume_daemon()
    wait_until(lambda: sink.received)
    (request,) = sink.received
    assert request.body["Ticket"]["ChangeBy"] == 2
    assert request.body["Ticket"]["Article"]["CreateBy"] == 1
    znuny.pause_daemon()
    znuny.add_article(1, body="note", sender_type="system", user_id=2)
    assert znuny.webhooks_pending == 0  # the integration agent's own article does not fire
    znuny.resume_daemon()


def test_omitted_fields_are_left_out_of_the_request(znuny: ZnunySandbox, sink: Sink) -> None:
    """SysConfig ``...PrepareRequest::OmittedFields``: keys removed from ``Ticket`` and
    ``Event`` (``A->B`` for nested ones; a list is handled element by element)."""
    subscribe(znuny, sink, "ArticleCreate", skip_user_id=None)
    znuny.set_omitted_fields("SLAWebhook", "Articles;Article; OldTicketData->Title")
    znuny.add_article(1, body="x" * 50_000, sender_type="customer")
    wait_until(lambda: sink.received)
    body = sink.received[0].body
    assert "Articles" not in body["Ticket"] and "Article" not in body["Ticket"]
    assert "Title" not in body["Event"]["OldTicketData"]
    assert body["Event"]["OldTicketData"]["TicketNumber"]
    assert body["Ticket"]["Title"] == "Welcome to Znuny!"
    znuny.set_omitted_fields("SLAWebhook", "")
    znuny.add_article(1, body="y", sender_type="customer")
    wait_until(lambda: len(sink.received) == 2)
    assert len(sink.received[1].body["Ticket"]["Articles"]) == 3
