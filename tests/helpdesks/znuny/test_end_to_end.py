"""The Znuny adapter end to end: the captured request through the real edge, then full loops.

The first tests need no Znuny: the captured real invoker request goes, unchanged, through the
real Flask app onto a real SQLite file. The scenarios after them run through real sockets:
sandbox ticket change → invoker request → Flask edge → store → worker → REST → sandbox.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import shutil
import threading
import zoneinfo
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
import requests
import yaml
from flask import Flask
from pydantic import SecretStr
from werkzeug.serving import make_server

from connector.helpdesks.znuny import load_options
from connector.helpdesks.znuny.setup import render_webservice
from connector.pipeline.periodic import reconciliation
from connector.pipeline.store import EPOCH, Job
from connector.pipeline.worker import Worker
from connector.sandbox.fake_helpdesk import wait_until
from connector.sandbox.znuny import ZnunySandbox
from connector.service import Service
from connector.settings import InstanceSettings, Settings
from tests.clock import Clock
from tests.webhooks.conftest import close_app, row_counts
from webhooks.app import create_app
from webhooks.responses import current_service

from . import (
    AGENT,
    AGENT_PASSWORD,
    MAPPINGS,
    basic,
    captured,
    fixture,
    shipped_fields,
    start_sandbox,
    znuny_instance,
)

URL = "/webhooks/znuny/main"


def edge_settings(directory: Path, **options: Any) -> Settings:
    return Settings(
        database_url=SecretStr(f"sqlite:///{directory / 'db.sqlite'}"),
        mappings_dir=MAPPINGS,
        settle_seconds=0.0,
        instances=(znuny_instance(**options),),
    )


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    built = create_app(settings=edge_settings(tmp_path))
    built.testing = True
    yield built
    close_app(built)


def post(app: Flask, body: bytes, headers: dict[str, str]) -> tuple[int, object]:
    response = app.test_client().post(URL, data=body, headers=headers)
    return response.status_code, response.get_json()


# --- the captured request, unchanged -----------------------------------------------------------


def test_captured_request_is_stored_once_and_answered_200_with_an_object(app: Flask) -> None:
    request = captured()
    body = json.dumps(request["body"], ensure_ascii=False).encode()
    headers = {k: v for k, v in request["headers"].items() if k not in ("Content-Length", "Host")}
    assert post(app, body, headers) == (200, {})
    assert row_counts(current_service(app)) == {"events": 1, "jobs": 1}
    assert post(app, body, headers) == (200, {})  # Znuny's retry of the same state
    assert row_counts(current_service(app)) == {"events": 1, "jobs": 1}


def test_wrong_basic_password_stores_nothing(app: Flask) -> None:
    status, answer = post(app, json.dumps(fixture("TicketCreate")).encode(), basic(password="x"))
    assert status == 401
    assert isinstance(answer, dict)
    assert answer["error"] == "unauthenticated"
    assert row_counts(current_service(app)) == {"events": 0, "jobs": 0}


def test_unsupported_event_is_422_and_stores_nothing(app: Flask) -> None:
    status, answer = post(app, json.dumps(fixture("unknown_event")).encode(), basic())
    assert status == 422
    assert isinstance(answer, dict)
    assert "TicketLockUpdate" in str(answer["detail"])
    assert row_counts(current_service(app)) == {"events": 0, "jobs": 0}


def test_events_of_one_ticket_coalesce_into_one_job(app: Flask) -> None:
    names = ["TicketCreate", "ArticleCreate", "TicketPriorityUpdate"]
    for name in names:
        assert post(app, json.dumps(fixture(name)).encode(), basic()) == (200, {})
    assert row_counts(current_service(app)) == {"events": 3, "jobs": 1}


# --- the whole loop through real sockets -------------------------------------------------------

MOSCOW = zoneinfo.ZoneInfo("Europe/Moscow")
EMERGENCY = ("Сайт не открывается", "Публичная часть сайта полностью не работает, ошибка 500.")
STANDARD = ("Вопрос по API D7", "Как получить элементы инфоблока через ORM?")
#: tiers.yaml rules an admin adds for Znuny: CustomerIDs are the organization ids
ZNUNY_TIER_RULES = """
  - {name: znuny-studio, tier: partner, organization_id: ["studio"]}
  - {name: znuny-shop, tier: commercial, organization_id: ["shop"]}
