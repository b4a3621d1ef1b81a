"""ZammadAdapter against the Zammad sandbox on a real socket: read, apply, errors, search.

Request bodies are observed with a real ``requests.Session`` that keeps what it sent, so "only
the changed attributes" is checked on the wire, not inferred.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses

from connector.errors import PermanentError, TransientError
from connector.helpdesks.base import HelpdeskAdapter, WritePlan
from connector.helpdesks.zammad import ZammadAdapter, ZammadApi, load_options
from connector.policy.ticket import Party
from connector.sandbox.zammad import ADMIN_TOKEN, ZammadSandbox
from tests.clock import Clock

from .conftest import (
    API_TOKEN,
    DUE_OPTION,
    customer_attributes,
    managed_attributes,
    zammad_instance,
)

DUE = "2026-03-02T12:00:00Z"


class KeepingSession(requests.Session):
    """A real session that also remembers every request it sent."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[requests.PreparedRequest] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        self.sent.append(request)
        return super().send(request, **kwargs)

    def bodies(self, method: str) -> list[Any]:
        return [json.loads(r.body or b"null") for r in self.sent if r.method == method]


@pytest.fixture
def session() -> Iterator[KeepingSession]:
    with KeepingSession() as kept:
        yield kept


def make_adapter(
    zammad: ZammadSandbox,
    session: requests.Session | None = None,
    token: str = API_TOKEN,
    **options: Any,
) -> ZammadAdapter:
    instance = zammad_instance(zammad.base_url, **options)
    parsed = load_options(instance, {})
    api = ZammadApi("main", zammad.base_url, token, parsed, timeout=5, session=session)
    return ZammadAdapter("main", api, parsed)


ZAMMAD = "https://zammad.example"
SEARCH = f"{ZAMMAD}/api/v1/tickets/search"


def _offline_adapter() -> ZammadAdapter:
    """An adapter of ``ZAMMAD``, for answers ``responses`` makes up."""
    instance = zammad_instance(ZAMMAD)
    parsed = load_options(instance, {})
    return ZammadAdapter("main", ZammadApi("main", ZAMMAD, API_TOKEN, parsed, timeout=5), parsed)


@pytest.fixture
def adapter(zammad: ZammadSandbox, session: KeepingSession) -> Iterator[ZammadAdapter]:
    customer_attributes(zammad)
    managed_attributes(zammad)
    client = make_adapter(zammad, session)
    yield client
    client.close()


def studio_ticket(zammad: ZammadSandbox, **attributes: Any) -> int:
    org = zammad.add_organization("Веб-студия «Пиксель»", bitrix_license_type="partner")
    ana = zammad.add_customer(
        "ana@studio.example",
        firstname="Анна",
        lastname="Смирнова",
        organization=org["id"],
        bitrix_license_key="ABC-12-1234567890AB",
    )
    ticket = zammad.create_ticket(
        "Не работает обмен с 1С",
        customer=ana["id"],
        body="<div>После обновления&nbsp;обмен падает:</div><p>ошибка 500 &lt;sale&gt;</p>",
        priority="3 high",
        **attributes,
    )
    return int(ticket["id"])


def test_it_implements_the_port(adapter: ZammadAdapter) -> None:
    port: HelpdeskAdapter = adapter
    assert (port.kind, port.instance) == ("zammad", "main")


# --- read -----------------------------------------------------------------------------------


