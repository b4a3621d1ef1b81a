"""A job store on a frozen clock, for the store's own suites (store, fences, retention): the
engine named by ``database_url`` (a real SQLite file or PostgreSQL), migrated, with a quick
backoff."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager

from connector.helpdesks.base import IncomingEvent
from connector.pipeline import db
from connector.pipeline.retry import Backoff
from connector.pipeline.store import JobStore
from tests.clock import Clock

T0 = dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.UTC)
BACKOFF = Backoff(base_seconds=10, cap_seconds=100, max_attempts=4, max_age=dt.timedelta(hours=1))


@contextmanager
def opened(database_url: str, clock: Clock, backoff: Backoff = BACKOFF) -> Iterator[JobStore]:
    """A migrated store on ``database_url`` whose time is ``clock``, closed after the block."""
    engine = db.make_engine(database_url)
    db.upgrade(engine)
    store = JobStore(engine, backoff, clock=clock)
    try:
        yield store
    finally:
        store.close()


def event(ticket: str, delivery: str) -> IncomingEvent:
    return IncomingEvent(ticket_id=ticket, delivery_id=delivery, event="ticket.updated")