"""
OWN_FIELDS = ("BitrixSLADueAt", "BitrixSLATier", "BitrixSLALevel", "BitrixSLATags")


@dataclass
class Stack:
    """Sandbox → edge (real socket) → SQLite store → worker threads → sandbox REST."""

    sandbox: ZnunySandbox
    service: Service
    worker: Worker
    edge_url: str
    instance: InstanceSettings

    def settle(self, timeout: float = 20.0, *, daemon: bool = True) -> None:
        """Wait until Znuny has nothing left to send (skipped with ``daemon=False``: the
        daemon is paused) and the store has nothing left to run."""

        def quiet() -> bool:
            counts = self.service.store.counts()
            sent = not daemon or self.sandbox.webhooks_pending == 0
            return sent and counts["queued"] == 0 and counts["running"] == 0

        wait_until(quiet, timeout)

    def fields(self, ticket: int) -> dict[str, object]:
        data = self.sandbox.ticket(ticket)
        return {name: data[f"DynamicField_{name}"] for name in OWN_FIELDS}

    def decision(self, ticket: int) -> dict[str, Any]:
        runs = self.service.store.ticket_runs("znuny", "main", str(ticket))
        applied = [run for run in runs if run["outcome"] == "applied"]
        assert applied, runs
        decision: dict[str, Any] = applied[-1]["decision"]
        return decision

    def jobs(self, ticket: int) -> list[Job]:
        return [job for job in self.service.store.list_jobs() if job.ticket_id == str(ticket)]

    def configure(self, secret: str | None = None, **changes: Any) -> dict[str, Any]:
        """Load the rendered web service into the sandbox; ``changes`` edit its invoker.

        Args:
            secret: the BasicAuth password (or header token) Znuny sends; by default the
                instance's webhook secret.
        """
        options = {**self.instance.options, "webhook_base_url": self.edge_url}
        instance = self.instance.model_copy(update={"options": options})
        if secret is None:
            assert instance.webhook_secret is not None
            secret = instance.webhook_secret.get_secret_value()
        text = render_webservice(instance, load_options(instance), secret=secret)
        document: dict[str, Any] = yaml.safe_load(text)
        document["Requester"]["Invoker"]["BitrixSLAWebhook"].update(changes)
        self.sandbox.configure_webservice(document)
        return document


@pytest.fixture
def make_stack(tmp_path: Path) -> Iterator[Callable[..., Stack]]:
    """``make_stack(fields=None, password=AGENT_PASSWORD, **options)``: a running stack.

    Args:
        fields: the DF import file the sandbox gets (default: the shipped one).
        password: the agent password the connector is configured with.
        agent_password: the agent's password in Znuny (default: ``password``'s default).
        clock: the sandbox's clock (default: the real one).
        max_body_bytes: the edge's body limit (default: the settings' default).
        options: more instance options (e.g. ``webhook_auth="header"``, ``webhook_secret``).
    """
    teardown: list[Callable[[], None]] = []

    def build_stack(
        fields: str | None = None,
        password: str = AGENT_PASSWORD,
        *,
        agent_password: str = AGENT_PASSWORD,
        clock: Callable[[], dt.datetime] | None = None,
        max_body_bytes: int | None = None,
        **options: Any,
    ) -> Stack:
        mappings = tmp_path / "mappings"
        shutil.copytree(MAPPINGS, mappings)
        tiers = mappings / "tiers.yaml"
        rules = tiers.read_text("utf-8").replace("rules:\n", "rules:" + ZNUNY_TIER_RULES, 1)
        tiers.write_text(rules, "utf-8")
        sandbox = start_sandbox(
            fields,
            otrs_time_zone="Europe/Moscow",
            agents={"root@localhost": "root", AGENT: agent_password},
            clock=clock,
        )
        teardown.append(sandbox.stop)
        sandbox.add_dynamic_field(
            "BitrixLicenseType", "Dropdown", config={"PossibleValues": {"partner": "Partner"}}
        )
        instance = znuny_instance(
            url=sandbox.base_url,
            otrs_time_zone="Europe/Moscow",
            company_fields={"bitrix_license_type": "BitrixLicenseType"},
            password=password,
            **options,
        )
        limits = {} if max_body_bytes is None else {"max_body_bytes": max_body_bytes}
        settings = Settings(
            database_url=SecretStr(f"sqlite:///{tmp_path / 'db.sqlite'}"),
            mappings_dir=mappings,
            settle_seconds=0.0,
            backoff_base_seconds=0.1,
            backoff_cap_seconds=0.3,
            lease_seconds=5,
            instances=(instance,),
            **limits,
        )
        service = Service.from_settings(settings)
        worker = service.worker(concurrency=3, periodic=False)
        worker.poll_seconds = 0.05
        app = create_app(service, worker=worker)
        teardown.append(lambda: close_app(app))
        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
        thread.start()
        teardown.extend([thread.join, server.shutdown])
        edge_url = f"http://127.0.0.1:{server.server_port}"
        built = Stack(sandbox, service, worker, edge_url, instance)
        built.configure()
        worker.start()
        teardown.append(lambda: worker.stop(grace_seconds=5))
        return built

    yield build_stack
    for step in reversed(teardown):
        step()


@pytest.fixture
def stack(make_stack: Callable[..., Stack]) -> Stack:
    return make_stack()


def create(stack: Stack, customer: str, text: tuple[str, str], **kwargs: Any) -> int:
    return stack.sandbox.create_ticket(
        title=text[0], body=text[1], customer_user=customer, **kwargs
    )


def moscow(iso: str) -> str:
    moment = dt.datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return moment.astimezone(MOSCOW).strftime("%Y-%m-%d %H:%M:%S")


def test_every_tier_and_level_is_written_back(stack: Stack) -> None:
    cases = {
        create(stack, "ivan", EMERGENCY): ("partner", "partner-operational"),
        create(stack, "ivan", STANDARD): ("partner", "partner-standard"),
        create(stack, "olga", EMERGENCY): ("commercial", "commercial-operational"),
        create(stack, "olga", STANDARD): ("commercial", "commercial-standard"),
        create(stack, "petr", EMERGENCY, queue="VIP"): ("enterprise", "vip"),
        create(stack, "petr", STANDARD, queue="VIP"): ("enterprise", "vip"),
        create(stack, "petr", EMERGENCY): ("noncommercial", "noncommercial"),
        create(stack, "petr", STANDARD): ("noncommercial", "noncommercial"),
        create(stack, "petr", STANDARD, dynamic_fields={"BitrixLicenseType": "partner"}): (
            "partner",
            "partner-standard",
        ),
        create(stack, "olga", STANDARD, dynamic_fields={"SLAOverride": "consulting"}): (
            "commercial",
            "consulting",
        ),
    }
    stack.settle()
    for ticket, (tier, level) in cases.items():
        written = stack.fields(ticket)
        decision = stack.decision(ticket)
        assert (written["BitrixSLATier"], written["BitrixSLALevel"]) == (tier, level), ticket
        assert written["BitrixSLADueAt"] == moscow(decision["due_at"])  # OTRSTimeZone
        assert written["BitrixSLATags"] == sorted(decision["tags"])
        assert f"sla:level:{level}" in decision["tags"]
        assert len(stack.sandbox.writes(ticket)) == 1, ticket
    assert stack.service.store.counts()["dead"] == 0


def test_agent_overrides_by_dynamic_field(stack: Stack) -> None:
    ticket = create(stack, "ivan", STANDARD)
    stack.settle()
    assert stack.fields(ticket)["BitrixSLALevel"] == "partner-standard"
    stack.sandbox.update_ticket(ticket, dynamic_fields={"SLAOverride": "emergency"})
    stack.settle()
    written = stack.fields(ticket)
    assert written["BitrixSLALevel"] == "partner-operational"
    tags = written["BitrixSLATags"]
    assert isinstance(tags, list)
    assert "sla:urgency:emergency" in tags
    assert "sla:urgency:standard" not in tags
    stack.sandbox.update_ticket(ticket, dynamic_fields={"SLATopic": "installation"})
    stack.settle()
    assert "sla:topic:installation" in cast(list[str], stack.fields(ticket)["BitrixSLATags"])
    assert len(stack.sandbox.writes(ticket)) == 3


def test_customer_change_reclassifies_the_ticket(stack: Stack) -> None:
    ticket = create(stack, "petr", STANDARD)
    stack.settle()
    assert stack.fields(ticket)["BitrixSLATier"] == "noncommercial"
    stack.sandbox.update_ticket(ticket, customer_user="ivan")
    stack.settle()
    assert stack.fields(ticket)["BitrixSLATier"] == "partner"
    assert stack.fields(ticket)["BitrixSLALevel"] == "partner-standard"


def test_own_writes_fire_nothing_and_a_rerun_writes_nothing(stack: Stack) -> None:
    events = stack.configure()["Requester"]["Invoker"]["BitrixSLAWebhook"]["Events"]
    own = {**copy.deepcopy(events[0]), "Event": "TicketDynamicFieldUpdate_BitrixSLALevel"}
    stack.configure(Events=[*events, own])  # even subscribed, the Condition keeps it silent
    ticket = create(stack, "olga", EMERGENCY)
    stack.settle()
    assert stack.sandbox.ticket(ticket)["ChangeBy"] == stack.sandbox.agent_id(AGENT)
    delivered = [d.event for d in stack.sandbox.deliveries()]
    assert sorted(delivered) == ["ArticleCreate", "TicketCreate", "TicketCustomerUpdate"]
    assert len(stack.sandbox.writes(ticket)) == 1
    stack.service.store.enqueue("znuny", "main", str(ticket), "sweep")  # one more round
    stack.settle()
    runs = stack.service.store.ticket_runs("znuny", "main", str(ticket))
    assert runs[-1]["outcome"] == "unchanged"
    assert len(stack.sandbox.writes(ticket)) == 1
    assert len(stack.sandbox.deliveries()) == 3


def test_without_the_condition_own_field_events_stop_at_the_edge(stack: Stack) -> None:
    events = [
        {"Event": name, "Asynchronous": "1"}
        for name in ("TicketCreate", "TicketDynamicFieldUpdate_BitrixSLALevel")
    ]
    stack.configure(Events=events)  # an admin dropped the Condition and subscribed our field
    ticket = create(stack, "ivan", EMERGENCY)
    stack.settle()
    refused = [d for d in stack.sandbox.deliveries() if d.event.endswith("BitrixSLALevel")]
    assert refused
    assert {d.status for d in refused} == {422}
    assert len(stack.sandbox.writes(ticket)) == 1
    assert row_counts(stack.service)["events"] == 1  # TicketCreate only


def test_out_of_order_and_redelivered_events_converge_with_one_write(stack: Stack) -> None:
    stack.sandbox.pause_daemon()
    ticket = create(stack, "petr", STANDARD)
    stack.sandbox.update_ticket(ticket, priority="5 very high")
    stack.sandbox.update_ticket(ticket, customer_user="olga")
    stack.sandbox.update_ticket(ticket, dynamic_fields={"SLAOverride": "emergency"})
    stack.sandbox.resume_daemon()  # five workers, random order, payloads built now
    stack.settle()
    assert stack.fields(ticket)["BitrixSLALevel"] == "commercial-operational"
    assert len(stack.sandbox.writes(ticket)) == 1
    stored = row_counts(stack.service)
    for delivery in stack.sandbox.deliveries():  # Znuny sends every one of them again
        body = json.dumps(delivery.payload).encode()
        answer = requests.post(f"{stack.edge_url}{URL}", data=body, headers=basic(), timeout=5)
        assert (answer.status_code, answer.json()) == (200, {})
    assert row_counts(stack.service) == stored
    stack.settle()
    assert len(stack.sandbox.writes(ticket)) == 1


def test_a_late_event_after_a_newer_change_is_not_dropped(stack: Stack) -> None:
    ticket = create(stack, "petr", STANDARD)
    stack.settle()
    first = next(d for d in stack.sandbox.deliveries() if d.event == "TicketCustomerUpdate")
    stack.sandbox.pause_daemon()
    stack.sandbox.update_ticket(ticket, customer_user="ivan")
    late = copy.deepcopy(first.payload)  # the same event, rebuilt after the change
    late["Ticket"] = stack.sandbox.deep_ticket(ticket)
    answer = requests.post(
        f"{stack.edge_url}{URL}", data=json.dumps(late).encode(), headers=basic(), timeout=5
    )
    assert answer.status_code == 200
    stack.settle(daemon=False)
    assert stack.fields(ticket)["BitrixSLATier"] == "partner"  # before the daemon sent anything
    stack.sandbox.resume_daemon()
    stack.settle()


def test_api_outage_converges(stack: Stack) -> None:
    stack.sandbox.pause()  # the REST side is down; the daemon still delivers
    ticket = create(stack, "olga", STANDARD)
    wait_until(lambda: any(job.last_error for job in stack.jobs(ticket)), timeout=10)
    job = stack.jobs(ticket)[0]
    assert job.status == "queued"
    assert "connection failed" in (job.last_error or "")
    stack.sandbox.resume()
    stack.sandbox.faults.fail_next(2, status=503)
    stack.settle()
    assert stack.fields(ticket)["BitrixSLALevel"] == "commercial-standard"
    assert {job.status for job in stack.jobs(ticket)} == {"done"}


def test_lost_webhooks_are_caught_up_by_the_sweep(stack: Stack) -> None:
    stack.sandbox.pause_daemon()  # the daemon is down: Znuny sends nothing
    ticket = create(stack, "ivan", STANDARD)
    sweep = reconciliation(stack.service.store, stack.service.adapters, 300)
    assert sweep.run(EPOCH, threading.Event()) == 1
    stack.settle(daemon=False)
    assert stack.fields(ticket)["BitrixSLALevel"] == "partner-standard"
    stack.sandbox.resume_daemon()
    stack.settle()


def test_bad_webhook_credentials_store_nothing(stack: Stack) -> None:
    stack.configure(secret="not-the-secret")
    ticket = create(stack, "ivan", STANDARD)
    wait_until(lambda: stack.sandbox.webhooks_abandoned >= 3, timeout=10)
    stack.settle()
    assert {d.status for d in stack.sandbox.deliveries()} == {401}
    assert row_counts(stack.service) == {"events": 0, "jobs": 0}
    assert stack.sandbox.writes(ticket) == []


def test_refused_agent_login_goes_dead_with_the_reason(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(password="wrong-password")
    ticket = create(stack, "ivan", STANDARD)
    stack.settle()
    for job in stack.jobs(ticket):  # one per event that arrived after the previous one died
        assert job.status == "dead"
        assert "TicketGet.AuthFail" in (job.last_error or "")
        assert "wrong-password" not in (job.last_error or "")


def old_fields() -> str:
    """An older DF import in Znuny: its level Dropdown lacks ``partner-standard``."""
    fields = yaml.safe_load(shipped_fields())["DynamicFields"]
    level = fields["BitrixSLALevel"]
    del level["Config"]["PossibleValues"]["partner-standard"]
    return shipped_fields(BitrixSLALevel=level)


def test_invalid_parameter_goes_dead_with_a_readable_reason(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack(fields=old_fields())
    ticket = create(stack, "ivan", STANDARD)  # Znuny's level field lacks partner-standard
    stack.settle()
    for job in stack.jobs(ticket):
        assert job.status == "dead"
        assert job.attempts == 1  # permanent: not retried
        assert "200 TicketUpdate.InvalidParameter: TicketUpdate:" in (job.last_error or "")
    assert stack.jobs(ticket)
    assert stack.sandbox.writes(ticket) == []


def test_header_token_authentication_end_to_end(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(webhook_auth="header", webhook_header="X-Bitrix-SLA-Token")
    ticket = create(stack, "olga", EMERGENCY)
    stack.settle()
    assert stack.fields(ticket)["BitrixSLALevel"] == "commercial-operational"
    assert {d.status for d in stack.sandbox.deliveries()} == {200}
    stack.configure(secret="wrong-token")
    stack.sandbox.update_ticket(ticket, priority="1 very low")
    stack.settle()
    assert 401 in {d.status for d in stack.sandbox.deliveries()}


# --- what real Znuny does that the first version of the adapter got wrong -----------------------


def test_a_long_webhook_secret_is_accepted_as_znuny_wraps_it(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack(webhook_secret="0123456789abcdef" * 4)  # `openssl rand -hex 32`
    ticket = create(stack, "olga", EMERGENCY)
    stack.settle()
    assert {d.status for d in stack.sandbox.deliveries()} == {200}
    assert stack.fields(ticket)["BitrixSLALevel"] == "commercial-operational"


def test_a_cyrillic_agent_password_works_end_to_end(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(password="пароль-агента", agent_password="пароль-агента")
    ticket = create(stack, "ivan", STANDARD)
    stack.settle()
    assert stack.fields(ticket)["BitrixSLALevel"] == "partner-standard"
    assert {job.status for job in stack.jobs(ticket)} == {"done"}


class Collected:
    """The job store as the sweep sees it, except that it keeps the ticket ids instead of
    queueing them."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.ids: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def enqueue(self, kind: str, instance: str, ticket_id: str, reason: str) -> None:
        self.ids.append(ticket_id)


