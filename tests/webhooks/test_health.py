"""Liveness, readiness against real databases, and the Prometheus exposition."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client import REGISTRY
from pydantic import SecretStr

from connector.service import Service
from connector.settings import Settings

from .conftest import INSTANCE, KIND, assert_problem, make_settings, post_event, row_counts


def test_healthz(client: FlaskClient) -> None:
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_healthz_under_serve_counts_the_worker(
    make_app: Callable[..., Flask], settings: Settings
) -> None:
    """With the worker in the process (``serve``), /healthz fails while it is not running."""
    service = Service.from_settings(settings)
    worker = service.worker(concurrency=2, periodic=False)
    client = make_app(service, worker=worker).test_client()

    def health() -> tuple[int, object]:
        response = client.get("/healthz")
        return response.status_code, response.get_json()

    assert health() == (503, {"status": "unhealthy", "worker": "not started"})
    worker.start()
    assert health() == (200, {"status": "ok", "worker": "0 of 2 slots busy"})
    worker.stop(grace_seconds=5)
    assert health() == (503, {"status": "unhealthy", "worker": "stopping"})


def test_readyz_when_ready(client: FlaskClient) -> None:
    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.get_json() == {
        "status": "ready",
        "checks": {"database": "ok", "migrations": "ok", "mappings": "ok"},
    }


def test_readyz_without_migrations(make_app: Callable[..., Flask], settings: Settings) -> None:
    unmigrated = Service.from_settings(settings, migrate=False)
    client = make_app(unmigrated).test_client()

    response = client.get("/readyz")

    assert response.status_code == 503
    data = response.get_json()
    assert data["status"] == "not_ready"
    assert data["checks"]["database"] == "ok"
    assert "schema version 0" in data["checks"]["migrations"]
    assert client.get("/healthz").status_code == 200  # alive, just not ready


def test_readyz_without_a_database(make_app: Callable[..., Flask], tmp_path: Path) -> None:
    """A path SQLite cannot open (a directory) stands for an unreachable database server."""
    (tmp_path / "not-a-file").mkdir()
    settings = make_settings(
        tmp_path, database_url=SecretStr(f"sqlite:///{tmp_path / 'not-a-file'}")
    )
    client = make_app(Service.from_settings(settings, migrate=False)).test_client()

    response = client.get("/readyz")

    assert response.status_code == 503
    checks = response.get_json()["checks"]
    assert checks["database"].startswith("database unreachable")
    assert checks["migrations"] == "unknown"


def test_a_service_without_instances_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Starting with no helpdesk configured is allowed (to try the edge), but never silent."""
    caplog.set_level(logging.WARNING)
    Service.from_settings(make_settings(tmp_path / "one")).store.close()
    assert "no helpdesk instances are configured" not in caplog.text
    Service.from_settings(make_settings(tmp_path / "none", instances=())).store.close()
    assert "no helpdesk instances are configured (the settings file's 'instances:')" in caplog.text


def test_metrics_count_outcomes(client: FlaskClient, service: Service) -> None:
    labels = {"kind": KIND, "instance": INSTANCE}

    def sample(name: str, **extra: str) -> float:
        return REGISTRY.get_sample_value(name, {**labels, **extra}) or 0.0

    batches = REGISTRY.get_sample_value("bitrix_sla_ingest_batch_webhooks_count") or 0.0
    before = (
        sample("bitrix_sla_events_accepted_total"),
        sample("bitrix_sla_events_duplicate_total"),
        sample("bitrix_sla_events_rejected_total", reason="unauthenticated"),
        sample("bitrix_sla_events_rejected_total", reason="invalid_payload"),
    )
    post_event(client, "1", delivery="m-1")
    post_event(client, "1", delivery="m-1")
    post_event(client, "2", delivery="m-2")
    post_event(client, "3", token="wrong")
    post_event(client, body=b"{")
    after = (
        sample("bitrix_sla_events_accepted_total"),
        sample("bitrix_sla_events_duplicate_total"),
        sample("bitrix_sla_events_rejected_total", reason="unauthenticated"),
        sample("bitrix_sla_events_rejected_total", reason="invalid_payload"),
    )

    assert [b - a for a, b in zip(before, after, strict=True)] == [2, 1, 1, 1]
    # three stored transactions (one a duplicate), each of one webhook: the test client
    # sends one request at a time, so there is nothing to share a commit with
    assert REGISTRY.get_sample_value("bitrix_sla_ingest_batch_webhooks_count") == batches + 3
    assert row_counts(service) == {"events": 2, "jobs": 2}
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    text = response.get_data(as_text=True)
    assert 'bitrix_sla_jobs{status="queued"} 2.0' in text
    assert 'bitrix_sla_jobs{status="dead"} 0.0' in text
    assert 'bitrix_sla_events_accepted_total{instance="main",kind="fake"}' in text
    assert 'reason="unauthenticated"' in text


def test_unknown_instances_do_not_become_labels(client: FlaskClient) -> None:
    assert_problem(post_event(client, url="/webhooks/evil/x1"), 404, "unknown_instance")

    text = client.get("/metrics").get_data(as_text=True)
    assert "x1" not in text
    assert 'instance="unknown",kind="unknown",reason="unknown_instance"' in text
