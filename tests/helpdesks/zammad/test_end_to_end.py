"""End to end over real sockets: Zammad sandbox → signed webhook → edge → store → worker → REST.

The sandbox is configured by ``bitrix-sla setup zammad`` itself (attributes, webhook, triggers);
the edge is the real Flask app on a werkzeug server thread, the store a SQLite file, the worker
the real one with its threads. Expected due times come from the shipped policy applied to what
the adapter reads, so these tests check the wiring, not the SLA arithmetic (tests/policy does).
"""

from __future__ import annotations

import datetime as dt
import io
import os
import signal
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests
import yaml
from pydantic import SecretStr
from sqlalchemy import func, select
from werkzeug.serving import BaseWSGIServer, make_server

from connector.helpdesks.zammad import ZammadAdapter
from connector.helpdesks.zammad.setup import run_setup
from connector.pipeline.db import decisions, events
from connector.pipeline.plan import format_due
from connector.pipeline.worker import Worker
from connector.policy.decision import decide
from connector.sandbox.fake_helpdesk import wait_until
from connector.sandbox.zammad import ADMIN_TOKEN, ZammadSandbox
from connector.service import Service
from connector.settings import Settings
from tests.processes import bitrix_sla
from webhooks.app import create_app

from .conftest import (
    API_TOKEN,
    MAPPINGS,
    SECRET,
    customer_attributes,
    override_attribute,
    zammad_instance,
)

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

EMERGENCY = "Публичная часть сайта полностью не работает, ошибка 500 на всех страницах."
QUESTION = "Как получить элементы инфоблока через ORM D7? Подскажите, пожалуйста, пример."
WAIT = 20.0


class SlowFirstAnswers:
    """WSGI wrapper: the first ``n`` webhook answers are held back after the app ran.

    The event is already stored when the delay starts, so Zammad's read timeout turns a
    successful ingest into a failed delivery that Zammad retries with the same delivery id.
    """

    def __init__(self, app: WSGIApplication) -> None:
        self.app = app
        self.remaining = 0
        self.delay = 0.0
        self._lock = threading.Lock()

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        result = list(self.app(environ, start_response))
        with self._lock:
            hold = self.remaining > 0 and environ["PATH_INFO"].startswith("/webhooks/")
            self.remaining -= 1 if hold else 0
        if hold:
            time.sleep(self.delay)
        return result


class SandboxClock:
    """The sandbox's clock: real time, unless a test pins it (e.g. to create a ticket then)."""

    def __init__(self) -> None:
        self.pinned: dt.datetime | None = None

    def __call__(self) -> dt.datetime:
        return self.pinned or dt.datetime.now(dt.UTC)


@dataclass
class Stack:
    zammad: ZammadSandbox
    clock: SandboxClock
    service: Service
    worker: Worker
    edge: SlowFirstAnswers
    edge_url: str

    @property
    def adapter(self) -> ZammadAdapter:
        adapter = self.service.adapters[("zammad", "main")]
        assert isinstance(adapter, ZammadAdapter)
        return adapter

    def runs(self, ticket_id: int) -> list[dict[str, Any]]:
        return self.service.store.ticket_runs("zammad", "main", str(ticket_id))

    def outcomes(self, ticket_id: int) -> list[str]:
        return [str(run["outcome"]) for run in self.runs(ticket_id)]

    def count(self, table: Any) -> int:
        with self.service.store.engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(table)).scalar_one())

    def idle(self) -> bool:
        counts = self.service.store.counts()
        return self.zammad.webhooks_pending == 0 and counts["queued"] + counts["running"] == 0

    def settle(self) -> None:
        """Wait until Zammad has nothing to deliver and the store nothing to run, twice."""
        wait_until(self.idle, timeout=WAIT)
        time.sleep(0.05)  # a write may have just fired a trigger whose webhook is not queued yet
        wait_until(self.idle, timeout=WAIT)

    def converged(self, ticket_id: int, level: str) -> dict[str, Any]:
        wait_until(lambda: self.zammad.ticket(ticket_id).get("bitrix_sla_level") == level, WAIT)
        self.settle()
        return self.zammad.ticket(ticket_id)

    def expected_due(self, ticket_id: int) -> str:
        snapshot = self.adapter.read(str(ticket_id))
        decision = decide(snapshot, self.service.mappings.policy, dt.datetime.now(dt.UTC))
        return format_due(decision.due_at)

    def writes(self) -> list[tuple[str, str]]:
        return [(c.method, c.path) for c in self.zammad.writes()]


