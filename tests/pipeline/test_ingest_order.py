"""Concurrent ingest batches on PostgreSQL take their rows in one order, so they never deadlock.

The interleaving is forced: a third transaction holds an uncommitted queued job of one ticket
that both batches name, so each batch stops there with the rows before it written (and locked);
then that transaction commits and both go on.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import create_engine, select, text

from connector.helpdesks.base import IncomingEvent
from connector.pipeline import db
from connector.pipeline.store import JobStore, job_key


@pytest.fixture
def edges(postgres_url: str) -> Iterator[tuple[JobStore, JobStore]]:
    """Two edge processes' stores on one PostgreSQL database."""
    engine = db.make_engine(postgres_url)
    db.upgrade(engine)
    pair = (JobStore(engine), JobStore(db.make_engine(postgres_url)))
    yield pair
    for store in pair:
        store.close()


@pytest.fixture
def waiting(postgres_url: str) -> Iterator[Callable[[], int]]:
    """How many sessions of the test's database wait for a lock right now."""
    engine = create_engine(postgres_url, isolation_level="AUTOCOMMIT")

    def count() -> int:
        with engine.connect() as connection:
            query = text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            return int(connection.execute(query).scalar_one())

    yield count
    engine.dispose()


def batch(tickets: list[str], tag: str) -> list[tuple[str, str, IncomingEvent, bytes]]:
    return [
        ("fake", "a", IncomingEvent(ticket_id=ticket, delivery_id=f"{tag}-{ticket}"), b"{}")
        for ticket in tickets
    ]


def test_batches_naming_tickets_in_opposite_orders_do_not_deadlock(
    edges: tuple[JobStore, JobStore], waiting: Callable[[], int]
) -> None:
    """Batch X names tickets 1, 5, 2 and batch Y 2, 5, 1. Stored in arrival order, X held
    ticket 1's job and waited for 2 while Y held 2 and waited for 1: PostgreSQL broke the
    deadlock after a second by failing one batch (its webhooks then stored one by one, or
    answered 503 without group commit)."""
    x, y = edges
    holder = x.engine.connect()
    hold = holder.begin()  # ticket 5's queued job, not yet committed
    now = dt.datetime.now(dt.UTC)
    holder.execute(
        db.jobs.insert().values(
            key=job_key("fake", "a", "5"),
            kind="fake",
            instance="a",
            ticket_id="5",
            status="queued",
            reason="sweep",
            events=1,
            attempts=0,
            run_at=now,
            created_at=now,
        )
    )
    errors: list[BaseException] = []

    def ingest(store: JobStore, tickets: list[str], tag: str) -> None:
        try:
            store.ingest_many(batch(tickets, tag))
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=ingest, args=(x, ["1", "5", "2"], "x"), daemon=True),
        threading.Thread(target=ingest, args=(y, ["2", "5", "1"], "y"), daemon=True),
    ]
    try:
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 30
        while waiting() < 2:  # both batches are stuck: on ticket 5, or one on the other
            assert time.monotonic() < deadline, "the batches never reached ticket 5"
            time.sleep(0.005)
    finally:
        hold.commit()
        holder.close()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    with x.engine.connect() as connection:
        rows = connection.execute(
            select(db.jobs.c.ticket_id, db.jobs.c.events).where(db.jobs.c.status == "queued")
        ).all()
    assert sorted(tuple(row) for row in rows) == [("1", 2), ("2", 2), ("5", 3)]
    assert len(x.list_events(limit=10)) == 6
