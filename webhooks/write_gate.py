"""One SQLite writer at a time across the edge's gunicorn workers, queued on a kernel lock.

SQLite admits one writer; the others wait in its busy handler, which sleeps 1, 2, 5 … 100 ms
between tries and misses locks released in between. With four gunicorn workers storing
webhooks that made the p99 of a stored webhook 0.7 s under load (measured with
``benchmarks/bench_ingest.py``) although one ingest holds the lock for about 1 ms. The job
store already queues the writers of one process on a thread lock; this gate does the same for
the edge's processes with ``flock`` on a file beside the database: a waiter is woken by the
kernel the moment the holder lets go, so the wait is the queue, not the sleep schedule.

Only the edge takes the gate; a worker process still meets the edge in SQLite's busy handler,
which is rare (one claim and one finish per job, against many webhooks per job). On
PostgreSQL, or an in-memory SQLite database, the gate does nothing.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from connector.pipeline.db import sqlite_path
from connector.settings import Settings

SUFFIX = ".edge-lock"


class WriteGate:
    """A cross-process lock for the edge's writes to one SQLite file.

    Args:
        path: the lock file; None for a gate that never waits (PostgreSQL).
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._fd: int | None = None
        self._pid = 0
        self._threads = threading.Lock()  # flock is per open file, not per thread

    @classmethod
    def for_settings(cls, settings: Settings) -> WriteGate:
        """A gate beside the SQLite database file, or a no-op gate for other engines."""
        database = sqlite_path(settings.database_url.get_secret_value())
        return cls(None if database is None else database.with_name(database.name + SUFFIX))

    def _descriptor(self, path: Path) -> int:
        """The lock file, opened once per process: a descriptor inherited over ``fork`` (gunicorn
        ``--preload``) shares its lock with the parent and would exclude nobody."""
        if self._fd is None or self._pid != os.getpid():
            self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._pid = os.getpid()
        return self._fd

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Run the block while holding the gate (blocking until it is free)."""
        if self.path is None:
            yield
            return
        with self._threads:
            descriptor = self._descriptor(self.path)
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(descriptor, fcntl.LOCK_UN)

    def close(self) -> None:
        """Close the lock file (tests; a server process keeps it for its lifetime)."""
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)
        self._fd = None