def serve(app: WSGIApplication) -> tuple[BaseWSGIServer, threading.Thread]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    return server, thread


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    clock = SandboxClock()
    with ZammadSandbox(retry_schedule=(0.1, 0.2, 0.3, 0.4), clock=clock) as zammad:
        customer_attributes(zammad)
        override_attribute(zammad)
        instance = zammad_instance(zammad.base_url)
        settings = Settings(
            database_url=SecretStr(f"sqlite:///{tmp_path / 'e2e.sqlite'}"),
            mappings_dir=MAPPINGS,
            settle_seconds=0.0,
            backoff_base_seconds=0.2,
            backoff_cap_seconds=1.0,
            instances=(instance,),
        )
        service = Service.from_settings(settings)
        worker = service.worker(concurrency=2, periodic=False)
        edge = SlowFirstAnswers(create_app(service, worker=worker))
        server, thread = serve(edge)
        edge_url = f"http://127.0.0.1:{server.server_port}"
        admin = instance.model_copy(
            update={
                "token": SecretStr(ADMIN_TOKEN),
                "options": {
                    "webhook_base_url": edge_url,
                    "integration_user_id": zammad.integration_user_id,
                },
            }
        )
        out = io.StringIO()
        assert run_setup(admin, settings, apply=True, out=out) == 0, out.getvalue()
        worker.start()
        try:
            yield Stack(zammad, clock, service, worker, edge, edge_url)
        finally:
            worker.stop(grace_seconds=5)
            server.shutdown()
            server.server_close()
            thread.join()
            for adapter in service.adapters.values():
                getattr(adapter, "close", lambda: None)()
            service.store.close()


def customer(zammad: ZammadSandbox, email: str, license_type: str | None) -> int:
    org = None
    if license_type is not None:
        org = zammad.add_organization(
            f"{license_type} org {email}", bitrix_license_type=license_type
        )
    person = zammad.add_customer(email, organization=None if org is None else org["id"])
    return int(person["id"])


def tags_of(zammad: ZammadSandbox, ticket_id: int, part: str) -> list[str]:
    return [tag for tag in zammad.tags(ticket_id) if tag.startswith(f"sla:{part}:")]


# --- every tier and level -------------------------------------------------------------------

CASES = [
    ("partner", QUESTION, {}, "partner", "partner-standard"),
    ("partner", EMERGENCY, {}, "partner", "partner-operational"),
    ("commercial", QUESTION, {}, "commercial", "commercial-standard"),
    ("commercial", EMERGENCY, {}, "commercial", "commercial-operational"),
    ("enterprise", EMERGENCY, {}, "enterprise", "vip"),
    ("noncommercial", QUESTION, {}, "noncommercial", "noncommercial"),
    (None, QUESTION, {}, "noncommercial", "noncommercial"),
    ("partner", QUESTION, {"sla_override": "consulting"}, "partner", "consulting"),
]


