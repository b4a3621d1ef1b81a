"""The durable job store: events in, one coalesced job per ticket, leases, backoff, dead letters.

The rules that make it safe (see ``docs/pipeline-notes.md`` in the shared folder):

* ``ingest`` inserts the event and upserts the ticket's queued job in ONE transaction; the edge
  answers only after the commit. A delivery id already stored is a duplicate: nothing changes.
* At most one ``queued`` and one ``running`` job per ticket (partial unique indexes), so a
  burst of events becomes one or two runs, and two runs of one ticket never overlap.
* A running job holds a lease that its worker renews; an expired lease puts the job back in the
  queue (``reap``). Every claim gets a token of its own (``claim``), and every write that renews
  or ends a run is fenced on it: a stale run (reaped, then claimed again, even by the same
  worker) can neither end nor renew the new one.
* On PostgreSQL several replicas reap and end runs at once: each such write locks its row
  first (``FOR UPDATE``; the reaper skips rows locked by others) and is fenced on what it read,
  so a job is requeued once, never merged into itself, and never while its lease is renewed.
* Failures requeue with exponential backoff and jitter, or go ``dead`` with the reason. A
  requeue that loses a race with an ingest of the same ticket is run again (``_ending``).
* Retention keeps a job's audit rows while the job is not ``done``: a dead letter keeps its
  history until it is replayed and done.

Each concern is a module of this package, and :class:`JobStore` puts them together:

* ``ingestion``: webhooks in (``ingest``, ``ingest_many``, ``enqueue``), group commit, and the
  store's constructor, whose settings (settle window, group commit) are that path's;
* ``leases``: a run's lease (``claim``, ``heartbeat``, ``finish``, ``fail``, ``reap``);
* ``inspection``: jobs, events, audit rows and counts for the CLI and the admin endpoints, and
  the replay of dead letters;
* ``schedules``: the ticks of periodic tasks, one owner per tick among replicas;
* ``retention``: ``purge``, a chunk of old rows per short transaction;
* ``base``: what they all stand on: the engine, the clock, the write lock and transactions;
* ``records``: the rows and values the store hands out and takes in.
"""

from __future__ import annotations

from sqlalchemy.exc import SQLAlchemyError

from connector.pipeline import db
from connector.pipeline.retry import Backoff
from connector.pipeline.store.base import ENDING_TRIES, Clock, utcnow
from connector.pipeline.store.ingestion import Ingestion
from connector.pipeline.store.inspection import Inspection
from connector.pipeline.store.leases import Leases
from connector.pipeline.store.records import (
    EPOCH,
    MAX_ID,
    STATUSES,
    IngestResult,
    Job,
    RunRecord,
    Status,
    StoredEvent,
    Tick,
    job_key,
)
from connector.pipeline.store.retention import PURGE_CHUNK_ROWS, Retention
from connector.pipeline.store.schedules import Schedules

__all__ = [
    "ENDING_TRIES",
    "EPOCH",
    "MAX_ID",
    "PURGE_CHUNK_ROWS",
    "STATUSES",
    "Clock",
    "IngestResult",
    "Job",
    "JobStore",
    "RunRecord",
    "Status",
    "StoredEvent",
    "Tick",
    "job_key",
    "utcnow",
]


class JobStore(Ingestion, Leases, Inspection, Schedules, Retention):
    """SQLAlchemy Core access to the job tables; one code path for SQLite and PostgreSQL.

    The constructor is :class:`~connector.pipeline.store.ingestion.Ingestion`'s, as its
    settings (the settle window, group commit) are the ingest path's; :meth:`open` takes a URL.
    """

    @classmethod
    def open(
        cls,
        url: str,
        backoff: Backoff | None = None,
        *,
        migrate: bool = True,
        settle_seconds: float = 0.0,
        settle_max_seconds: float = 10.0,
        group_commit: bool = False,
    ) -> JobStore:
        """Connect, and apply pending migrations unless told not to.

        Raises:
            StoreUnavailableError: the database cannot be reached, or set up (with ``migrate``).
                Without ``migrate`` nothing connects yet: a web edge then starts while the
                database is down, and answers 503 until it is back.
        """
        with db.opening(url):
            engine = db.make_engine(url)
            if migrate:
                try:
                    db.upgrade(engine)
                except BaseException:
                    engine.dispose()
                    raise
        return cls(
            engine,
            backoff,
            settle_seconds=settle_seconds,
            settle_max_seconds=settle_max_seconds,
            group_commit=group_commit,
        )

    def close(self) -> None:
        """Close every pooled connection."""
        self._drop_held()
        self.engine.dispose()

    def ready(self) -> tuple[bool, str]:
        """Whether the database answers and the schema is current."""
        try:
            version = db.current_version(self.engine)
        except SQLAlchemyError as exc:
            return False, f"database unreachable: {type(exc).__name__}"
        if version != db.LATEST:
            return (
                False,
                f"schema version {version}, expected {db.LATEST}: run bitrix-sla db upgrade",
            )
        return True, "ok"
