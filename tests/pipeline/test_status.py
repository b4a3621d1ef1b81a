"""The worker's status server: /healthz follows the worker's health, /metrics the store."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families
from werkzeug.test import Client

from connector.helpdesks.fake.adapter import FakeAdapter
from connector.pipeline.status import status_app
from connector.pipeline.store import JobStore
from connector.pipeline.worker import Worker
from connector.policy.decision import Policy
from tests.clock import Clock
from tests.pipeline.conftest import make_worker


@pytest.fixture
def worker(store: JobStore, adapter: FakeAdapter, policy: Policy) -> Iterator[Worker]:
    made = make_worker(store, adapter, policy, lease_seconds=3, poll_seconds=0.05)
    yield made
    made.stop(5)


def health(client: Client) -> tuple[int, dict[str, str]]:
    response = client.get("/healthz")
    return response.status_code, json.loads(response.get_data(as_text=True))


def test_healthz_follows_the_worker(worker: Worker) -> None:
    client = Client(status_app(worker))
    assert health(client) == (503, {"status": "unhealthy", "detail": "not started"})
    worker.start()
    code, body = health(client)
    assert (code, body["status"]) == (200, "ok")
    assert body["detail"].endswith("of 4 slots busy")
    worker._last_beat = time.monotonic() - 600  # as if the lease keeper had hung
    code, body = health(client)
    assert code == 503
    assert "lease keeper silent" in body["detail"]
    worker.stop(5)
    assert health(client)[1]["detail"] == "stopping"


def test_metrics_and_unknown_paths(worker: Worker) -> None:
    client = Client(status_app(worker))
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert 'bitrix_sla_jobs{status="queued"} 0.0' in metrics.get_data(as_text=True)
    assert client.get("/nope").status_code == 404


def last_successes(client: Client) -> dict[str, float]:
    text = client.get("/metrics").get_data(as_text=True)
    (family,) = [
        family
        for family in text_string_to_metric_families(text)
        if family.name == "bitrix_sla_periodic_last_success_timestamp_seconds"
    ]
    return {sample.labels["task"]: sample.value for sample in family.samples}


def test_metrics_show_when_each_periodic_task_last_succeeded(worker: Worker, clock: Clock) -> None:
    client = Client(status_app(worker))
    assert last_successes(client) == {}  # nothing has run yet
    store = worker.store
    first = store.try_tick("reconcile", 60, "a")
    assert first is not None
    assert last_successes(client) == {}  # claimed, not yet done
    store.tick_succeeded(first)
    clock.advance(seconds=60)
    failed = store.try_tick("reconcile", 60, "a")  # this run fails: no tick_succeeded
    retention = store.try_tick("retention", 3600, "a")
    assert failed is not None and retention is not None
    store.tick_succeeded(retention)
    assert last_successes(client) == {
        "reconcile": first.at.timestamp(),
        "retention": retention.at.timestamp(),
    }