@pytest.mark.parametrize(("license_type", "body", "attributes", "tier", "level"), CASES)
def test_a_new_ticket_gets_its_tier_level_due_time_and_tags(
    stack: Stack,
    license_type: str | None,
    body: str,
    attributes: dict[str, str],
    tier: str,
    level: str,
) -> None:
    zammad = stack.zammad
    who = customer(zammad, "ana@client.example", license_type)
    ticket_id = int(zammad.create_ticket("Проблема", customer=who, body=body, **attributes)["id"])
    ticket = stack.converged(ticket_id, level)
    assert ticket["bitrix_sla_tier"] == tier
    assert ticket["bitrix_sla_due_at"] == stack.expected_due(ticket_id).replace("Z", ".000Z")
    assert tags_of(zammad, ticket_id, "tier") == [f"sla:tier:{tier}"]
    assert tags_of(zammad, ticket_id, "level") == [f"sla:level:{level}"]
    assert ticket["updated_by_id"] == zammad.integration_user_id
    assert stack.outcomes(ticket_id) == ["applied"]  # our own write fired nothing


def test_the_noncommercial_cap_comes_first(stack: Stack) -> None:
    """§ 5.7: 24 working hours, but at most 3 calendar days not counting weekends."""
    who = customer(stack.zammad, "dev@demo.example", "noncommercial")
    stack.clock.pinned = dt.datetime(2026, 3, 4, 9, 0, tzinfo=dt.UTC)  # Wed, 12:00 in Moscow
    ticket_id = int(stack.zammad.create_ticket("Вопрос", customer=who, body=QUESTION)["id"])
    stack.clock.pinned = None
    ticket = stack.converged(ticket_id, "noncommercial")
    assert ticket["bitrix_sla_due_at"] == "2026-03-09T09:00:00.000Z"  # Thu, Fri, weekend, Mon
    (run,) = stack.runs(ticket_id)
    assert (run["decision"]["due_by"], run["decision"]["cap_days"]) == ("cap", 3)


# --- agents and re-classification -----------------------------------------------------------


def test_an_agent_override_wins_and_is_never_overwritten(stack: Stack) -> None:
    zammad = stack.zammad
    who = customer(zammad, "ana@studio.example", "partner")
    ticket_id = int(zammad.create_ticket("Вопрос", customer=who, body=QUESTION)["id"])
    stack.converged(ticket_id, "partner-standard")
    zammad.update_ticket(ticket_id, sla_override="emergency")  # by the admin, an agent
    ticket = stack.converged(ticket_id, "partner-operational")
    assert ticket["sla_override"] == "emergency"
    assert tags_of(zammad, ticket_id, "urgency") == ["sla:urgency:emergency"]
    assert stack.outcomes(ticket_id) == ["applied", "applied"]


def test_changing_the_organization_reclassifies(stack: Stack) -> None:
    zammad = stack.zammad
    who = customer(zammad, "ana@shop.example", "partner")
    ticket_id = int(zammad.create_ticket("Вопрос", customer=who, body=QUESTION)["id"])
    stack.converged(ticket_id, "partner-standard")
    bigger = zammad.add_organization("Холдинг", bitrix_license_type="enterprise")
    zammad.update_ticket(ticket_id, organization_id=bigger["id"])
    ticket = stack.converged(ticket_id, "vip")
    assert ticket["bitrix_sla_tier"] == "enterprise"
    assert tags_of(zammad, ticket_id, "tier") == ["sla:tier:enterprise"]  # old tag removed
    assert any("organization changed" in f.trigger for f in zammad.fired())


def test_changing_the_customer_reclassifies(stack: Stack) -> None:
    zammad = stack.zammad
    first = customer(zammad, "ana@shop.example", "partner")
    ticket_id = int(zammad.create_ticket("Вопрос", customer=first, body=QUESTION)["id"])
    stack.converged(ticket_id, "partner-standard")
    other = customer(zammad, "cto@retail.example", "commercial")
    zammad.update_ticket(ticket_id, customer_id=other)
    ticket = stack.converged(ticket_id, "commercial-standard")
    assert ticket["bitrix_sla_tier"] == "commercial"
    fired = {f.trigger for f in zammad.fired() if f.ticket_id == ticket_id}
    assert "Bitrix SLA (main) 020 customer changed" in fired


# --- loop safety ----------------------------------------------------------------------------