def test_the_sweep_pages_past_the_search_limit(make_stack: Callable[..., Stack]) -> None:
    clock = Clock(dt.datetime.now(dt.UTC))
    stack = make_stack(search_limit=3, clock=clock)
    stack.sandbox.pause_daemon()  # Znuny sends nothing: only the sweep can find them
    tickets = []
    for customer in ("ivan", "olga", "petr", "ivan", "olga", "petr", "ivan"):
        tickets.append(create(stack, customer, STANDARD))
        clock.advance(seconds=1)  # Znuny's clock runs ahead of the connector's: fine too
    found = Collected(stack.service.store)  # queued after the sweep: the frozen clock would
    sweep = reconciliation(cast(Any, found), stack.service.adapters, 300)  # all in one second
    assert sweep.run(EPOCH, threading.Event()) == 7  # not just the first page of 3
    assert sorted(found.ids) == sorted(str(ticket) for ticket in tickets)
    for ticket_id in found.ids:
        stack.service.store.enqueue("znuny", "main", ticket_id, "sweep")
    stack.settle(daemon=False)
    for ticket in tickets:
        assert stack.fields(ticket)["BitrixSLATier"] is not None, ticket
    stack.sandbox.resume_daemon()
    stack.settle()


def test_reopened_and_retitled_tickets_reach_the_connector(stack: Stack) -> None:
    ticket = create(stack, "petr", STANDARD)
    stack.settle()
    stack.sandbox.update_ticket(ticket, state="closed successful")
    stack.sandbox.update_ticket(ticket, state="open")
    stack.sandbox.update_ticket(ticket, title=EMERGENCY[0])
    stack.settle()
    delivered = [(d.event, d.status) for d in stack.sandbox.deliveries()]
    assert delivered.count(("TicketStateUpdate", 200)) == 2
    assert ("TicketTitleUpdate", 200) in delivered
    assert stack.fields(ticket)["BitrixSLALevel"] == "noncommercial"


