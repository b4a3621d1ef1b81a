"""Fixtures for the edge: apps built from injected settings on a real SQLite file, no mocks.

Every app gets its own database file in ``tmp_path`` and the repository's ``mappings/``; the
helpdesk is the ``fake`` kind, whose webhooks carry ``X-Fake-Token`` and ``X-Fake-Delivery``.
Assertions about what was (not) stored count rows in the real tables.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from pydantic import SecretStr
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from connector.pipeline.db import events, jobs
from connector.service import Service
from connector.settings import InstanceSettings, Settings
from webhooks.app import create_app
from webhooks.responses import current_gate, current_service

ROOT = Path(__file__).resolve().parents[2]
MAPPINGS = ROOT / "mappings"
KIND, INSTANCE = "fake", "main"
URL = f"/webhooks/{KIND}/{INSTANCE}"
WEBHOOK_SECRET = "hook-secret-1"
ADMIN_TOKEN = "admin-token-1"

_deliveries = itertools.count(1)


def make_settings(directory: Path, **overrides: Any) -> Settings:
    """Settings for one app: a SQLite file in ``directory`` and one fake helpdesk instance."""
    values: dict[str, Any] = {
        "database_url": SecretStr(f"sqlite:///{directory / 'db.sqlite'}"),
        "mappings_dir": MAPPINGS,
        "admin_token": SecretStr(ADMIN_TOKEN),
        "settle_seconds": 0.0,  # jobs are due at once, so a test can claim them
        "instances": (
            InstanceSettings(
                name=INSTANCE,
                kind=KIND,
                url="http://127.0.0.1:9",  # never called: the edge does not talk to helpdesks
                token=SecretStr("api-token"),
                webhook_secret=SecretStr(WEBHOOK_SECRET),
            ),
        ),
    }
    values.update(overrides)
    return Settings.model_validate(values)


def close_app(app: Flask) -> None:
    """Release the app's database connections (and adapters' HTTP sessions, if any)."""
    service = current_service(app)
    for adapter in service.adapters.values():
        close = getattr(adapter, "close", None)
        if callable(close):
            close()
    service.store.engine.dispose()
    current_gate(app).close()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def make_app() -> Iterator[Callable[..., Flask]]:
    """``make_app(settings=...)`` or ``make_app(service)``; every app is closed afterwards."""
    built: list[Flask] = []

    def factory(*args: Any, **kwargs: Any) -> Flask:
        app = create_app(*args, **kwargs)
        app.testing = True
        built.append(app)
        return app

    yield factory
    for app in built:
        close_app(app)


@pytest.fixture
def app(make_app: Callable[..., Flask], settings: Settings) -> Flask:
    return make_app(settings=settings)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def service(app: Flask) -> Service:
    return current_service(app)


def body_for(ticket_id: object = "42", event: object = "ticket.updated") -> bytes:
    return json.dumps({"ticket_id": ticket_id, "event": event}).encode()


def post_event(
    client: FlaskClient,
    ticket_id: object = "42",
    *,
    delivery: str | None = None,
    token: str | None = WEBHOOK_SECRET,
    body: bytes | None = None,
    url: str = URL,
    content_type: str = "application/json; charset=utf-8",
) -> TestResponse:
    """POST a webhook as the fake helpdesk sends it; a fresh delivery id unless given."""
    headers = {"X-Fake-Delivery": delivery or f"delivery-{next(_deliveries)}"}
    if token is not None:
        headers["X-Fake-Token"] = token
    return client.post(
        url,
        data=body if body is not None else body_for(ticket_id),
        headers=headers,
        content_type=content_type,
    )


def row_counts(service: Service) -> dict[str, int]:
    """Rows in the ``events`` and ``jobs`` tables, read straight from the database."""
    with service.store.engine.connect() as connection:
        return {
            "events": connection.execute(select(func.count()).select_from(events)).scalar_one(),
            "jobs": connection.execute(select(func.count()).select_from(jobs)).scalar_one(),
        }


def assert_problem(response: TestResponse, status: int, error: str) -> dict[str, Any]:
    """The response is a JSON error with ``status`` and ``error``; returns the body."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    data = response.get_json()
    assert isinstance(data, dict)
    assert data["error"] == error
    assert isinstance(data["detail"], str)
    assert data["detail"]
    return data