def test_after_convergence_nothing_more_is_written(stack: Stack) -> None:
    zammad = stack.zammad
    who = customer(zammad, "ana@studio.example", "partner")
    ticket_id = int(zammad.create_ticket("Вопрос", customer=who, body=QUESTION)["id"])
    stack.converged(ticket_id, "partner-standard")
    writes = stack.writes()
    assert writes.count(("PUT", f"/api/v1/tickets/{ticket_id}")) == 1
    fired = [f.trigger for f in zammad.fired() if f.ticket_id == ticket_id]
    assert fired == ["Bitrix SLA (main) 010 ticket created"]  # our PUT fired no trigger
    # an agent change that does not change the decision: one no-op round, no write
    zammad.update_ticket(ticket_id, priority="3 high")
    wait_until(lambda: len(stack.runs(ticket_id)) == 2, WAIT)
    stack.settle()
    assert stack.outcomes(ticket_id) == ["applied", "unchanged"]
    assert stack.writes() == writes
    # a customer reply (an update with an article) fires no SLA trigger at all
    zammad.add_article(ticket_id, "Добавила лог")
    stack.settle()
    assert stack.outcomes(ticket_id) == ["applied", "unchanged"]
    assert stack.count(decisions) == 2


def test_zammads_second_update_after_create_does_not_loop(stack: Stack) -> None:
    stack.zammad.double_fire_on_create = True  # zammad/zammad#5841: the escalation re-save
    who = customer(stack.zammad, "ana@studio.example", "partner")
    ticket_id = int(stack.zammad.create_ticket("Вопрос", customer=who, body=QUESTION)["id"])
    stack.converged(ticket_id, "partner-standard")
    assert stack.outcomes(ticket_id) == ["applied"]
    assert len([f for f in stack.zammad.fired() if f.ticket_id == ticket_id]) == 1


# --- failures -------------------------------------------------------------------------------


def test_a_delivery_retried_after_a_timeout_is_stored_once(stack: Stack) -> None:
    zammad = stack.zammad
    zammad.webhook_timeouts = (2.0, 0.3)
    stack.edge.remaining, stack.edge.delay = 1, 0.8  # stored, then answered too late
    who = customer(zammad, "ana@studio.example", "partner")
    ticket_id = int(zammad.create_ticket("Вопрос", customer=who, body=QUESTION)["id"])
    stack.converged(ticket_id, "partner-standard")
    attempts = [a for a in zammad.deliveries() if a.ticket_id == str(ticket_id)]
    assert [a.ok for a in attempts] == [False, True]
    assert len({a.delivery_id for a in attempts}) == 1  # Zammad's retry: same X-Zammad-Delivery
    assert stack.count(events) == 1
    assert stack.outcomes(ticket_id) == ["applied"]


def test_an_api_outage_converges_after_resume(stack: Stack) -> None:
    zammad = stack.zammad
    who = customer(zammad, "ana@studio.example", "partner")
    zammad.pause()  # the REST API is down; Zammad's own webhook sender keeps working
    try:
        ticket_id = int(zammad.create_ticket("Вопрос", customer=who, body=QUESTION)["id"])

        def failed_once() -> bool:
            jobs = stack.service.store.list_jobs()
            return any(job.last_error and "connection failed" in job.last_error for job in jobs)

        wait_until(failed_once, WAIT)
    finally:
        zammad.resume()
    stack.converged(ticket_id, "partner-standard")
    assert stack.outcomes(ticket_id)[-1] == "applied"
    assert stack.writes().count(("PUT", f"/api/v1/tickets/{ticket_id}")) == 1


def test_lock_conflicts_the_integration_user_sees_only_as_error_ids_converge(
    stack: Stack,
) -> None:
    zammad = stack.zammad
    zammad.lock_conflict_next(2)  # the integration user is no admin: "Error ID …" only
    who = customer(zammad, "ana@studio.example", "partner")
    ticket_id = int(zammad.create_ticket("Вопрос", customer=who, body=QUESTION)["id"])
    stack.converged(ticket_id, "partner-standard")
    puts = [c.status for c in zammad.calls("PUT", ticket_id)]
    assert puts == [422, 422, 200]
    assert stack.outcomes(ticket_id)[-1] == "applied"
    assert stack.service.store.counts()["dead"] == 0


