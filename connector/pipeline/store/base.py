"""What every part of the job store stands on: its engine, its clock and its transactions.

:class:`StoreBase` holds the engine, the retry policy (``backoff``), the clock and the locks a
write takes, and the ways into the database that the parts of
:class:`~connector.pipeline.store.JobStore` share:

* a read-only transaction (``_read``);
* a write transaction in this process's turn (``_write``): SQLite has one writer at a time, so
  a write first takes the process's lock, then the edge's cross-process gate;
* a write transaction run again when it loses a race with an ingest of the same ticket
  (``_ending``), which ending a run, reaping and replaying a dead letter all need;
* rows locked as they are read (``_locking``), on PostgreSQL, where replicas write the same rows.

``now`` is the store's clock: the database's on PostgreSQL, so that replicas agree on it.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from typing import Any, TypeVar

from sqlalchemy import Engine, Row, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from connector.pipeline.db import jobs
from connector.pipeline.retry import Backoff
from connector.pipeline.store.records import Job

Clock = Callable[[], dt.datetime]
_T = TypeVar("_T")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


#: how many times :meth:`JobStore.fail` and :meth:`JobStore.reap` run their transaction when it
#: loses a race with an ingest of the same ticket (see :meth:`JobStore._ending`)
ENDING_TRIES = 3


class StoreBase:
    """The engine, the clock and the transactions every part of the job store runs on."""

    def __init__(
        self, engine: Engine, backoff: Backoff | None = None, clock: Clock | None = None
    ) -> None:
        self.engine = engine
        self.backoff = backoff or Backoff()
        self.is_sqlite = engine.dialect.name == "sqlite"
        self._clock = clock
        # SQLite has one writer at a time; queueing writers of this process on a lock avoids
        # the busy handler's coarse sleeps (the p99 gotcha in the pipeline notes).
        self._write_lock = threading.Lock() if self.is_sqlite else None
        #: a cross-process lock taken around every write transaction (the edge's SQLite gate)
        self.gate: Callable[[], AbstractContextManager[None]] | None = None

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """This process's turn to write (SQLite: the process lock, then the edge's gate)."""
        with ExitStack() as stack:
            if self._write_lock is not None:
                stack.enter_context(self._write_lock)
            if self.gate is not None:
                stack.enter_context(self.gate())
            yield

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """A write transaction on a pooled connection, in this process's turn."""
        with self._locked(), self.engine.begin() as connection:
            yield connection

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.engine.connect() as raw:
            connection = raw.execution_options(read_only=True)
            with connection.begin():
                yield connection

    def now(self, connection: Connection | None = None) -> dt.datetime:
        """The store's clock: the database's on PostgreSQL (shared by replicas), else ours."""
        if self._clock is not None:
            return self._clock()
        if connection is not None and not self.is_sqlite:
            value = connection.execute(select(func.now())).scalar_one()
            assert isinstance(value, dt.datetime)
            return value.astimezone(dt.UTC)
        return utcnow()

    def _insert(self, table: Any) -> Any:
        """The dialect's INSERT, which has ``on_conflict_*`` (same API on both engines)."""
        maker: Any = sqlite.insert if self.is_sqlite else postgresql.insert
        return maker(table)

    @staticmethod
    def _job(row: Row[Any]) -> Job:
        return Job.model_validate(dict(row._mapping))

    def _locking(self, query: Any, *, skip_locked: bool = False) -> Any:
        """``query`` locking the rows it reads (PostgreSQL: ``FOR UPDATE``; on SQLite the
        write transaction already holds the whole database)."""
        if self.is_sqlite:
            return query
        return query.with_for_update(skip_locked=skip_locked, of=jobs)

    def _ending(self, end: Callable[[Connection], _T]) -> _T:
        """Run ``end`` (a failed run's end, a round of the reaper, a replay) in a write
        transaction, and again from the start, up to :data:`ENDING_TRIES` times in all, when a
        queued job of the ticket got in its way.

        On PostgreSQL an ingest may be storing a queued job for the ticket, not committed yet:
        :meth:`JobStore._requeue` cannot see it, so it puts the ended job back as the ticket's
        queued job, and that UPDATE waits for the ingest and then fails on the one-queued-job
        index (``IntegrityError``) once the ingest commits. The whole transaction, audit row
        included, is rolled back; run again, it finds the ingest's job and merges into it. (The
        run's end used to be lost: the job stayed running until its lease expired.) On SQLite
        the ingest holds the write lock until it commits, so the race cannot happen."""
        tries = 0
        while True:
            tries += 1
            try:
                with self._write() as connection:
                    return end(connection)
            except IntegrityError:
                if tries >= ENDING_TRIES:
                    raise
