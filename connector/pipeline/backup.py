"""Online backup and restore of the SQLite job store, through SQLite's backup API.

Copying the database file of a running service is not a backup. In WAL mode the latest
commits live in the ``-wal`` file until a checkpoint moves them, so a copy of the main file
alone misses them, and a copy taken mid-checkpoint is torn. Putting a file back is worse: if
the old ``-wal`` file is left beside it, SQLite replays that log onto the restored pages at the
next open and corrupts the database.

:func:`backup` reads the database in one read transaction (in WAL mode that blocks no writer),
so the copy is the state after some commit, with nothing half-written. It copies
:data:`STEP_PAGES` pages at a time inside that transaction, so commits made meanwhile neither
restart it nor get into it, and it can stop between two steps: at shutdown, or on Ctrl-C,
without waiting for a large database to be copied to the end. It writes a single
self-contained file (rollback journal, no ``-wal``), checks it with ``PRAGMA integrity_check``,
makes it durable and only then gives it its name, readable by the owner only (it holds the
webhook bodies). :func:`restore` writes a checked backup into the live database through the
same API, in one write transaction: other connections, a running service included, see the
old content or the restored one, never a mix, and no file is swapped under them.

PostgreSQL has its own tools (``pg_dump``, base backups); these functions are SQLite only.
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from connector.errors import BackupError, BackupStopped
from connector.pipeline.db import LATEST

PREFIX = "bitrix-sla-"
SUFFIX = ".db"
#: seconds a backup or restore waits for a lock the service holds (as the store itself does)
BUSY_TIMEOUT_SECONDS = 30
#: pages a backup copies between two checks for a stop (4 MiB with SQLite's 4 KiB pages)
STEP_PAGES = 1024
#: tables a job store has from its first schema version on
TABLES = ("schema_version", "events", "jobs", "decisions", "schedules")


class Snapshot(BaseModel):
    """What one job-store file holds."""

    model_config = ConfigDict(frozen=True)

    path: Path
    size_bytes: int
    schema_version: int
    events: int
    jobs: int
    newest_event: dt.datetime | None

    def describe(self) -> str:
        newest = self.newest_event.isoformat(timespec="seconds") if self.newest_event else "-"
        return (
            f"{self.events} events (newest {newest}), {self.jobs} jobs, schema version "
            f"{self.schema_version}, {self.size_bytes / 1e6:.1f} MB"
        )


def backup_name(now: dt.datetime) -> str:
    """``bitrix-sla-20261129T001500.123Z.db``: names that sort in the order they were taken."""
    moment = now.astimezone(dt.UTC)
    return f"{PREFIX}{moment:%Y%m%dT%H%M%S}.{moment.microsecond // 1000:03d}Z{SUFFIX}"


def backup(
    database: Path,
    destination: Path,
    *,
    keep: int | None = None,
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    stop: Callable[[], bool] = lambda: False,
) -> tuple[Snapshot, list[Path]]:
    """Copy the live ``database`` to ``destination``; returns the copy and the old backups
    removed.

    Args:
        database: the job store's SQLite file (the service may be running).
        destination: a new file, or an existing directory to put a time-named backup in.
        keep: with a directory, how many of its backups (``bitrix-sla-*.db``) to keep,
            newest first, counting this one; the older ones are removed.
        stop: asked between two steps of the copy; when it says yes, the copy is abandoned.

    Raises:
        BackupError: no database at ``database``, the destination exists or has no parent
            directory, ``keep`` was given with a file, or the copy failed its check.
        BackupStopped: ``stop`` ended it; no file is left and no old backup removed.
    """
    if not database.is_file():
        raise BackupError(f"{database}: no database file here (check DATABASE_URL)")
    if destination.is_dir():
        target = destination / backup_name(now())
    elif keep is not None:
        raise BackupError(f"{destination}: --keep needs a directory to keep backups in")
    else:
        target = destination
    if target.exists():
        raise BackupError(f"{target}: already exists; a backup never overwrites a file")
    if not target.parent.is_dir():
        raise BackupError(f"{target.parent}: no such directory")
    partial = target.with_name(f".{target.name}.partial")
    partial.unlink(missing_ok=True)  # left by a backup that was killed
    try:
        # created owner-only before SQLite opens it: the copy holds customer data
        os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        with _connect(database) as source, _connect(partial) as copy:
            source.execute("BEGIN")  # one snapshot for every step (no write lock: WAL)
            source.execute("SELECT count(*) FROM sqlite_master").fetchone()
            source.backup(copy, pages=STEP_PAGES, progress=_until(stop, database))
            source.execute("COMMIT")
            copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
            _check(copy, target)
            made = _describe(copy, partial)
        _fsync(partial)
        os.replace(partial, target)
        _fsync(target.parent)
    except sqlite3.Error as exc:
        raise BackupError(f"{database}: backup failed: {exc}") from None
    except OSError as exc:
        raise BackupError(f"{target}: cannot write the backup: {exc.strerror}") from None
    finally:
        partial.unlink(missing_ok=True)
    removed = _prune(target.parent, keep) if keep is not None else []
    return made.model_copy(update={"path": target, "size_bytes": target.stat().st_size}), removed


def restore(database: Path, source: Path) -> tuple[Snapshot, Snapshot | None]:
    """Replace the content of ``database`` with the backup ``source``, in one transaction.

    Returns what the backup holds and what the database held before (None if it did not
    exist or could not be read: restoring is how a damaged database is mended). The caller runs
    the migrations afterwards when the backup is of an older schema.

    Raises:
        BackupError: ``source`` is not a readable job-store backup (not SQLite, damaged, not
            ours, or from a newer version of the connector), or the write failed; the database
            is then unchanged.
    """
    restored = inspect_file(source)
    if restored.schema_version > LATEST:
        raise BackupError(
            f"{source}: schema version {restored.schema_version} is newer than this "
            f"connector's ({LATEST}); restore it with the version that made it"
        )
    before = current(database)
    try:
        with _connect(source, read_only=True) as backup_copy, _connect(database) as live:
            backup_copy.backup(live)
    except sqlite3.Error as exc:
        raise BackupError(
            f"{database}: restore failed, nothing changed: {exc}. If this file itself is "
            "damaged, stop the service, move it and its -wal and -shm files aside, and restore "
            "again"
        ) from None
    return restored, before


def current(database: Path) -> Snapshot | None:
    """What the live database holds, without the integrity check; None if there is no such
    file or it cannot be read."""
    if not database.is_file():
        return None
    try:
        with _connect(database) as connection:
            return _describe(connection, database)
    except (sqlite3.Error, BackupError):
        return None


def inspect_file(path: Path) -> Snapshot:
    """Check that the backup ``path`` is an intact job-store database; say what it holds.

    Raises:
        BackupError: it does not exist, is not SQLite, fails ``integrity_check`` or lacks the
            job store's tables.
    """
    if not path.is_file():
        raise BackupError(f"{path}: no such file")
    try:
        with _connect(path, read_only=True) as connection:
            _check(connection, path)
            return _describe(connection, path)
    except sqlite3.Error as exc:
        raise BackupError(f"{path}: not a readable SQLite database: {exc}") from None


def _describe(connection: sqlite3.Connection, path: Path) -> Snapshot:
    names = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    missing = [table for table in TABLES if table not in names]
    if missing:
        raise BackupError(f"{path}: not a job store (no table {', '.join(missing)})")
    (version,) = connection.execute("SELECT max(version) FROM schema_version").fetchone()
    events = connection.execute("SELECT count(*), max(received_at) FROM events")
    event_count, newest = events.fetchone()
    (job_count,) = connection.execute("SELECT count(*) FROM jobs").fetchone()
    return Snapshot(
        path=path,
        size_bytes=path.stat().st_size,
        schema_version=int(version or 0),
        events=int(event_count),
        jobs=int(job_count),
        newest_event=_instant(newest),
    )


def _until(stop: Callable[[], bool], database: Path) -> Callable[[int, int, int], None]:
    """The backup API's progress callback: raising from it abandons the copy."""

    def progress(_status: int, remaining: int, total: int) -> None:
        if remaining and stop():
            raise BackupStopped(
                f"{database}: backup stopped for shutdown after {total - remaining} of "
                f"{total} pages; no file was written"
            )

    return progress


def _connect(path: Path, *, read_only: bool = False) -> closing[sqlite3.Connection]:
    """A connection that is closed (not only committed) when the block ends. A backup is read
    read-only; a live database is not (opening one in WAL mode read-only fails when no other
    connection has it open)."""
    uri = path.resolve().as_uri() + ("?mode=ro" if read_only else "")
    return closing(
        sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
    )


def _check(connection: sqlite3.Connection, path: Path) -> None:
    problems = [row[0] for row in connection.execute("PRAGMA integrity_check")]
    if problems != ["ok"]:
        raise BackupError(f"{path}: integrity check failed: {'; '.join(problems[:3])}")


def _prune(directory: Path, keep: int) -> list[Path]:
    """Remove all but the ``keep`` newest backups in ``directory``."""
    backups = sorted(directory.glob(f"{PREFIX}*{SUFFIX}"), key=lambda path: path.name)
    removed = backups[: max(len(backups) - keep, 0)]
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _instant(value: object) -> dt.datetime | None:
    """A ``received_at`` as stored (SQLite keeps it as text), aware in UTC."""
    if value is None:
        return None
    moment = dt.datetime.fromisoformat(str(value))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)
