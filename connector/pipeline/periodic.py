"""The periodic jobs: the reconciliation sweep, event retention and (SQLite) backups.

Helpdesks give up on webhooks silently (Zammad after a few attempts, Znuny after its configured
retries), so a sweep asks every helpdesk for the open tickets changed since the previous sweep
and queues them. The queued job itself is the staleness check: it reads the ticket and writes
only what differs, so an up-to-date ticket costs one read and no write.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Mapping
from pathlib import Path

from connector.errors import BackupStopped
from connector.helpdesks.base import HelpdeskAdapter
from connector.pipeline.backup import backup
from connector.pipeline.store import EPOCH, JobStore
from connector.pipeline.worker import PeriodicTask

log = logging.getLogger(__name__)

#: the reconciliation sweep's name in the ``schedules`` table
RECONCILE = "reconcile"


def reconciliation(
    store: JobStore,
    adapters: Mapping[tuple[str, str], HelpdeskAdapter],
    interval_seconds: float,
    overlap: dt.timedelta = dt.timedelta(minutes=2),
) -> PeriodicTask:
    """Queue open tickets changed since the last successful sweep (minus an overlap for clock
    skew). A sweep that fails (a helpdesk down) or is cut short by shutdown is not a success, so
    the next one covers its window again: re-queueing a ticket costs one read.

    Before the first success a sweep covers the changes since one interval before the task's
    first tick (older ones are for ``backfill``), and so does every sweep until one succeeds:
    the window of a failed first sweep is never skipped."""
    step = dt.timedelta(seconds=interval_seconds)

    def sweep(last_success: dt.datetime, stopping: threading.Event) -> int:
        if last_success == EPOCH:  # none yet: recent changes only; backfill does the rest
            last_success = (store.first_tick(RECONCILE) or store.now()) - step
        since = last_success - overlap
        queued = 0
        for (kind, instance), adapter in adapters.items():
            for ticket_id in adapter.changed_since(since):
                if stopping.is_set():
                    log.info("reconciliation sweep stopped for shutdown after %d tickets", queued)
                    return queued
                store.enqueue(kind, instance, ticket_id, "sweep")
                queued += 1
        log.info("reconciliation sweep since %s queued %d tickets", since.isoformat(), queued)
        return queued

    return PeriodicTask(RECONCILE, interval_seconds, sweep)


def retention(store: JobStore, keep: dt.timedelta, interval_seconds: float = 3600) -> PeriodicTask:
    """Delete events, finished jobs and audit rows older than ``keep``, in short transactions
    (see :meth:`JobStore.purge`); shutdown stops it between two of them."""

    def purge(_last_success: dt.datetime, stopping: threading.Event) -> dict[str, int]:
        removed = store.purge(keep, stop=stopping.is_set)
        log.info("retention removed %s", removed)
        return removed

    return PeriodicTask("retention", interval_seconds, purge)


def backups(database: Path, directory: Path, keep: int, interval_seconds: float) -> PeriodicTask:
    """Copy the SQLite store into ``directory`` (created, owner-only, if missing) with
    :func:`connector.pipeline.backup.backup`, keeping the ``keep`` newest copies. A copy that
    fails (the disk full, say) raises, so the tick is not a success and the metric of the last
    successful backup says so."""

    def copy(_last_success: dt.datetime, stopping: threading.Event) -> str:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            snapshot, removed = backup(database, directory, keep=keep, stop=stopping.is_set)
        except BackupStopped:  # abandoned for shutdown: the worker logs it as cut short
            return ""
        log.info(
            "backed up the job store to %s: %s; removed %d older",
            snapshot.path,
            snapshot.describe(),
            len(removed),
        )
        return str(snapshot.path)

    return PeriodicTask("backup", interval_seconds, copy)
