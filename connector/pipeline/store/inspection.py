"""Inspection and dead letters: what the CLI and the admin endpoints read, and ``replay``.

Jobs, stored webhooks (listed without their bodies; ``get_event`` gives one with its body) and
the audit rows of runs, each read in a read-only transaction. A limit or an id past 64 bits,
which no driver binds, means no limit and no row. ``replay`` queues a dead letter again; like a
failed run's end, it runs again when an ingest queued the ticket meanwhile (``_ending``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection

from connector.pipeline.db import decisions, events, jobs
from connector.pipeline.store.base import StoreBase
from connector.pipeline.store.records import MAX_ID, STATUSES, Job, Status, StoredEvent, _may_exist


class Inspection(StoreBase):
    """Reading jobs, events and audit rows; replaying dead letters."""

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