def test_read_maps_ticket_customer_organization_tags_and_text(
    zammad: ZammadSandbox, adapter: ZammadAdapter, clock: Clock
) -> None:
    ticket_id = studio_ticket(zammad, sla_override="emergency")
    zammad.add_article(
        ticket_id, "internal remark", sender="Agent", article_type="note", internal=True
    )
    zammad.add_tag(ticket_id, "sla:tier:partner")
    zammad.update_ticket(
        ticket_id, bitrix_sla_due_at="2026-03-02T12:00:00.250Z", bitrix_sla_tier="partner"
    )
    snapshot = adapter.read(str(ticket_id))
    assert (snapshot.helpdesk, snapshot.instance, snapshot.id) == ("zammad", "main", str(ticket_id))
    assert snapshot.number == f"31{ticket_id:06d}"
    assert snapshot.created_at == clock.now
    assert snapshot.subject == "Не работает обмен с 1С"
    assert snapshot.body == "После обновления обмен падает:\nошибка 500 <sale>"
    assert (snapshot.group, snapshot.priority, snapshot.state) == ("Users", "3 high", "new")
    assert snapshot.customer == Party(
        id=snapshot.customer.id if snapshot.customer else None,
        name="Анна Смирнова",
        email="ana@studio.example",
        fields={"bitrix_license_key": "ABC-12-1234567890AB"},
    )
    assert snapshot.organization is not None
    assert (snapshot.organization.name, snapshot.organization.fields) == (
        "Веб-студия «Пиксель»",
        {"bitrix_license_type": "partner"},
    )
    assert snapshot.fields["sla_override"] == "emergency"
    assert not {"bitrix_sla_due_at", "bitrix_sla_tier", "escalation_at", "number"} & set(
        snapshot.fields
    )
    assert snapshot.managed_fields == {
        "sla_due_at": DUE,  # Zammad's "...00.250Z" normalised, whole seconds
        "sla_tier": "partner",
        "sla_level": None,
    }
    assert snapshot.tags == ("sla:tier:partner",)


def test_read_makes_the_documented_gets(
    zammad: ZammadSandbox, adapter: ZammadAdapter, session: KeepingSession
) -> None:
    ticket_id = studio_ticket(zammad)
    zammad.clear_calls()
    adapter.read(str(ticket_id))
    assert [(c.method, c.path, c.status) for c in zammad.calls()] == [
        ("GET", f"/api/v1/tickets/{ticket_id}", 200),
        ("GET", "/api/v1/users/" + str(zammad.user_id("ana@studio.example")), 200),
        ("GET", "/api/v1/organizations/1", 200),
        ("GET", "/api/v1/tags", 200),
        ("GET", f"/api/v1/ticket_articles/by_ticket/{ticket_id}", 200),
    ]
    assert all(r.headers["Authorization"] == f"Token token={API_TOKEN}" for r in session.sent)
    assert "expand=true" in (session.sent[0].url or "")


def test_a_ticket_without_organization(zammad: ZammadSandbox, adapter: ZammadAdapter) -> None:
    bob = zammad.add_customer("bob@example.org", firstname="-")
    ticket = zammad.create_ticket(
        "Вопрос", customer=bob["id"], body="plain", content_type="text/plain"
    )
    snapshot = adapter.read(str(ticket["id"]))
    assert snapshot.organization is None
    assert snapshot.customer is not None
    assert (snapshot.customer.name, snapshot.body) == ("bob@example.org", "plain")


def test_an_agent_opened_phone_ticket_uses_its_first_article(
    zammad: ZammadSandbox, adapter: ZammadAdapter
) -> None:
    bob = zammad.add_customer("bob@example.org")
    ticket = zammad.create_ticket(
        "Звонок",
        customer=bob["id"],
        body="<p>Клиент: сайт лежит</p>",
        sender="Agent",
        article_type="phone",
    )
    assert adapter.read(str(ticket["id"])).body == "Клиент: сайт лежит"


def test_an_article_html_parser_cannot_parse_is_read_as_stripped_text(
    zammad: ZammadSandbox, adapter: ZammadAdapter
) -> None:
    bob = zammad.add_customer("bob@example.org")
    body = "<div>Hello</div><![if-mso[ x ]]><div>db down</div>"  # Outlook conditional section
    ticket = zammad.create_ticket("Письмо из Outlook", customer=bob["id"], body=body)
    assert adapter.read(str(ticket["id"])).body == "Hello\ndb down"


# --- apply ----------------------------------------------------------------------------------


