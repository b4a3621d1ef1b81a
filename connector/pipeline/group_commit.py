"""Group commit: the webhooks of concurrent requests share one transaction and one fsync.

On SQLite every commit is an fsync (``synchronous=FULL``) taken under the one write lock, so
a transaction per webhook caps a process at a few hundred webhooks per second however many
threads serve requests. Here the request threads of a process queue their items, and the first
thread to find nobody committing becomes the leader:

1. it takes the write lock (``hold``; on SQLite the process lock and the edge's cross-process
   gate), which may mean waiting while other processes commit;
2. only then does it take everything queued (up to ``max_batch``): what arrived while it
   waited rides along, so the busier the database, the fuller each transaction;
3. it runs the batch in one transaction, wakes each waiting thread with its own result — only
   after the commit, so a 202 still means "on disk" — and, if more items have arrived, hands
   the lead to the oldest of them.

There is no committer thread: the batch runs on a thread that had to wait anyway, which saves
a thread wake-up and a contender for the GIL per batch. If a batch fails, its items are run one
by one (outside the lock, each taking it itself), so one bad item cannot fail the others.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Generic, TypeVar

log = logging.getLogger(__name__)
Item = TypeVar("Item")
Result = TypeVar("Result")


class _Slot(Generic[Item, Result]):
    """One submitted item, the thread waiting for it, and what it gets back."""

    __slots__ = ("error", "item", "lead", "result", "wake")

    def __init__(self, item: Item) -> None:
        self.item = item
        self.wake = threading.Lock()
        self.wake.acquire()  # released once: with the outcome, or with the lead
        self.lead = False
        self.result: Result | None = None
        self.error: BaseException | None = None


class GroupCommit(Generic[Item, Result]):
    """Runs submitted items in batches, led by one of the submitting threads.

    Args:
        run_batch: runs a list of items in ONE transaction; returns one result per item.
            It is called with ``hold`` held.
        run_one: runs a single item in its own transaction (the fallback after a failed
            batch); called WITHOUT ``hold``, so it takes whatever locks it needs itself.
        max_batch: the most items one transaction takes.
        hold: the lock to hold while a batch is drawn from the queue and run.
    """

    def __init__(
        self,
        run_batch: Callable[[list[Item]], list[Result]],
        run_one: Callable[[Item], Result],
        max_batch: int = 64,
        hold: Callable[[], AbstractContextManager[object]] = nullcontext,
    ) -> None:
        self._run_batch = run_batch
        self._run_one = run_one
        self._max_batch = max_batch
        self._hold = hold
        self._lock = threading.Lock()
        self._waiting: list[_Slot[Item, Result]] = []
        self._leading = False
        self.batches = 0
        self.items = 0

    def submit(self, item: Item) -> Result:
        """Run ``item`` with whatever else is waiting; returns its result after the commit."""
        slot: _Slot[Item, Result] = _Slot(item)
        with self._lock:
            self._waiting.append(slot)
            lead = not self._leading
            self._leading = True
        if not lead:
            slot.wake.acquire()  # a leader ran our item, or passed us the lead
        if lead or slot.lead:
            self._lead(slot)
        if slot.error is not None:
            raise slot.error
        return slot.result  # type: ignore[return-value]

    def _lead(self, own: _Slot[Item, Result]) -> None:
        """Run one batch, which holds ``own`` (the oldest queued item), then pass the lead on.

        Whatever happens, every item of the batch gets a result or an error, its thread is
        woken, and the lead goes to the next queued item or is given up.
        """
        batch: list[_Slot[Item, Result]] = []
        failed = False
        try:
            with self._hold():
                with self._lock:
                    batch = self._waiting[: self._max_batch]
                    del self._waiting[: self._max_batch]
                try:
                    results = self._run_batch([slot.item for slot in batch])
                except Exception:
                    failed = True
                else:
                    for slot, result in zip(batch, results, strict=True):
                        slot.result = result
                    self.batches += 1
                    self.items += len(batch)
            if failed:
                log.warning("a batch of %d failed; storing its items one by one", len(batch))
                for slot in batch:
                    try:
                        slot.result = self._run_one(slot.item)
                    except Exception as exc:
                        slot.error = exc
        except BaseException as exc:  # the lock failed, or an interrupt
            if not batch:
                with self._lock:
                    self._waiting.remove(own)
                batch = [own]
            for slot in batch:
                slot.error = exc
        finally:
            with self._lock:
                if self._waiting:
                    successor = self._waiting[0]
                    successor.lead = True
                    successor.wake.release()
                else:
                    self._leading = False
            for slot in batch:
                if slot is not own:
                    slot.wake.release()
