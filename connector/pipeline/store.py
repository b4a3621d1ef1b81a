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
"""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager, suppress
from operator import itemgetter
from typing import Any, Literal, NamedTuple, TypeVar

from pydantic import BaseModel, ConfigDict
from sqlalchemy import (
    Column,
    ColumnElement,
    Engine,
    Row,
    Subquery,
    Table,
    and_,
    case,
    delete,
    exists,
    func,
    insert,
    literal,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from connector import metrics
from connector.helpdesks.base import IncomingEvent
from connector.pipeline import db
from connector.pipeline.db import decisions, events, jobs, schedules
from connector.pipeline.driver_sql import RowsStatement
from connector.pipeline.group_commit import GroupCommit
from connector.pipeline.retry import Backoff
from connector.text import storable

Status = Literal["queued", "running", "done", "dead"]
STATUSES: tuple[Status, ...] = ("queued", "running", "done", "dead")
Clock = Callable[[], dt.datetime]
_T = TypeVar("_T")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Job(BaseModel):
    """A row of the ``jobs`` table."""

    model_config = ConfigDict(frozen=True)

    id: int
    key: str
    kind: str
    instance: str
    ticket_id: str
    status: Status
    reason: str
    events: int
    attempts: int
    run_at: dt.datetime
    lease_until: dt.datetime | None
    locked_by: str | None
    #: the token of the claim a running job is under (see :meth:`JobStore.claim`)
    claim: str | None = None
    last_error: str | None
    outcome: str | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None


class StoredEvent(BaseModel):
    """A row of the ``events`` table without its body, which ``body_length`` measures (in
    characters)."""

    model_config = ConfigDict(frozen=True)

    id: int
    received_at: dt.datetime
    kind: str
    instance: str
    ticket_id: str
    delivery_id: str
    event: str
    body_length: int


class RunRecord(BaseModel):
    """What one run of a job did, for the ``decisions`` audit table."""

    model_config = ConfigDict(frozen=True)

    worker: str
    started_at: dt.datetime
    finished_at: dt.datetime
    outcome: str  # applied | unchanged | failed | dead
    decision: dict[str, Any] | None = None
    plan: dict[str, Any] | None = None
    calls: list[dict[str, Any]] = []
    error: str | None = None


class IngestResult(BaseModel):
    """The outcome of storing one webhook."""

    model_config = ConfigDict(frozen=True)

    duplicate: bool
    job_id: int | None


_DUPLICATE = IngestResult(duplicate=True, job_id=None)

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
#: the largest id either engine stores (a signed 64-bit integer); a larger one names no row
MAX_ID = 2**63 - 1


def _may_exist(row_id: int) -> bool:
    """Whether ``row_id`` could name a row: the drivers refuse to bind one outside 64 bits."""
    return 0 < row_id <= MAX_ID


#: rows one retention transaction deletes at most (200 events of 12 KB: about 30 ms of the write
#: lock on a 2-vCPU VM); between two, retention pauses as long as the last one took
PURGE_CHUNK_ROWS = 200

#: how many times :meth:`JobStore.fail` and :meth:`JobStore.reap` run their transaction when it
#: loses a race with an ingest of the same ticket (see :meth:`JobStore._ending`)
ENDING_TRIES = 3


class Tick(BaseModel):
    """This replica's run of a periodic task: the tick's time, and where the run starts from.

    ``since`` is the time of the last tick whose run succeeded (:meth:`JobStore.tick_succeeded`),
    the epoch if none has: a run that failed or was cut short is done again from there.
    """

    model_config = ConfigDict(frozen=True)

    name: str
    at: dt.datetime
    since: dt.datetime


_EVENT_COLUMNS = (
    "received_at",
    "kind",
    "instance",
    "ticket_id",
    "delivery_id",
    "event",
    "body",
    "job_key",
)
_JOB_COLUMNS = (
    "key",
    "kind",
    "instance",
    "ticket_id",
    "status",
    "reason",
    "events",
    "attempts",
    "run_at",
    "settle_deadline",
    "created_at",
)


_Ingest = tuple[str, str, IncomingEvent, bytes]

#: the order in which a batch's statements take their rows (see :meth:`JobStore._store_batch`)
_BY_DELIVERY = itemgetter("kind", "instance", "delivery_id")
_BY_KEY = itemgetter("key")


class _Pending:
    """One webhook made ready to store before the write lock is taken: its deduplication key
    and its ``events`` row (which names its job); only the time is filled in under the lock."""

    __slots__ = ("delivery", "row")

    def __init__(self, kind: str, instance: str, event: IncomingEvent, body: bytes) -> None:
        self.delivery = (kind, instance, event.delivery_id)
        self.row: dict[str, Any] = {
            "received_at": None,
            "kind": kind,
            "instance": instance,
            "ticket_id": event.ticket_id,
            "delivery_id": event.delivery_id,
            "event": event.event,
            "body": body.decode("utf-8", errors="replace"),
            "job_key": job_key(kind, instance, event.ticket_id),
        }


def job_key(kind: str, instance: str, ticket_id: str) -> str:
    return f"{kind}:{instance}:{ticket_id}"


class _Retained(NamedTuple):
    """A table retention deletes from: its rows whose time ``at`` is older than the cutoff go,
    but only those for which ``deletable`` (if any) holds, given the chunk of old rows being
    deleted, which has the table's ``id`` and ``columns``."""

    table: Table
    at: Column[dt.datetime]
    columns: tuple[Column[Any], ...] = ()
    deletable: Callable[[Subquery], ColumnElement[bool]] | None = None


