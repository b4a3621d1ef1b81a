"""Fixtures for pipeline tests: a real fake-helpdesk server, a real store, the shipped policy."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connector.helpdesks.fake.adapter import FakeAdapter
from connector.mappings import load_mappings
from connector.pipeline import db
from connector.pipeline.processor import Processor
from connector.pipeline.retry import Backoff, InJobRetry
from connector.pipeline.store import JobStore
from connector.pipeline.worker import Worker
from connector.policy.decision import Policy
from connector.sandbox.fake_helpdesk import FakeHelpdesk
from tests.clock import Clock

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "test-api-token"
QUICK = InJobRetry(attempts=2, base_seconds=0.01, cap_seconds=0.02, retry_after_cap_seconds=0.2)


@pytest.fixture(scope="session")
def policy() -> Policy:
    return load_mappings(ROOT / "mappings").policy


@pytest.fixture
def helpdesk() -> Iterator[FakeHelpdesk]:
    server = FakeHelpdesk(TOKEN)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def adapter(helpdesk: FakeHelpdesk) -> FakeAdapter:
    return FakeAdapter("main", helpdesk.base_url, TOKEN, timeout=5)


@pytest.fixture
def clock() -> Clock:
    return Clock(dt.datetime.now(dt.UTC).replace(microsecond=0))


@pytest.fixture
def clocked(clock: Clock) -> Iterator[tuple[FakeHelpdesk, FakeAdapter]]:
    """A fake helpdesk whose time is ``clock`` (ticket changes, for the sweep), and its adapter."""
    server = FakeHelpdesk(TOKEN, clock=clock)
    server.start()
    yield server, FakeAdapter("main", server.base_url, TOKEN, timeout=5)
    server.stop()


@pytest.fixture
def store(database_url: str, clock: Clock) -> Iterator[JobStore]:
    engine = db.make_engine(database_url)
    db.upgrade(engine)
    opened = JobStore(
        engine,
        Backoff(base_seconds=30, cap_seconds=300, max_attempts=5, max_age=dt.timedelta(hours=2)),
        clock=clock,
    )
    yield opened
    opened.close()


def make_worker(store: JobStore, adapter: FakeAdapter, policy: Policy, **options: Any) -> Worker:
    processor = Processor(
        policy=lambda: policy, adapters={("fake", "main"): adapter}, retry=QUICK, clock=store.now
    )
    return Worker(store, processor, **options)


def partner_ticket(helpdesk: FakeHelpdesk, subject: str = "Вопрос по API D7") -> str:
    """A standard request from a partner organization; returns its id."""
    created = helpdesk.create_ticket(
        subject=subject,
        body="Как получить элементы инфоблока через ORM?",
        customer={"id": "c1", "name": "Иван", "email": "ivan@studio.example", "fields": {}},
        organization={
            "id": "o1",
            "name": "Студия",
            "fields": {"bitrix_license_type": "partner"},
        },
        group="Support",
    )
    return str(created["id"])
