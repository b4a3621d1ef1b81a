"""Retention: events, finished jobs and audit rows older than the retention period go.

The audit rows of a job that is not ``done`` stay (the last rule in
:mod:`connector.pipeline.store`). The rows go a chunk per short transaction, with a pause
after each, so that a large backlog does not keep SQLite's one write lock from the webhooks
waiting for it (see :meth:`Retention.purge`).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from sqlalchemy import (
    Column,
    ColumnElement,
    Subquery,
    Table,
    delete,
    exists,
    literal,
    select,
    tuple_,
)

from connector.pipeline.db import decisions, events, jobs
from connector.pipeline.store.base import StoreBase

#: rows one retention transaction deletes at most (200 events of 12 KB: about 30 ms of the write
#: lock on a 2-vCPU VM); between two, retention pauses as long as the last one took
PURGE_CHUNK_ROWS = 200


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


class Retention(StoreBase):
    """Deleting what is older than the retention period."""

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