def test_apply_puts_only_changed_attributes_then_tags(
    zammad: ZammadSandbox, adapter: ZammadAdapter, session: KeepingSession
) -> None:
    ticket_id = studio_ticket(zammad)
    zammad.add_tag(ticket_id, "sla:level:old")
    before = zammad.ticket(ticket_id)
    plan = WritePlan(
        ticket_id=str(ticket_id),
        fields={"sla_due_at": DUE, "sla_level": "partner-standard"},
        add_tags=("sla:level:partner-standard",),
        remove_tags=("sla:level:old",),
    )
    calls = adapter.apply(plan)
    assert [(c.method, c.path, c.status) for c in calls] == [
        ("PUT", f"/api/v1/tickets/{ticket_id}", 200),
        ("POST", "/api/v1/tags/add", 201),
        ("DELETE", "/api/v1/tags/remove", 200),
    ]
    assert session.bodies("PUT") == [
        {"bitrix_sla_due_at": DUE, "bitrix_sla_level": "partner-standard"}
    ]
    tag_item = {"object": "Ticket", "o_id": ticket_id}
    assert session.bodies("POST") == [{"item": "sla:level:partner-standard", **tag_item}]
    assert session.bodies("DELETE") == [{"item": "sla:level:old", **tag_item}]
    after = zammad.ticket(ticket_id)
    assert after["bitrix_sla_due_at"] == "2026-03-02T12:00:00.000Z"
    assert after["updated_by_id"] == zammad.integration_user_id
    assert after["article_count"] == before["article_count"]  # never an article
    assert zammad.tags(ticket_id) == ["sla:level:partner-standard"]


def test_apply_clears_an_attribute_with_null(
    zammad: ZammadSandbox, adapter: ZammadAdapter, session: KeepingSession
) -> None:
    ticket_id = studio_ticket(zammad, bitrix_sla_tier="partner")
    adapter.apply(WritePlan(ticket_id=str(ticket_id), fields={"sla_tier": None}))
    assert session.bodies("PUT") == [{"bitrix_sla_tier": None}]
    assert zammad.ticket(ticket_id)["bitrix_sla_tier"] is None


def test_attribute_names_come_from_the_options(
    zammad: ZammadSandbox, session: KeepingSession
) -> None:
    zammad.add_attribute("Ticket", "sla_tier_x", "input", {"type": "text", "maxlength": 40})
    bob = zammad.add_customer("bob@example.org")
    ticket = zammad.create_ticket("Вопрос", customer=bob["id"], sla_tier_x="old")
    client = make_adapter(zammad, session, tier_attribute="sla_tier_x")
    assert client.read(str(ticket["id"])).managed_fields["sla_tier"] == "old"
    client.apply(WritePlan(ticket_id=str(ticket["id"]), fields={"sla_tier": "new"}))
    assert zammad.ticket(ticket["id"])["sla_tier_x"] == "new"


def test_an_empty_plan_makes_no_call(zammad: ZammadSandbox, adapter: ZammadAdapter) -> None:
    ticket_id = studio_ticket(zammad)
    zammad.clear_calls()
    assert adapter.apply(WritePlan(ticket_id=str(ticket_id))) == []
    assert zammad.calls() == []


def test_tags_outside_the_prefix_are_never_touched(
    zammad: ZammadSandbox, adapter: ZammadAdapter
) -> None:
    ticket_id = studio_ticket(zammad)
    zammad.add_tag(ticket_id, "vip")
    zammad.clear_calls()
    with pytest.raises(PermanentError, match="outside the managed prefix 'sla:'"):
        adapter.apply(WritePlan(ticket_id=str(ticket_id), remove_tags=("vip",)))
    assert zammad.calls() == []
    assert zammad.tags(ticket_id) == ["vip"]


def test_an_attribute_zammad_drops_is_a_permanent_error_naming_it_and_the_fix(
    zammad: ZammadSandbox, session: KeepingSession
) -> None:
    customer_attributes(zammad)
    zammad.add_attribute("Ticket", "bitrix_sla_tier", "select", {"options": {"partner": "P"}})
    zammad.add_attribute("Ticket", "bitrix_sla_due_at", "datetime", DUE_OPTION, migrate=False)
    client = make_adapter(zammad, session)
    ticket_id = studio_ticket(zammad)
    plan = WritePlan(
        ticket_id=str(ticket_id),
        fields={"sla_due_at": DUE, "sla_tier": "partner"},
        add_tags=("sla:tier:partner",),
    )
    with pytest.raises(
        PermanentError,
        match=r"zammad main: PUT /api/v1/tickets/\d+ -> 200, but Zammad dropped the ticket "
        r"attribute\(s\) 'bitrix_sla_due_at' \(options.due_at_attribute\): no such attribute, "
        r"or not migrated yet.*`bitrix-sla setup zammad --instance main --apply`",
    ):
        client.apply(plan)
    assert zammad.ticket(ticket_id)["bitrix_sla_tier"] == "partner"  # a known one is written
    assert zammad.tags(ticket_id) == []  # the plan stops at the failed PUT
    zammad.execute_migrations()
    client.apply(plan)
    assert zammad.ticket(ticket_id)["bitrix_sla_due_at"] == "2026-03-02T12:00:00.000Z"
    client.close()


