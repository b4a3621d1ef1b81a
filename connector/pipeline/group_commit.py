"""Group commit: the webhooks of concurrent requests share one transaction and one fsync.

On SQLite every commit is an fsync (``synchronous=FULL``) taken under the one write lock, so
a transaction per webhook caps a process at a few hundred webhooks per second however many
threads serve requests. Here each request thread hands its item to a committer thread and
waits; the committer takes everything waiting (up to ``max_batch``), runs it in one
transaction, and wakes each thread with its own result — still only after the commit, so a
202 still means "on disk". If a batch fails, its items are retried one by one, so one bad
item cannot fail the others.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Generic, TypeVar

log = logging.getLogger(__name__)
Item = TypeVar("Item")
Result = TypeVar("Result")


class GroupCommit(Generic[Item, Result]):
    """Runs submitted items in batches on one committer thread per process.

    Args:
        run_batch: runs a list of items in ONE transaction; returns one result per item.
        run_one: runs a single item in its own transaction (the fallback after a failure).
        max_batch: the most items one transaction takes.
    """

    def __init__(
        self,
        run_batch: Callable[[list[Item]], list[Result]],
        run_one: Callable[[Item], Result],
        max_batch: int = 64,
    ) -> None:
        self._run_batch = run_batch
        self._run_one = run_one
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[tuple[Item, Future[Result]]] = queue.SimpleQueue()
        self._started_in: int | None = None
        self._lock = threading.Lock()
        self.batches = 0
        self.items = 0

    def submit(self, item: Item) -> Result:
        """Run ``item`` with whatever else is waiting; returns its result after the commit."""
        self._ensure_committer()
        future: Future[Result] = Future()
        self._queue.put((item, future))
        return future.result()

    def _ensure_committer(self) -> None:
        # gunicorn forks after import: a thread started in the parent does not exist in the
        # child, so start one per process, lazily.
        pid = os.getpid()
        if self._started_in == pid:
            return
        with self._lock:
            if self._started_in != pid:
                self._queue = queue.SimpleQueue()
                thread = threading.Thread(target=self._commit_forever, name="group-commit")
                thread.daemon = True
                thread.start()
                self._started_in = pid

    def _commit_forever(self) -> None:
        waiting = self._queue
        while True:
            batch = [waiting.get()]
            while len(batch) < self._max_batch:
                try:
                    batch.append(waiting.get_nowait())
                except queue.Empty:
                    break
            self._commit(batch)

    def _commit(self, batch: list[tuple[Item, Future[Result]]]) -> None:
        try:
            results = self._run_batch([item for item, _ in batch])
        except Exception:
            log.warning("a batch of %d failed; storing its items one by one", len(batch))
            for item, future in batch:
                try:
                    future.set_result(self._run_one(item))
                except Exception as exc:
                    future.set_exception(exc)
            return
        self.batches += 1
        self.items += len(batch)
        for (_, future), result in zip(batch, results, strict=True):
            future.set_result(result)