_RETENTION = (
    _Retained(events, events.c.received_at),
    _Retained(jobs, jobs.c.finished_at, (jobs.c.status,), lambda chunk: chunk.c.status == "done"),
    # a job's audit rows stay until it is done: a dead letter's until it is replayed and done
    _Retained(
        decisions,
        decisions.c.finished_at,
        (decisions.c.job_id,),
        lambda chunk: ~exists().where(jobs.c.id == chunk.c.job_id, jobs.c.status != "done"),
    ),
)


class JobStore:
    """SQLAlchemy Core access to the job tables; one code path for SQLite and PostgreSQL."""

    def __init__(
        self,
        engine: Engine,
        backoff: Backoff | None = None,
        clock: Clock | None = None,
        *,
        settle_seconds: float = 0.0,
        settle_max_seconds: float = 10.0,
        group_commit: bool = False,
    ) -> None:
        """Wrap ``engine``.

        ``group_commit`` lets concurrent ``ingest`` calls share a transaction (see
        :mod:`connector.pipeline.group_commit`); worth it where many threads ingest at once.

        ``settle_seconds`` debounces a ticket: its queued job runs that long after the LAST
        event, so a burst (an agent saving five times, a mass update) becomes one run; a steady
        stream still runs at least every ``settle_max_seconds`` after the job was queued.
        """
        self.engine = engine
        self.backoff = backoff or Backoff()
        self.settle = dt.timedelta(seconds=settle_seconds)
        self.settle_max = dt.timedelta(seconds=max(settle_max_seconds, settle_seconds))
        self.is_sqlite = engine.dialect.name == "sqlite"
        self._clock = clock
        # SQLite has one writer at a time; queueing writers of this process on a lock avoids
        # the busy handler's coarse sleeps (the p99 gotcha in the pipeline notes).
        self._write_lock = threading.Lock() if self.is_sqlite else None
        self._prepared: tuple[bool, tuple[RowsStatement, RowsStatement]] | None = None
        #: a cross-process lock taken around every write transaction (the edge's SQLite gate)
        self.gate: Callable[[], AbstractContextManager[None]] | None = None
        self._group: GroupCommit[_Pending, IngestResult] | None = None
        if group_commit:
            self._group = GroupCommit(
                self._commit_batch,
                lambda item: self._ingest_pending([item])[0],
                hold=self._locked,
            )
        #: (pid, connection) group-commit batches run on, kept between batches: a pool checkout and
        #: check-in per batch cost about as much as the batch's statements
        self._held: tuple[int, Connection] | None = None

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

    # -- plumbing ------------------------------------------------------------------------------

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

    # -- enqueueing ----------------------------------------------------------------------------

    def _statements(self) -> tuple[RowsStatement, RowsStatement]:
        """The ingest path's two statements: store the events of a batch, then queue or
        coalesce their jobs; each one multi-row statement, however many rows (see
        :mod:`connector.pipeline.driver_sql` for why they bypass ``Connection.execute``)."""
        settles = bool(self.settle)
        if self._prepared is None or self._prepared[0] != settles:
            dialect = self.engine.dialect
            store_events = RowsStatement(
                lambda rows: (
                    self._insert(events)
                    .values(rows)
                    .on_conflict_do_nothing(index_elements=["kind", "instance", "delivery_id"])
                    .returning(events.c.kind, events.c.instance, events.c.delivery_id)
                ),
                [events.c[column] for column in _EVENT_COLUMNS],
                dialect,
            )
            upsert_jobs = RowsStatement(
                lambda rows: self._upsert_statement(rows, settles),
                [jobs.c[column] for column in _JOB_COLUMNS],
                dialect,
            )
            self._prepared = (settles, (store_events, upsert_jobs))
        return self._prepared[1]

    def _upsert_statement(self, rows: list[dict[str, Any]], settles: bool) -> Any:
        """Insert queued jobs; a ticket's existing queued job absorbs the row instead."""
        upsert = self._insert(jobs).values(rows)
        coalesce: dict[str, Any] = {"events": jobs.c.events + upsert.excluded.events}
        if settles:
            # A coalesced event pushes the run back to its own settle time, but never past
            # the job's settle deadline nor earlier than a pending backoff.
            wanted = upsert.excluded.run_at
            capped = case(
                (
                    and_(jobs.c.settle_deadline.is_not(None), wanted > jobs.c.settle_deadline),
                    jobs.c.settle_deadline,
                ),
                else_=wanted,
            )
            coalesce["run_at"] = case((jobs.c.run_at >= capped, jobs.c.run_at), else_=capped)
        return upsert.on_conflict_do_update(
            index_elements=[jobs.c.key], index_where=db.QUEUED, set_=coalesce
        ).returning(jobs.c.key, jobs.c.id)

    def _job_times(self, now: dt.datetime) -> dict[str, dt.datetime]:
        """A new job's times; one dict per transaction, so its rows share the objects and the
        driver converts each time once, not once per row."""
        return {
            "run_at": now + self.settle,
            "settle_deadline": now + self.settle_max,
            "created_at": now,
        }

    @staticmethod
    def _job_row(
        times: dict[str, dt.datetime],
        kind: str,
        instance: str,
        ticket_id: str,
        reason: str,
        count: int,
    ) -> dict[str, Any]:
        return {
            "key": job_key(kind, instance, ticket_id),
            "kind": kind,
            "instance": instance,
            "ticket_id": ticket_id,
            "status": "queued",
            "reason": reason,
            "events": count,
            "attempts": 0,
            **times,
        }

    def _upsert_jobs(self, connection: Connection, rows: list[dict[str, Any]]) -> dict[str, int]:
        """Queue or coalesce one job per row (distinct keys); returns each key's job id.

        The rows go in in the order of their keys, whatever order they came in (see
        :meth:`_store_batch`)."""
        _, upsert_jobs = self._statements()
        rows = sorted(rows, key=_BY_KEY)
        return {key: int(job_id) for key, job_id in upsert_jobs.execute(connection, rows)}

    def ingest(self, kind: str, instance: str, event: IncomingEvent, body: bytes) -> IngestResult:
        """Store the event and coalesce it into the ticket's queued job, atomically.

        With group commit on, concurrent calls share one transaction; each still returns only
        after its event is committed.
        """
        item = _Pending(kind, instance, event, body)
        if self._group is not None:
            return self._group.submit(item)
        return self._ingest_pending([item])[0]

    def _commit_batch(self, items: list[_Pending]) -> list[IngestResult]:
        """A group-commit batch (the caller holds :meth:`_locked`, so one batch at a time per
        process), on the connection kept for them. After any failure that connection is
        dropped; the group commit then stores the items one by one on pooled connections."""
        if self._held is None or self._held[0] != os.getpid():
            self._held = (os.getpid(), self.engine.connect())
        connection = self._held[1]
        try:
            with connection.begin():
                results = self._store_batch(connection, items)
        except BaseException:
            self._drop_held()
            raise
        metrics.INGEST_BATCH.observe(len(items))
        return results

    def _drop_held(self) -> None:
        held, self._held = self._held, None
        if held is not None and held[0] == os.getpid():
            with suppress(SQLAlchemyError):
                held[1].close()

    def ingest_many(self, items: list[_Ingest]) -> list[IngestResult]:
        """Store a batch of webhooks ``(kind, instance, event, body)`` in one transaction.

        Returns one result per item, in order. A delivery id seen earlier in the batch, or
        already stored, is a duplicate; the new events of one ticket coalesce into its one
        queued job, whose ``events`` count grows by their number.
        """
        return self._ingest_pending([_Pending(*item) for item in items])

    def _ingest_pending(self, items: list[_Pending]) -> list[IngestResult]:
        with self._write() as connection:
            results = self._store_batch(connection, items)
        metrics.INGEST_BATCH.observe(len(items))
        return results

    def _store_batch(self, connection: Connection, items: list[_Pending]) -> list[IngestResult]:
        """:meth:`ingest_many` inside an open write transaction: two statements per batch.

        Each statement takes its rows in one fixed order (events by delivery, jobs by key), not
        in the order the webhooks arrived: on PostgreSQL a row stays locked until the commit,
        so two concurrent batches naming the same tickets in opposite orders each waited for
        the other (a deadlock, which fails one of them after a second). Results are matched to
        the items by delivery and key, so the order changes nothing else."""
        first: dict[tuple[str, str, str], int] = {}  # delivery -> its first item
        for index, item in enumerate(items):
            first.setdefault(item.delivery, index)
        store_events, _ = self._statements()
        now = self.now(connection)
        rows = []
        for index in first.values():
            row = items[index].row
            row["received_at"] = now
            rows.append(row)
        rows.sort(key=_BY_DELIVERY)
        stored = set(store_events.execute(connection, rows))
        new = [index for delivery, index in first.items() if delivery in stored]
        times = self._job_times(now)
        wanted: dict[str, dict[str, Any]] = {}  # job key -> its row, counting its new events
        for index in new:
            row = items[index].row
            key = row["job_key"]
            if key in wanted:
                wanted[key]["events"] += 1
            else:
                wanted[key] = self._job_row(
                    times, row["kind"], row["instance"], row["ticket_id"], "webhook", 1
                )
        job_ids = self._upsert_jobs(connection, list(wanted.values())) if wanted else {}
        results = [_DUPLICATE] * len(items)
        for index in new:
            job_id = job_ids[items[index].row["job_key"]]
            results[index] = IngestResult(duplicate=False, job_id=job_id)
        return results

    def enqueue(self, kind: str, instance: str, ticket_id: str, reason: str) -> int:
        """Queue a ticket without an event (sweep, backfill); coalesces like ``ingest``."""
        with self._write() as connection:
            times = self._job_times(self.now(connection))
            row = self._job_row(times, kind, instance, ticket_id, reason, 1)
            return self._upsert_jobs(connection, [row])[row["key"]]

    # -- running -------------------------------------------------------------------------------

    def _claimable(self, now: dt.datetime) -> Any:
        running = jobs.alias("running")
        blocked = exists().where(and_(running.c.key == jobs.c.key, running.c.status == "running"))
        return (
            select(jobs.c.id)
            .where(jobs.c.status == "queued", jobs.c.run_at <= now, ~blocked)
            .order_by(jobs.c.run_at, jobs.c.id)
            .limit(1)
        )

    def _locking(self, query: Any, *, skip_locked: bool = False) -> Any:
        """``query`` locking the rows it reads (PostgreSQL: ``FOR UPDATE``; on SQLite the
        write transaction already holds the whole database)."""
        if self.is_sqlite:
            return query
        return query.with_for_update(skip_locked=skip_locked, of=jobs)

    def claim(self, worker: str, lease_seconds: float) -> Job | None:
        """Take the oldest due job whose ticket has no running job, under a lease.

        The job comes back with a new ``claim`` token, which :meth:`heartbeat`, :meth:`finish`
        and :meth:`fail` are fenced on."""
        with self._read() as connection:  # lock-free look first: idle polls take no write lock
            if connection.execute(self._claimable(self.now(connection))).first() is None:
                return None
        try:
            with self._write() as connection:
                now = self.now(connection)
                query = self._locking(self._claimable(now), skip_locked=True)
                job_id = connection.execute(query).scalar()
                if job_id is None:
                    return None
                row = connection.execute(
                    update(jobs)
                    .where(jobs.c.id == job_id, jobs.c.status == "queued")
                    .values(
                        status="running",
                        locked_by=worker,
                        claim=uuid.uuid4().hex,
                        lease_until=now + dt.timedelta(seconds=lease_seconds),
                        attempts=jobs.c.attempts + 1,
                        started_at=now,
                    )
                    .returning(*jobs.c)
                ).first()
                return None if row is None else self._job(row)
        except IntegrityError:  # another replica started this ticket meanwhile
            return None

    def heartbeat(self, job: Job, worker: str, lease_seconds: float) -> bool:
        """Renew the lease of ``job``'s claim; False means that claim is over (reaped or
        finished), even if the job runs again under another claim."""
        with self._write() as connection:
            now = self.now(connection)
            result = connection.execute(
                update(jobs)
                .where(self._fenced(job, worker))
                .values(lease_until=now + dt.timedelta(seconds=lease_seconds))
            )
            return result.rowcount == 1

    def _record(self, connection: Connection, job: Job, record: RunRecord) -> None:
        started, finished = record.started_at, record.finished_at
        connection.execute(
            insert(decisions).values(
                job_id=job.id,
                kind=job.kind,
                instance=job.instance,
                ticket_id=job.ticket_id,
                worker=record.worker,
                started_at=started,
                finished_at=finished,
                duration_ms=(finished - started).total_seconds() * 1000,
                outcome=record.outcome,
                # the audit quotes the helpdesk (ticket fields, error text): keep what the
                # engines can store (connector.text)
                decision=storable(record.decision),
                plan=storable(record.plan),
                calls=storable(record.calls),
                error=storable(record.error),
            )
        )

    @staticmethod
    def _fenced(job: Job, worker: str | None) -> Any:
        """The row of ``job`` while the run of ``worker`` under ``job``'s claim still holds it:
        running, locked by that worker, under the same claim token. (A job claimed by a replica
        of an older version has no token: it is fenced on the worker alone.)"""
        same_claim = jobs.c.claim.is_(None) if job.claim is None else jobs.c.claim == job.claim
        same_worker = jobs.c.locked_by.is_(None) if worker is None else jobs.c.locked_by == worker
        return and_(jobs.c.id == job.id, jobs.c.status == "running", same_worker, same_claim)

    def finish(self, job: Job, worker: str, record: RunRecord) -> bool:
        """Mark a run done and audit it; False if the lease was lost (the audit is kept)."""
        with self._write() as connection:
            now = self.now(connection)
            self._record(connection, job, record)
            result = connection.execute(
                update(jobs)
                .where(self._fenced(job, worker))
                .values(
                    status="done",
                    outcome=record.outcome,
                    finished_at=now,
                    lease_until=None,
                    last_error=None,
                )
            )
            return result.rowcount == 1

    def _requeue(
        self,
        connection: Connection,
        job: Job,
        fence: Any,
        run_at: dt.datetime,
        error: str | None,
    ) -> bool:
        """Put a job back in the queue, merging into a queued job of the same ticket if any.

        ``fence`` selects the job's row while the run being ended still holds it; returns
        False, changing nothing, when it no longer does (another replica ended the run first).
        """
        queued = connection.execute(
            self._locking(
                select(jobs).where(
                    jobs.c.key == job.key, jobs.c.status == "queued", jobs.c.id != job.id
                )
            )
        ).first()
        if queued is None:
            result = connection.execute(
                update(jobs)
                .where(fence)
                .values(
                    status="queued",
                    run_at=run_at,
                    locked_by=None,
                    claim=None,
                    lease_until=None,
                    last_error=error,
                )
            )
            return result.rowcount == 1
        superseded = connection.execute(
            update(jobs)
            .where(fence)
            .values(
                status="done",
                outcome="superseded",
                finished_at=self.now(connection),
                lease_until=None,
            )
        )
        if superseded.rowcount != 1:
            return False
        other = self._job(queued)
        connection.execute(
            update(jobs)
            .where(jobs.c.id == other.id, jobs.c.status == "queued")
            .values(
                run_at=max(other.run_at, run_at),
                attempts=max(other.attempts, job.attempts),
                created_at=min(other.created_at, job.created_at),
                events=other.events + job.events,
                last_error=error,
            )
        )
        return True

    @staticmethod
    def _mark_dead(connection: Connection, fence: Any, why: str, now: dt.datetime) -> bool:
        """End the run ``fence`` selects as ``dead``; False if no row is held by it any more."""
        result = connection.execute(
            update(jobs)
            .where(fence)
            .values(
                status="dead", outcome="dead", last_error=why, finished_at=now, lease_until=None
            )
        )
        return result.rowcount == 1

    def _ending(self, end: Callable[[Connection], _T]) -> _T:
        """Run ``end`` (a failed run's end, a round of the reaper, a replay) in a write
        transaction, and again from the start, up to :data:`ENDING_TRIES` times in all, when a
        queued job of the ticket got in its way.

        On PostgreSQL an ingest may be storing a queued job for the ticket, not committed yet:
        :meth:`_requeue` cannot see it, so it puts the ended job back as the ticket's queued
        job, and that UPDATE waits for the ingest and then fails on the one-queued-job index
        (``IntegrityError``) once the ingest commits. The whole transaction, audit row included,
        is rolled back; run again, it finds the ingest's job and merges into it. (The run's end
        used to be lost: the job stayed running until its lease expired.) On SQLite the ingest
        holds the write lock until it commits, so the race cannot happen."""
        tries = 0
        while True:
            tries += 1
            try:
                with self._write() as connection:
                    return end(connection)
            except IntegrityError:
                if tries >= ENDING_TRIES:
                    raise

    def fail(
        self, job: Job, worker: str, error: str, *, permanent: bool, record: RunRecord
    ) -> Status:
        """End a failed run: back to the queue with backoff, or ``dead``. Returns the status.

        The audit row is written once, in the transaction that ends the run."""
        error = storable(error)  # it may quote the helpdesk's answer
        return self._ending(
            lambda connection: self._fail(connection, job, worker, error, permanent, record)
        )

    def _fail(
        self,
        connection: Connection,
        job: Job,
        worker: str,
        error: str,
        permanent: bool,
        record: RunRecord,
    ) -> Status:
        now = self.now(connection)
        fence = self._fenced(job, worker)
        # locked until the commit: a reaper skips the row rather than requeue it meanwhile
        current = connection.execute(self._locking(select(jobs).where(fence))).first()
        if current is None:  # lease lost: the reaper already requeued it
            self._record(connection, job, record)
            return "queued"
        job = self._job(current)
        dead = permanent or self.backoff.gives_up(job.attempts, job.created_at, now)
        if dead:
            why = error if permanent else f"gave up after {job.attempts} attempts: {error}"
            ended = self._mark_dead(connection, fence, why, now)
            self._record(connection, job, record.model_copy(update={"outcome": "dead"}))
            return "dead" if ended else "queued"
        delay = self.backoff.delay(job.attempts)
        self._requeue(connection, job, fence, now + dt.timedelta(seconds=delay), error)
        self._record(connection, job, record)
        return "queued"

    def reap(self) -> int:
        """Requeue running jobs whose lease expired (their worker died); returns how many.

        Each job is requeued only under the claim and the expired lease the reaper read: a
        lease renewed meanwhile, or a run ended by its worker or another replica's reaper, is
        left alone. On PostgreSQL the rows are locked as they are read, skipping those another
        transaction holds (a worker ending or renewing the run, another reaper), in the order
        of their keys, as the ingest path takes them."""
        return self._ending(self._reap)

    def _reap(self, connection: Connection) -> int:
        now = self.now(connection)
        expired = connection.execute(
            self._locking(
                select(jobs)
                .where(jobs.c.status == "running", jobs.c.lease_until < now)
                .order_by(jobs.c.key, jobs.c.id),
                skip_locked=True,
            )
        ).all()
        reaped = 0
        for row in expired:
            job = self._job(row)
            fence = and_(self._fenced(job, job.locked_by), jobs.c.lease_until < now)
            message = f"lease expired (worker {job.locked_by} stopped)"
            if self.backoff.gives_up(job.attempts, job.created_at, now):
                why = f"gave up after {job.attempts} attempts: {message}"
                ended = self._mark_dead(connection, fence, why, now)
            else:
                ended = self._requeue(connection, job, fence, now, message)
            reaped += int(ended)
        return reaped

    # -- dead letters and inspection ------------------------------------------------------------

    def get(self, job_id: int) -> Job | None:
        if not _may_exist(job_id):
            return None
        with self._read() as connection:
            row = connection.execute(select(jobs).where(jobs.c.id == job_id)).first()
            return None if row is None else self._job(row)

    def list_jobs(self, status: Status | None = None, limit: int = 100) -> list[Job]:
        """The newest ``limit`` jobs (a limit past 64 bits, which no driver binds, is no limit)."""
        query = select(jobs).order_by(jobs.c.id.desc()).limit(min(limit, MAX_ID))
        if status is not None:
            query = query.where(jobs.c.status == status)
        with self._read() as connection:
            return [self._job(row) for row in connection.execute(query)]

    @staticmethod
    def _event_query(
        columns: list[Any],
        *,
        instance: str | None = None,
        ticket_id: str | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
    ) -> Any:
        query = select(*columns)
        if instance is not None:
            query = query.where(events.c.instance == instance)
        if ticket_id is not None:
            query = query.where(events.c.ticket_id == ticket_id)
        if since is not None:
            query = query.where(events.c.received_at >= since)
        if until is not None:
            query = query.where(events.c.received_at < until)
        return query

    _EVENT_SUMMARY = (
        events.c.id,
        events.c.received_at,
        events.c.kind,
        events.c.instance,
        events.c.ticket_id,
        events.c.delivery_id,
        events.c.event,
        func.length(events.c.body).label("body_length"),
    )

    def list_events(
        self,
        *,
        instance: str | None = None,
        ticket_id: str | None = None,
        since: dt.datetime | None = None,
        limit: int = 100,
    ) -> list[StoredEvent]:
        """Stored webhooks, newest first, without their bodies (at most ``limit``, as in
        :meth:`list_jobs`)."""
        query = self._event_query(
            list(self._EVENT_SUMMARY), instance=instance, ticket_id=ticket_id, since=since
        )
        newest = query.order_by(events.c.id.desc()).limit(min(limit, MAX_ID))
        with self._read() as connection:
            rows = connection.execute(newest)
            return [StoredEvent.model_validate(dict(row._mapping)) for row in rows]

    def get_event(self, event_id: int) -> tuple[StoredEvent, str] | None:
        """One stored webhook and its body as received (decoded as UTF-8)."""
        if not _may_exist(event_id):
            return None
        query = select(*self._EVENT_SUMMARY, events.c.body).where(events.c.id == event_id)
        with self._read() as connection:
            row = connection.execute(query).first()
        if row is None:
            return None
        fields = dict(row._mapping)
        body = str(fields.pop("body"))
        return StoredEvent.model_validate(fields), body

    def tickets_with_events(
        self,
        since: dt.datetime,
        until: dt.datetime | None = None,
        *,
        instance: str | None = None,
        ticket_id: str | None = None,
    ) -> list[tuple[str, str, str]]:
        """Each ticket (kind, instance, id) that had a webhook stored in ``[since, until)``,
        once, in the order of its first such webhook."""
        query = self._event_query(
            [events.c.kind, events.c.instance, events.c.ticket_id, func.min(events.c.id)],
            instance=instance,
            ticket_id=ticket_id,
            since=since,
            until=until,
        )
        grouped = query.group_by(events.c.kind, events.c.instance, events.c.ticket_id)
        with self._read() as connection:
            rows = connection.execute(grouped.order_by(func.min(events.c.id))).all()
        return [(row[0], row[1], row[2]) for row in rows]

    def runs(self, job_id: int) -> list[dict[str, Any]]:
        """The audit rows of one job, oldest first."""
        if not _may_exist(job_id):
            return []
        query = select(decisions).where(decisions.c.job_id == job_id).order_by(decisions.c.id)
        with self._read() as connection:
            return [dict(row._mapping) for row in connection.execute(query)]

    def ticket_runs(self, kind: str, instance: str, ticket_id: str) -> list[dict[str, Any]]:
        """The audit rows of one ticket, oldest first."""
        query = (
            select(decisions)
            .where(
                decisions.c.kind == kind,
                decisions.c.instance == instance,
                decisions.c.ticket_id == ticket_id,
            )
            .order_by(decisions.c.id)
        )
        with self._read() as connection:
            return [dict(row._mapping) for row in connection.execute(query)]

    def replay(self, job_id: int) -> bool:
        """Queue a dead job again, attempts reset; False if it is not dead.

        Like a failed run's end, it runs again when an ingest queued the ticket meanwhile (see
        :meth:`_ending`): the second try finds that job and runs it now instead."""
        if not _may_exist(job_id):
            return False
        return self._ending(lambda connection: self._replay(connection, job_id))

    def _replay(self, connection: Connection, job_id: int) -> bool:
        row = connection.execute(
            self._locking(select(jobs).where(jobs.c.id == job_id, jobs.c.status == "dead"))
        ).first()
        if row is None:
            return False
        job = self._job(row)
        now = self.now(connection)
        queued = connection.execute(
            self._locking(select(jobs.c.id).where(jobs.c.key == job.key, jobs.c.status == "queued"))
        ).scalar()
        if queued is not None:  # a newer event already queued the ticket: run it now
            connection.execute(update(jobs).where(jobs.c.id == queued).values(run_at=now))
            connection.execute(
                update(jobs).where(jobs.c.id == job.id).values(status="done", outcome="replayed")
            )
            return True
        connection.execute(
            update(jobs)
            .where(jobs.c.id == job.id)
            .values(
                status="queued",
                reason="replay",
                attempts=0,
                run_at=now,
                created_at=now,
                finished_at=None,
                outcome=None,
            )
        )
        return True

    def replay_all_dead(self) -> int:
        with self._read() as connection:
            ids = [
                row[0]
                for row in connection.execute(select(jobs.c.id).where(jobs.c.status == "dead"))
            ]
        return sum(1 for job_id in ids if self.replay(job_id))

    def counts(self) -> dict[str, int]:
        """Jobs per status (every status present, zero included)."""
        with self._read() as connection:
            rows = connection.execute(select(jobs.c.status, func.count()).group_by(jobs.c.status))
            found = {status: int(count) for status, count in rows}
        return {status: found.get(status, 0) for status in STATUSES}

    # -- periodic jobs and retention --------------------------------------------------------------

    def periodic_successes(self) -> dict[str, dt.datetime]:
        """When each periodic task's last successful tick was, for those that have had one."""
        query = select(schedules.c.name, schedules.c.succeeded_at).where(
            schedules.c.succeeded_at.is_not(None)
        )
        with self._read() as connection:
            return {row.name: row.succeeded_at for row in connection.execute(query)}

    def first_tick(self, name: str) -> dt.datetime | None:
        """When periodic task ``name`` first ticked (None if it never has): a task none of whose
        runs has succeeded yet starts each run from there (see
        :func:`connector.pipeline.periodic.reconciliation`)."""
        query = select(schedules.c.first_run_at).where(schedules.c.name == name)
        with self._read() as connection:
            value = connection.execute(query).scalar()
        assert value is None or isinstance(value, dt.datetime)
        return value

    def try_tick(self, name: str, interval_seconds: float, owner: str) -> Tick | None:
        """Claim this period's run of periodic task ``name``: exactly one replica gets it.

        Returns the tick to the owner, or None when another replica owns this tick or it is not
        due yet. The owner calls :meth:`tick_succeeded` once the run has done its work; until
        then every later tick starts from the last one that succeeded.
        """
        with self._write() as connection:
            now = self.now(connection)
            step = dt.timedelta(seconds=interval_seconds)
            row = connection.execute(select(schedules).where(schedules.c.name == name)).first()
            if row is None:
                created = connection.execute(
                    self._insert(schedules)
                    .values(
                        name=name,
                        next_run_at=now + step,
                        last_run_at=now,
                        last_owner=owner,
                        first_run_at=now,
                    )
                    .on_conflict_do_nothing(index_elements=["name"])
                    .returning(schedules.c.name)
                ).scalar()
                return Tick(name=name, at=now, since=EPOCH) if created else None
            seen = row.next_run_at
            if seen.tzinfo is None:
                seen = seen.replace(tzinfo=dt.UTC)
            if seen > now:
                return None
            result = connection.execute(
                update(schedules)
                .where(schedules.c.name == name, schedules.c.next_run_at == row.next_run_at)
                .values(
                    next_run_at=now + step,
                    last_run_at=now,
                    last_owner=owner,
                    # a row a replica of an older version made has none: this tick is the first
                    first_run_at=func.coalesce(
                        schedules.c.first_run_at, literal(now, schedules.c.first_run_at.type)
                    ),
                )
            )
            if result.rowcount != 1:
                return None
            return Tick(name=name, at=now, since=row.succeeded_at or EPOCH)

    def tick_succeeded(self, tick: Tick) -> None:
        """Record that ``tick``'s run did its work: later ticks start from ``tick.at``."""
        with self._write() as connection:
            connection.execute(
                update(schedules)
                .where(
                    schedules.c.name == tick.name,
                    schedules.c.succeeded_at.is_(None) | (schedules.c.succeeded_at < tick.at),
                )
                .values(succeeded_at=tick.at)
            )

    def purge(
        self,
        older_than: dt.timedelta,
        *,
        chunk_rows: int = PURGE_CHUNK_ROWS,
        stop: Callable[[], bool] = lambda: False,
    ) -> dict[str, int]:
        """Delete events, finished jobs and audit rows older than the retention period.

        The audit rows of a job that is not ``done`` stay, whatever their age: a dead letter
        keeps the history of its runs (``bitrix-sla jobs show``) until it is replayed and done.
        (They used to go after the retention period, dead letters' included.)

        Each transaction deletes at most ``chunk_rows`` rows, and after each one retention
        pauses as long as it took, so a large backlog (the first run after the retention period
        was shortened, say) holds SQLite's one write lock at most half the time, a chunk at a
        time: the webhooks that queue for it commit in the pauses. (Without them the deleting
        thread takes the lock back before a woken waiter runs.) ``stop`` is asked before each
        chunk; what is left is deleted by the next run. Returns the rows deleted per table.
        """
        if chunk_rows < 1:
            raise ValueError("chunk_rows must be at least 1")
        with self._read() as connection:
            cutoff = self.now(connection) - older_than
        removed: dict[str, int] = {}
        for old in _RETENTION:
            removed[old.table.name] = self._purge(old, cutoff, chunk_rows, stop)
        return removed

    def _purge(
        self, old: _Retained, cutoff: dt.datetime, chunk_rows: int, stop: Callable[[], bool]
    ) -> int:
        """Delete the rows of ``old.table`` older than ``cutoff`` that may go, ``chunk_rows``
        old rows per transaction; returns how many.

        The chunks walk the old rows in the order of ``(at, id)``, on the index of ``at``, each
        after the last row of the one before, so a row kept (an old dead job, its audit rows) is
        read once per run, not again by every later chunk; and a chunk whose rows are all kept
        does not end the run. Which rows of a chunk go is decided on the chunk, so the DELETE
        finds its rows by primary key (a condition on the table, ``status = 'done'`` say, lets
        SQLite pick that column's index and read every done job)."""
        table, at = old.table, old.at
        order = (at, table.c.id)
        removed = 0
        after: tuple[Any, ...] | None = None  # (at, id) of the previous chunk's last old row
        while not stop():
            began = time.monotonic()
            window = [at < cutoff]
            if after is not None:
                seen = tuple_(literal(after[0], at.type), literal(after[1], table.c.id.type))
                window.append(tuple_(*order) > seen)
            last = select(*order).where(*window).order_by(*order).offset(chunk_rows - 1).limit(1)
            chunk = (
                select(table.c.id, *old.columns)
                .where(*window)
                .order_by(*order)
                .limit(chunk_rows)
                .subquery("chunk")
            )
            doomed = select(chunk.c.id)
            if old.deletable is not None:
                doomed = doomed.where(old.deletable(chunk))
            with self._write() as connection:
                row = connection.execute(last).first()
                removed += connection.execute(
                    delete(table).where(table.c.id.in_(doomed.scalar_subquery()))
                ).rowcount
            if row is None:  # fewer than chunk_rows old rows were left: that was all of them
                break
            after = tuple(row)
            time.sleep(time.monotonic() - began)
        return removed