@pytest.mark.parametrize(
    ("status", "answer"),
    [
        (200, {"id": 5, "bitrix_sla_tier": "commercial"}),  # pre-trigger value (#6255)
        (200, {"id": 5, "bitrix_sla_tier": None}),
        (200, b""),  # not a ticket: nothing to judge by
        (200, b"true"),
    ],
)
@responses.activate
def test_only_the_put_answers_keys_are_judged_never_its_values(
    status: int, answer: dict[str, Any] | bytes
) -> None:
    url = f"{ZAMMAD}/api/v1/tickets/5"
    if isinstance(answer, bytes):
        responses.add(responses.PUT, url, status=status, body=answer)
    else:
        responses.add(responses.PUT, url, status=status, json=answer)
    client = _offline_adapter()
    calls = client.apply(WritePlan(ticket_id="5", fields={"sla_tier": "partner"}))
    assert [(c.method, c.status) for c in calls] == [("PUT", 200)]


# --- errors ---------------------------------------------------------------------------------


def test_unknown_ticket_is_permanent(adapter: ZammadAdapter) -> None:
    with pytest.raises(PermanentError, match=r"GET /api/v1/tickets/999 -> 404 .*Couldn't find"):
        adapter.read("999")


def test_a_non_numeric_id_is_refused_without_a_call(
    zammad: ZammadSandbox, adapter: ZammadAdapter
) -> None:
    with pytest.raises(PermanentError, match="not a Zammad ticket id"):
        adapter.read("12/../../users/me")
    assert zammad.calls() == []


def test_validation_422_is_permanent(zammad: ZammadSandbox, adapter: ZammadAdapter) -> None:
    ticket_id = studio_ticket(zammad)
    with pytest.raises(PermanentError, match=r"-> 422 .*invalid value 'gold'"):
        adapter.apply(WritePlan(ticket_id=str(ticket_id), fields={"sla_tier": "gold"}))


def test_a_past_due_time_on_a_past_false_attribute_is_permanent(
    zammad: ZammadSandbox, session: KeepingSession
) -> None:
    customer_attributes(zammad)
    managed_attributes(zammad, past=False)
    client = make_adapter(zammad, session)
    ticket_id = studio_ticket(zammad)
    plan = WritePlan(ticket_id=str(ticket_id), fields={"sla_due_at": "2020-01-01T00:00:00Z"})
    with pytest.raises(PermanentError, match="does not allow past dates"):
        client.apply(plan)


def test_an_empty_required_attribute_fails_with_a_hint(
    zammad: ZammadSandbox, adapter: ZammadAdapter
) -> None:
    ticket_id = studio_ticket(zammad)
    zammad.add_attribute(
        "Ticket",
        "contract_no",
        "input",
        {"type": "text", "maxlength": 20},
        screens={"edit": {"ticket.agent": {"shown": True, "required": True}}},
    )
    with pytest.raises(PermanentError, match=r"is required but missing.*make it optional"):
        adapter.apply(WritePlan(ticket_id=str(ticket_id), fields={"sla_tier": "partner"}))


@pytest.mark.parametrize(
    "message",
    [
        "Mysql2::Error: Deadlock found when trying to get lock; try restarting transaction",
        "PG::LockNotAvailable: ERROR: canceling statement due to lock timeout",
        "Mysql2::Error::TimeoutError: Lock wait timeout exceeded",
    ],
)
def test_a_422_lock_conflict_is_transient(
    zammad: ZammadSandbox, adapter: ZammadAdapter, message: str
) -> None:
    ticket_id = studio_ticket(zammad)
    zammad.faults.fail_next(1, status=422, body={"error": message, "error_human": message})
    plan = WritePlan(ticket_id=str(ticket_id), fields={"sla_tier": "partner"})
    with pytest.raises(TransientError, match="lock"):
        adapter.apply(plan)
    adapter.apply(plan)  # the retry goes through
    assert zammad.ticket(ticket_id)["bitrix_sla_tier"] == "partner"