def test_503s_converge(stack: Stack) -> None:
    zammad = stack.zammad
    zammad.faults.fail_for(1.0, status=503)
    who = customer(zammad, "ana@studio.example", "partner")
    ticket_id = int(zammad.create_ticket("Вопрос", customer=who, body=QUESTION)["id"])
    stack.converged(ticket_id, "partner-standard")
    failures = [c for c in zammad.calls() if c.status == 503]
    assert failures, "the fault never hit the adapter"
    assert stack.outcomes(ticket_id)[-1] == "applied"


def test_a_webhook_signed_with_another_token_is_refused_and_nothing_stored(stack: Stack) -> None:
    zammad = stack.zammad
    admin = {"Authorization": f"Token token={ADMIN_TOKEN}"}
    hooks = requests.get(f"{zammad.base_url}/api/v1/webhooks", headers=admin, timeout=5).json()
    (hook,) = hooks
    changed = requests.put(
        f"{zammad.base_url}/api/v1/webhooks/{hook['id']}",
        json={"signature_token": "not-the-configured-secret"},
        headers=admin,
        timeout=5,
    )
    assert changed.status_code == 200
    who = customer(zammad, "ana@studio.example", "partner")
    ticket_id = int(zammad.create_ticket("Вопрос", customer=who, body=QUESTION)["id"])
    wait_until(lambda: zammad.webhooks_abandoned == 1, WAIT)
    assert {a.status for a in zammad.deliveries()} == {401}
    assert len(zammad.deliveries()) == 5  # Zammad's 5 attempts
    assert stack.count(events) == 0
    assert stack.runs(ticket_id) == []
    assert zammad.ticket(ticket_id)["bitrix_sla_level"] is None


# --- the real command ---------------------------------------------------------------------------


def test_bitrix_sla_serve_with_a_zammad_instance(tmp_path: Path) -> None:
    """``bitrix-sla serve`` as a process: settings file, env secrets, SIGTERM."""
    with ZammadSandbox(retry_schedule=(0.1, 0.2, 0.3, 0.4)) as zammad:
        customer_attributes(zammad)
        config = tmp_path / "settings.yaml"
        entry = {
            "name": "main",
            "kind": "zammad",
            "url": zammad.base_url,
            "token_env": "ZAMMAD_TOKEN",
            "webhook_secret_env": "ZAMMAD_HOOK_SECRET",
            "timeout_seconds": 5,
        }
        document = {
            "database_url": f"sqlite:///{tmp_path / 'serve.sqlite'}",
            "mappings_dir": str(MAPPINGS),
            "settle_seconds": 0,
            "instances": [entry],
        }
        config.write_text(yaml.safe_dump(document), encoding="utf-8")
        environ = {**os.environ, "ZAMMAD_TOKEN": API_TOKEN, "ZAMMAD_HOOK_SECRET": SECRET}
        with bitrix_sla("serve", "--config", str(config), "--port", "0", env=environ) as (
            process,
            base,
        ):
            admin = zammad_instance(
                zammad.base_url,
                webhook_base_url=base,
                integration_user_id=zammad.integration_user_id,
            ).model_copy(update={"token": SecretStr(ADMIN_TOKEN)})
            settings = Settings(mappings_dir=MAPPINGS)
            assert run_setup(admin, settings, apply=True, out=io.StringIO()) == 0
            who = customer(zammad, "ana@shop.example", "commercial")
            ticket_id = int(
                zammad.create_ticket("Сайт не открывается", customer=who, body=EMERGENCY)["id"]
            )
            wait_until(
                lambda: (
                    zammad.ticket(ticket_id).get("bitrix_sla_level") == "commercial-operational"
                ),
                WAIT,
            )
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0
