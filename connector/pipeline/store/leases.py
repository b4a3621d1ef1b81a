"""A run's lease: claimed, renewed, and ended (done, back in the queue with backoff, or dead).

A claim takes the oldest due job whose ticket has no running job, under a lease its worker
renews (``heartbeat``) and a token of its own. Every write that renews or ends the run is
fenced on that token and that worker (``_fenced``); on PostgreSQL it locks the job's row first.
A run put back in the queue merges into the queued job the ticket got meanwhile, if any
(``_requeue``); a run whose worker stopped is put back by the reaper (``reap``) once its lease
expires. Each run's end is audited, in the transaction that ends it, in the ``decisions``
table (``_record``).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import and_, exists, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from connector.pipeline.db import decisions, jobs
from connector.pipeline.store.base import StoreBase
from connector.pipeline.store.records import Job, RunRecord, Status
from connector.text import storable


class Leases(StoreBase):
    """Claiming jobs and ending their runs (``claim``, ``heartbeat``, ``finish``, ``fail``,
    ``reap``)."""

    def _claimable(self, now: dt.datetime) -> Any:
        running = jobs.alias("running")
        blocked = exists().where(and_(running.c.key == jobs.c.key, running.c.status == "running"))
        return (
            select(jobs.c.id)
            .where(jobs.c.status == "queued", jobs.c.run_at <= now, ~blocked)
            .order_by(jobs.c.run_at, jobs.c.id)
            .limit(1)
        )

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