@pytest.mark.parametrize(("status", "retry_after"), [(500, None), (503, 7.0), (429, 30.0)])
def test_server_errors_and_throttling_are_transient(
    zammad: ZammadSandbox, adapter: ZammadAdapter, status: int, retry_after: float | None
) -> None:
    ticket_id = studio_ticket(zammad)
    zammad.faults.fail_next(1, status=status, retry_after=retry_after)
    with pytest.raises(TransientError, match=f"-> {status}") as caught:
        adapter.read(str(ticket_id))
    assert caught.value.retry_after == retry_after


def test_a_paused_zammad_is_transient(zammad: ZammadSandbox, adapter: ZammadAdapter) -> None:
    ticket_id = studio_ticket(zammad)
    zammad.pause()
    try:
        with pytest.raises(TransientError, match="connection failed"):
            adapter.read(str(ticket_id))
    finally:
        zammad.resume()
    assert adapter.read(str(ticket_id)).id == str(ticket_id)


def test_a_wrong_token_is_permanent_and_not_echoed(zammad: ZammadSandbox) -> None:
    client = make_adapter(zammad, token="wrong-token-0123")
    try:
        with pytest.raises(PermanentError, match="-> 401") as caught:
            client.read("1")
    finally:
        client.close()
    assert "wrong-token-0123" not in str(caught.value)


def test_a_lock_conflict_zammad_hides_from_a_non_admin_is_transient(
    zammad: ZammadSandbox, adapter: ZammadAdapter
) -> None:
    ticket_id = studio_ticket(zammad)
    zammad.lock_conflict_next(1)
    plan = WritePlan(ticket_id=str(ticket_id), fields={"sla_tier": "partner"})
    with pytest.raises(
        TransientError,
        match=r"PUT /api/v1/tickets/\d+ -> 422 .*: Error ID [\w-]+: Please contact your "
        r"administrator\. \(Zammad hides the cause .* database lock conflict, so it is retried",
    ):
        adapter.apply(plan)
    assert zammad.ticket(ticket_id)["bitrix_sla_tier"] is None
    adapter.apply(plan)  # the retry goes through
    assert zammad.ticket(ticket_id)["bitrix_sla_tier"] == "partner"


def test_an_admin_sees_the_same_lock_conflict_as_such(zammad: ZammadSandbox) -> None:
    customer_attributes(zammad)
    managed_attributes(zammad)
    client = make_adapter(zammad, token=ADMIN_TOKEN)
    ticket_id = studio_ticket(zammad)
    zammad.lock_conflict_next(1)
    with pytest.raises(TransientError, match=r"Deadlock found.*database lock conflict"):
        client.apply(WritePlan(ticket_id=str(ticket_id), fields={"sla_tier": "partner"}))
    client.close()


def test_an_opaque_error_for_non_admins_is_kept_readable(
    zammad: ZammadSandbox, adapter: ZammadAdapter
) -> None:
    opaque = "Error ID 4f3a2b: Please contact your administrator."
    zammad.faults.fail_next(1, status=422, body={"error": opaque})
    with pytest.raises(PermanentError, match="Error ID 4f3a2b"):
        adapter.read(str(studio_ticket(zammad)))


# --- changed_since ----------------------------------------------------------------------------


def test_changed_since_pages_through_open_tickets(
    zammad: ZammadSandbox, adapter: ZammadAdapter, session: KeepingSession, clock: Clock
) -> None:
    bob = zammad.add_customer("bob@example.org")
    ids = []
    for number in range(405):
        clock.advance(seconds=1)
        state = "closed" if number % 100 == 99 else ("pending reminder" if number == 5 else "new")
        ids.append(
            (zammad.create_ticket(f"T{number}", customer=bob["id"], state=state)["id"], state)
        )
    open_ids = [str(ticket_id) for ticket_id, state in ids if state != "closed"]
    session.sent.clear()
    assert list(adapter.changed_since(None)) == open_ids  # oldest change first
    searches = [r for r in session.sent if "/tickets/search" in (r.url or "")]
    assert len(searches) == 3  # 200 + 200 + 1
    assert all(
        "limit=200" in (r.url or "") and "sort_by=updated_at" in (r.url or "") for r in searches
    )


