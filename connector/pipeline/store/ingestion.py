"""Webhooks in: each event stored once, and coalesced into its ticket's one queued job.

The hot path: every webhook passes here before the edge answers. A batch, of one webhook or
many, is two multi-row statements in one write transaction (built once per store and run past
``Connection.execute``: :mod:`connector.pipeline.driver_sql`); with group commit the requests
of a process share the transaction and its fsync (:mod:`connector.pipeline.group_commit`).

The settle window (a burst of events becomes one run) and group commit are this path's
settings, so :class:`Ingestion` has the store's constructor.
"""

from __future__ import annotations

import datetime as dt
import os
from contextlib import suppress
from operator import itemgetter
from typing import Any

from sqlalchemy import Engine, and_, case
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from connector import metrics
from connector.helpdesks.base import IncomingEvent
from connector.pipeline import db
from connector.pipeline.db import events, jobs
from connector.pipeline.driver_sql import RowsStatement
from connector.pipeline.group_commit import GroupCommit
from connector.pipeline.retry import Backoff
from connector.pipeline.store.base import Clock, StoreBase
from connector.pipeline.store.records import IngestResult, job_key

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

_DUPLICATE = IngestResult(duplicate=True, job_id=None)


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


class Ingestion(StoreBase):
    """Storing webhooks and queueing their tickets' jobs (``ingest``, ``ingest_many``,
    ``enqueue``)."""

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
        super().__init__(engine, backoff, clock)
        self.settle = dt.timedelta(seconds=settle_seconds)
        self.settle_max = dt.timedelta(seconds=max(settle_max_seconds, settle_seconds))
        self._prepared: tuple[bool, tuple[RowsStatement, RowsStatement]] | None = None
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
