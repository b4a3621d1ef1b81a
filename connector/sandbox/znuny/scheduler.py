"""The Znuny daemon's GenericInterface tasks: a pool of workers, out of order, with retries.

Facts (§1): an ``Asynchronous: '1'`` event adds a scheduler task that ``bin/znuny.Daemon.pl``
runs with up to ``Daemon::SchedulerTaskWorker::MaximumWorkers`` (5) tasks in parallel;
**delivery order is not event order** [live], and **without the daemon nothing asynchronous is
sent** [live]. A retry requested by the error handling is a future task run by the same
daemon, also for synchronous invokers.

:class:`Daemon` reproduces that: worker threads take due tasks, at random among those due when
``shuffle`` is on (the default), and a task whose attempt failed is put back with the delay
the requester's error handling asked for. :meth:`Daemon.pause` stops taking tasks (the daemon
is down); queued tasks wait for :meth:`Daemon.resume`.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

_log = logging.getLogger(__name__)


@dataclass
class Task:
    """One invoker call waiting to be made (or made again).

    Attributes:
        invoker: the invoker's name in the web service.
        event: the ``Event`` block, fixed when the event was raised.
        ticket_id: the ticket to read at send time.
        asynchronous: whether the subscription was asynchronous.
        attempt: 1 for the first try, 2 for the first retry, ...
        first_attempt: ``time.monotonic()`` of the first try, for ``RetryPeriodMax``.
        due: ``time.monotonic()`` when the task may run.
    """

    invoker: str
    event: dict[str, Any]
    ticket_id: int
    asynchronous: bool = True
    attempt: int = 1
    first_attempt: float | None = None
    due: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class Delivery:
    """One request an invoker made to the remote system (the Debugger's view).

    Attributes:
        invoker: the invoker's name.
        event: the event name (``TicketCreate`` ...).
        ticket_id: the ticket, as an int.
        attempt: 1 for the first try, 2 for the first retry, ...
        asynchronous: sent by the daemon (True) or inline in the changing request (False).
        url: where it was sent (without credentials).
        payload: the JSON body sent: ``{"Event": {...}, "Ticket": {...}}``.
        status: the remote's HTTP status; None when no answer came.
        error: why the attempt counts as failed; None on success.
        retry_in: seconds until the retry the error handling scheduled; None: no retry.
    """

    invoker: str
    event: str
    ticket_id: int
    attempt: int
    asynchronous: bool
    url: str
    payload: dict[str, Any]
    status: int | None
    error: str | None
    retry_in: float | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


#: runs one task; returns the attempt's record (with ``retry_in`` when it must be retried)
Runner = Callable[[Task], Delivery]


class Daemon:
    """Worker threads that run due tasks; see the module docstring."""

    def __init__(self, runner: Runner, *, workers: int = 5, shuffle: bool = True) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self._runner = runner
        self._workers = workers
        self._shuffle = shuffle
        self._random = random.Random()
        self._cond = threading.Condition()
        self._tasks: list[Task] = []
        self._busy = 0
        self._paused = False
        self._stopping = False
        self._threads: list[threading.Thread] = []
        self._deliveries: list[Delivery] = []

    def add(self, task: Task) -> None:
        with self._cond:
            self._tasks.append(task)
            self._cond.notify()

    def record(self, delivery: Delivery) -> None:
        """Keep a delivery made outside the daemon (a synchronous invoker)."""
        with self._cond:
            self._deliveries.append(delivery)

    def deliveries(self) -> list[Delivery]:
        with self._cond:
            return list(self._deliveries)

    @property
    def pending(self) -> int:
        """Tasks queued, waiting for a retry, or running."""
        with self._cond:
            return len(self._tasks) + self._busy

    def start(self) -> None:
        with self._cond:
            if self._threads:
                return
            self._stopping = False
            self._threads = [
                threading.Thread(target=self._work, name=f"znuny-daemon-{n}", daemon=True)
                for n in range(self._workers)
            ]
            for thread in self._threads:
                thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the tasks in progress; queued tasks are kept."""
        with self._cond:
            threads, self._threads = self._threads, []
            self._stopping = True
            self._cond.notify_all()
        for thread in threads:
            thread.join(timeout)

    def pause(self) -> None:
        """Stop taking tasks, like a stopped ``znuny.Daemon.pl``."""
        with self._cond:
            self._paused = True

    def resume(self) -> None:
        with self._cond:
            self._paused = False
            self._cond.notify_all()

    def _next(self) -> Task | None:
        with self._cond:
            while not self._stopping:
                now = time.monotonic()
                due = [task for task in self._tasks if task.due <= now]
                if due and not self._paused:
                    if self._shuffle:
                        task = self._random.choice(due)
                    else:
                        task = min(due, key=lambda t: t.due)
                    self._tasks.remove(task)
                    self._busy += 1
                    return task
                waits = [task.due - now for task in self._tasks if task.due > now]
                self._cond.wait(None if self._paused or not waits else min(waits))
            return None

    def _work(self) -> None:
        while (task := self._next()) is not None:
            try:
                delivery = self._runner(task)
            except Exception:  # a worker must survive anything
                _log.exception("znuny sandbox: task %s failed unexpectedly", task.invoker)
                delivery = None
            with self._cond:
                self._busy -= 1
                if delivery is None:
                    continue
                self._deliveries.append(delivery)
                if delivery.retry_in is not None:
                    task.attempt += 1
                    task.due = time.monotonic() + delivery.retry_in
                    self._tasks.append(task)
                    self._cond.notify()