def test_changed_since_a_time_skips_older_tickets(
    zammad: ZammadSandbox, adapter: ZammadAdapter, clock: Clock
) -> None:
    bob = zammad.add_customer("bob@example.org")
    old = zammad.create_ticket("old", customer=bob["id"])["id"]
    since = clock.advance(minutes=10)
    new = zammad.create_ticket("new", customer=bob["id"])["id"]
    clock.advance(minutes=1)
    zammad.add_tag(old, "emergency-confirmed")  # a tag touches updated_at: found again
    assert list(adapter.changed_since(since)) == [str(new), str(old)]
    assert list(adapter.changed_since(clock.advance(minutes=1))) == []


def searches(session: KeepingSession) -> list[str]:
    return [r.url or "" for r in session.sent if "/tickets/search" in (r.url or "")]


def test_changed_since_lists_every_ticket_while_our_writes_move_them(
    zammad: ZammadSandbox, adapter: ZammadAdapter, session: KeepingSession, clock: Clock
) -> None:
    """Each listed ticket is written back at once, as the worker does while the sweep runs: it
    moves behind all the others. Offset paging then skipped a whole page for good."""
    bob = zammad.add_customer("bob@example.org")
    ids = []
    for number in range(300):
        clock.advance(seconds=1)
        ids.append(zammad.create_ticket(f"T{number}", customer=bob["id"])["id"])
    session.sent.clear()
    listed = []
    for ticket_id in adapter.changed_since(None):
        listed.append(int(ticket_id))
        clock.advance(seconds=1)
        adapter.apply(WritePlan(ticket_id=ticket_id, fields={"sla_tier": "partner"}))
    assert sorted(listed) == ids  # every one, once
    assert not any("page=" in url for url in searches(session))


def test_changed_since_finds_the_ticket_behind_one_an_agent_updated_mid_sweep(
    zammad: ZammadSandbox, adapter: ZammadAdapter, clock: Clock
) -> None:
    bob = zammad.add_customer("bob@example.org")
    ids = []
    for number in range(250):
        clock.advance(seconds=1)
        ids.append(zammad.create_ticket(f"T{number}", customer=bob["id"])["id"])
    since = clock.now - dt.timedelta(hours=1)
    listed = []
    for ticket_id in adapter.changed_since(since):
        listed.append(int(ticket_id))
        if len(listed) == 200:  # first page read; three of its tickets change meanwhile
            clock.advance(seconds=1)
            for touched in ids[:3]:
                zammad.update_ticket(touched, title="changed while sweeping")
    assert sorted(listed) == ids


def test_changed_since_walks_many_tickets_sharing_one_updated_at(
    zammad: ZammadSandbox, adapter: ZammadAdapter, session: KeepingSession, clock: Clock
) -> None:
    """450 tickets changed in the same millisecond (a bulk action): time cannot page them, ids
    do; three of them change again mid-sweep. The sweep ends, and lists each once."""
    bob = zammad.add_customer("bob@example.org")
    ids = [zammad.create_ticket(f"T{n}", customer=bob["id"])["id"] for n in range(450)]
    session.sent.clear()
    listed = []
    for ticket_id in adapter.changed_since(None):
        listed.append(int(ticket_id))
        if len(listed) == 200:
            clock.advance(seconds=1)
            for touched in ids[:3]:
                zammad.update_ticket(touched, title="changed while sweeping")
    assert sorted(listed) == ids
    urls = searches(session)
    # 200 by time, the same instant again, that instant by id (3 pages), then after it
    assert len(urls) == 6
    assert sum("sort_by=id" in url for url in urls) == 3