def test_a_customer_follow_up_after_the_connectors_write_is_delivered(stack: Stack) -> None:
    ticket = create(stack, "ivan", STANDARD)
    stack.settle()
    assert stack.sandbox.ticket(ticket)["ChangeBy"] == stack.sandbox.agent_id(AGENT)
    stack.sandbox.add_article(ticket, body="Any news?", sender_type="customer", user_id=1)
    stack.settle()
    assert stack.sandbox.ticket(ticket)["ChangeBy"] == stack.sandbox.agent_id(AGENT)  # as Znuny
    follow_ups = [d for d in stack.sandbox.deliveries() if d.event == "ArticleCreate"]
    assert [d.status for d in follow_ups] == [200, 200]  # the first article, the follow-up


def test_long_tickets_fit_the_edge_once_articles_are_omitted(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack(max_body_bytes=64 * 1024)
    ticket = create(stack, "olga", STANDARD)
    stack.settle()
    for _ in range(4):  # a long thread: every event now carries all of it
        stack.sandbox.add_article(ticket, body="quoted reply " * 3000, sender_type="customer")
    wait_until(lambda: stack.sandbox.webhooks_abandoned >= 4, timeout=10)
    stack.settle()
    refused = [d for d in stack.sandbox.deliveries() if d.event == "ArticleCreate"][1:]
    assert refused and not any(d.ok for d in refused)  # every try of every one of them
    # 413, or the connection closed by the edge while Znuny was still sending the body
    assert {d.status for d in refused} <= {413, None}
    stack.sandbox.set_omitted_fields("BitrixSLAWebhook", "Articles;Article")  # README step 4
    stack.sandbox.update_ticket(ticket, dynamic_fields={"SLAOverride": "emergency"})
    stack.settle()
    last = stack.sandbox.deliveries()[-1]
    assert (last.event, last.status) == ("TicketDynamicFieldUpdate_SLAOverride", 200)
    assert "Articles" not in last.payload["Ticket"]
    assert stack.fields(ticket)["BitrixSLALevel"] == "commercial-operational"