def test_changed_since_goes_on_from_the_page_tail_with_milliseconds(
    zammad: ZammadSandbox, adapter: ZammadAdapter, session: KeepingSession, clock: Clock
) -> None:
    """The next search starts at the oldest time among the first page's last ten tickets
    (ticket 191 of 200), to the millisecond Zammad shows."""
    bob = zammad.add_customer("bob@example.org")
    clock.advance(microseconds=377_912)
    for number in range(201):
        clock.advance(seconds=1)
        zammad.create_ticket(f"T{number}", customer=bob["id"])
    assert zammad.ticket(191)["updated_at"] == "2026-03-02T07:03:11.377Z"
    session.sent.clear()
    assert len(list(adapter.changed_since(None))) == 201
    second = parse_qs(urlsplit(searches(session)[1]).query)["query"]
    assert second == [
        'state.name:("new" OR "open" OR "pending reminder" OR "pending close") '
        "AND updated_at:>=2026-03-02T07\\:03\\:11.377Z"
    ]


@responses.activate
def test_a_ticket_the_index_has_not_caught_up_with_pushes_none_out() -> None:
    """Elasticsearch sorts and filters by the time it indexed; the answer's assets show the
    database's. Ticket 100 was updated a moment ago and sits where its old time puts it, with
    a time two days later. Moving on to a page's newest time jumped past tickets 201-400,
    which had not changed, so no sweep listed them again."""
    base = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    indexed = {i: base + dt.timedelta(seconds=i) for i in range(1, 401)}
    stored = {**indexed, 100: base + dt.timedelta(days=2)}

    def search(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        query = parse_qs(urlsplit(str(request.url)).query)["query"][0]
        ids = sorted(indexed, key=lambda i: (indexed[i], i))
        if ">=" in query:
            text = query.split("updated_at:>=")[1].replace("\\", "")
            lower = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
            ids = [i for i in ids if indexed[i] >= lower]
        ids = ids[:200]
        assets = {
            str(i): {"id": i, "updated_at": stored[i].isoformat(timespec="milliseconds")}
            for i in ids
        }
        answer = {"tickets": ids, "tickets_count": len(ids), "assets": {"Ticket": assets}}
        return 200, {}, json.dumps(answer)

    responses.add_callback(responses.GET, SEARCH, callback=search)
    listed = [int(ticket_id) for ticket_id in _offline_adapter().changed_since(base)]
    assert sorted(listed) == list(range(1, 401))


def _answer(ids: list[int], updated_at: str | None = "2026-03-02T07:00:00.000Z") -> Any:
    ticket = {} if updated_at is None else {"updated_at": updated_at}
    return {
        "tickets": ids,
        "tickets_count": len(ids),
        "assets": {"Ticket": {str(i): {"id": i, **ticket} for i in ids}},
    }


@responses.activate
def test_a_search_answer_without_updated_at_is_refused() -> None:
    responses.add(responses.GET, SEARCH, json=_answer([7], updated_at=None))
    with pytest.raises(PermanentError, match="no readable updated_at for ticket 7"):
        list(_offline_adapter().changed_since(None))


@responses.activate
def test_the_expanded_search_answer_is_read_too() -> None:
    expanded = [{"id": 7, "updated_at": "2026-03-02T07:00:00.000Z"}, {"id": 8, "updated_at": "x"}]
    responses.add(responses.GET, SEARCH, json=expanded[:1])
    assert list(_offline_adapter().changed_since(None)) == ["7"]
    responses.replace(responses.GET, SEARCH, json=expanded)
    with pytest.raises(PermanentError, match="no readable updated_at for ticket 8 \\(got 'x'\\)"):
        list(_offline_adapter().changed_since(None))


@responses.activate
def test_a_search_that_ignores_its_conditions_ends_in_an_error_not_a_loop() -> None:
    responses.add(responses.GET, SEARCH, json=_answer(list(range(1, 201))))
    with pytest.raises(PermanentError, match="does not honour the id condition"):
        list(_offline_adapter().changed_since(None))
    assert len(responses.calls) == 4  # by time, the same instant again, by id twice


def test_the_search_query_escapes_the_time(adapter: ZammadAdapter) -> None:
    since = dt.datetime(2026, 3, 2, 10, 30, 5, tzinfo=dt.timezone(dt.timedelta(hours=3)))
    assert adapter.search_query(since) == (
        'state.name:("new" OR "open" OR "pending reminder" OR "pending close") '
        "AND updated_at:>=2026-03-02T07\\:30\\:05Z"
    )
    with pytest.raises(ValueError, match="aware"):
        adapter.search_query(dt.datetime(2026, 3, 2))
