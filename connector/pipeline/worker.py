"""The worker: slots that claim and run jobs, a lease keeper, a reaper and periodic ticks.

The lease keeper (which also reaps) and the periodic tasks run on threads of their own: a
reconciliation sweep over thousands of tickets, or a retention run over a large backlog, takes
minutes, and while the lease keeper waited for one the worker's leases would expire and another
replica would run the same tickets again.

Shutdown is graceful: :meth:`Worker.stop` (wired to SIGTERM by the CLI) stops claiming, lets
running jobs finish within the grace period, and leaves any that do not to the reaper of the
next worker (their leases expire); nothing is lost either way. The lease keeper stops last:
until the slots have finished or the grace period is over, it renews their leases, or another
replica would take over a job that is still running here.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError

from connector import metrics
from connector.errors import PermanentError, TransientError
from connector.pipeline.db import driver_message
from connector.pipeline.processor import Processor
from connector.pipeline.store import Job, JobStore, RunRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PeriodicTask:
    """Work that runs once per ``interval_seconds`` across all replicas.

    ``run(since, stopping)`` receives the time of the last tick whose run succeeded (the epoch
    if none has) and the worker's stop event, which a long run checks to end early. A run
    succeeds when it returns while the worker is not stopping; one that raises or is cut short
    is done again from the same ``since`` at a later tick.
    """

    name: str
    interval_seconds: float
    run: Callable[[dt.datetime, threading.Event], object]


class Outage:
    """A run of failures of one kind of database call, as the worker's threads meet it.

    During an outage every attempt fails the same way, so the log gets one warning when it
    starts, a reminder a minute while it lasts and one line when it ends; each failure's
    traceback goes to DEBUG (a failure that is not the database's is an error, logged with its
    traceback every time). :meth:`failed` also says how long to pause before the next
    attempt: ``first_pause`` doubling with every failure (of any thread), up to ``max_pause``.
    """

    def __init__(
        self,
        what: str,
        then: str,
        *,
        first_pause: float,
        max_pause: float = 10.0,
        remind_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.what = what
        self.then = then
        self.first_pause = first_pause
        self.max_pause = max(max_pause, first_pause)
        self.remind_seconds = remind_seconds
        self.failures = 0
        self._clock = clock
        self._since: float | None = None
        self._reminded = 0.0
        self._lock = threading.Lock()

    def failed(self, exc: BaseException) -> float:
        """Record one failed attempt; returns the seconds to pause before the next one."""
        with self._lock:
            now = self._clock()
            self.failures += 1
            if self._since is None:
                self._since = self._reminded = now
                log.warning("%s failed: %s; %s", self.what, driver_message(exc), self.then)
            elif now - self._reminded >= self.remind_seconds:
                self._reminded = now
                log.warning(
                    "%s still failing after %.0f s (%d attempts): %s",
                    self.what,
                    now - self._since,
                    self.failures,
                    driver_message(exc),
                )
            pause = self.first_pause * 2.0 ** min(self.failures - 1, 30)
        if isinstance(exc, SQLAlchemyError | OSError):
            log.debug("%s failed", self.what, exc_info=exc)
        else:  # not the database: a bug, which every time deserves its traceback
            log.error("%s failed unexpectedly", self.what, exc_info=exc)
        return min(pause, self.max_pause)

    def recovered(self) -> None:
        """The call worked: end the outage, if there was one (cheap when there was none)."""
        if self._since is None:
            return
        with self._lock:
            if self._since is None:
                return
            log.warning(
                "%s works again after %.0f s (%d failed attempts)",
                self.what,
                self._clock() - self._since,
                self.failures,
            )
            self._since = None
            self.failures = 0


def worker_name() -> str:
    """A name unique to this process: host, pid and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Worker:
    """Claims jobs from the store and runs them on ``concurrency`` threads."""

    def __init__(
        self,
        store: JobStore,
        processor: Processor,
        *,
        concurrency: int = 4,
        lease_seconds: float = 30.0,
        poll_seconds: float = 0.5,
        periodic: tuple[PeriodicTask, ...] = (),
        name: str | None = None,
    ) -> None:
        self.store = store
        self.processor = processor
        self.concurrency = concurrency
        self.lease_seconds = lease_seconds
        self.poll_seconds = poll_seconds
        self.periodic = periodic
        self.name = name or worker_name()
        self.processor.worker = self.name
        self._stopping = threading.Event()
        #: ends the lease keeper, which :meth:`stop` does last
        self._keeper_stopping = threading.Event()
        self._keeper: threading.Thread | None = None
        self._stopped = threading.Event()
        self._wake = threading.Event()
        #: the jobs the slots run, by claim: a stale run of a job that is running again (reaped,
        #: then claimed again by this worker) never ends the entry of the new run
        self._running: dict[tuple[int, str | None], Job] = {}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._last_beat: float | None = None
        # what a lost database looks like from each loop (see Outage)
        self._claims = Outage(
            "claiming jobs", "retrying with backoff", first_pause=max(poll_seconds, 0.05)
        )
        self._records = Outage(
            "recording a job's outcome",
            "the job runs again once its lease has expired",
            first_pause=max(poll_seconds, 0.05),
        )
        self._upkeep = Outage(
            "renewing leases",
            f"retrying every {self.maintenance_seconds:g} s",
            first_pause=self.maintenance_seconds,  # unused: the lease keeper keeps its pace
        )
        self._ticks = Outage(
            "ticking periodic tasks",
            f"retrying every {self.maintenance_seconds:g} s",
            first_pause=self.maintenance_seconds,  # unused: the ticker keeps its pace
        )

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the slots and the maintenance thread; returns at once."""
        self._last_beat = time.monotonic()
        for index in range(self.concurrency):
            thread = threading.Thread(target=self._slot, name=f"slot-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)
        keeper = threading.Thread(target=self._maintain, name="maintenance", daemon=True)
        keeper.start()
        self._threads.append(keeper)
        self._keeper = keeper
        if self.periodic:
            ticker = threading.Thread(target=self._tick, name="periodic", daemon=True)
            ticker.start()
            self._threads.append(ticker)
        log.info("worker %s started with %d slots", self.name, self.concurrency)

    def stop(self, grace_seconds: float = 30.0) -> None:
        """Stop claiming; wait up to ``grace_seconds`` for running jobs to finish.

        Their leases are renewed meanwhile: the lease keeper is stopped last, once the slots
        (and the periodic tasks' thread) have ended or the grace period is over."""
        self._stopping.set()
        self._wake.set()
        deadline = threading.Event()
        timer = threading.Timer(grace_seconds, deadline.set)
        timer.start()
        try:
            for thread in self._threads:
                while thread is not self._keeper and thread.is_alive() and not deadline.is_set():
                    thread.join(timeout=0.1)
        finally:
            timer.cancel()
            self._keeper_stopping.set()
        if self._keeper is not None:
            # it ends at once, unless a renewal is under way: let that one finish
            self._keeper.join(timeout=max(self.maintenance_seconds, 1.0))
        with self._lock:
            left = sorted({job.id for job in self._running.values()})
        if left:
            log.warning("stopped with jobs %s still running; their leases will expire", left)
        self._stopped.set()

    def run_forever(self) -> None:
        """Start and block until :meth:`stop` is called (from a signal handler)."""
        self.start()
        self.wait_stopped()

    def wait_stopped(self) -> None:
        """Block until :meth:`stop` (called from a signal handler) has let running jobs finish."""
        self._stopped.wait()

    def poke(self) -> None:
        """Wake idle slots now (the in-process edge calls this after an ingest)."""
        self._wake.set()

    @property
    def maintenance_seconds(self) -> float:
        """How often the lease keeper renews leases and reaps, and the periodic tasks' thread
        asks for a tick: a third of a lease."""
        return max(self.lease_seconds / 3, 0.05)

    @property
    def busy(self) -> int:
        with self._lock:
            return len(self._running)

    def health(self) -> tuple[bool, str]:
        """Whether the worker is alive: started, not stopping, every thread running, and the
        lease keeper has ticked within three of its intervals (a hung loop fails this)."""
        if self._last_beat is None or not self._threads:
            return False, "not started"
        if self._stopping.is_set():
            return False, "stopping"
        dead = [thread.name for thread in self._threads if not thread.is_alive()]
        if dead:
            return False, f"threads stopped: {', '.join(dead)}"
        age = time.monotonic() - self._last_beat
        limit = 3 * self.maintenance_seconds + 5
        if age > limit:
            return False, f"lease keeper silent for {age:.0f} s (limit {limit:.0f} s)"
        return True, f"{self.busy} of {self.concurrency} slots busy"

    # -- the work ----------------------------------------------------------------------------

    def _slot(self) -> None:
        """Claim and run jobs until stopped. A slot outlives any database failure: a claim that
        fails is tried again after a pause, and a job whose outcome cannot be recorded keeps
        its lease until that expires, when the reaper queues it again (the re-run is a no-op
        where the first run's writes landed)."""
        while not self._stopping.is_set():
            try:
                job = self.store.claim(self.name, self.lease_seconds)
            except Exception as exc:
                self._pause(self._claims.failed(exc))
                continue
            self._claims.recovered()
            if job is None:
                self._pause(self.poll_seconds)
                continue
            with self._lock:
                self._running[(job.id, job.claim)] = job
            try:
                self.run_one(job)
            except Exception as exc:
                self._pause(self._records.failed(exc))
            else:
                self._records.recovered()
            finally:
                with self._lock:
                    self._running.pop((job.id, job.claim), None)

    def _pause(self, seconds: float) -> None:
        """Wait ``seconds``, or less if :meth:`poke` or :meth:`stop` wakes the slots."""
        self._wake.wait(seconds)
        self._wake.clear()

    def run_one(self, job: Job) -> str:
        """Run a claimed job and record its end; returns the job's new status."""
        started = self.processor.clock()
        try:
            record = self.processor.run(job)
        except PermanentError as exc:
            return self._failed(job, started, str(exc), permanent=True)
        except TransientError as exc:
            return self._failed(job, started, str(exc), permanent=False)
        except Exception as exc:  # a bug or a surprise: retry with backoff, dead at the limit
            log.exception("job %s crashed", job.id)
            return self._failed(job, started, f"{type(exc).__name__}: {exc}", permanent=False)
        self.store.finish(job, self.name, record)
        metrics.WRITEBACKS.labels(record.outcome).inc()
        metrics.JOB_LATENCY.observe((record.finished_at - job.created_at).total_seconds())
        return "done"

    def _failed(self, job: Job, started: dt.datetime, error: str, *, permanent: bool) -> str:
        record = RunRecord(
            worker=self.name,
            started_at=started,
            finished_at=self.processor.clock(),
            outcome="failed",
            error=error,
        )
        status = self.store.fail(job, self.name, error, permanent=permanent, record=record)
        metrics.WRITEBACKS.labels("dead" if status == "dead" else "failed").inc()
        if status == "dead":
            metrics.DEAD_JOBS.inc()
            log.error("job %s (ticket %s) is dead: %s", job.id, job.ticket_id, error)
        else:
            log.warning("job %s (ticket %s) failed, will retry: %s", job.id, job.ticket_id, error)
        return status

    def _maintain(self) -> None:
        """Renew leases and reap expired ones, every lease/3 seconds, until :meth:`stop` ends
        it (after the slots, so that leases are renewed throughout the grace period)."""
        while not self._keeper_stopping.wait(self.maintenance_seconds):
            self.keep_leases()

    def keep_leases(self) -> None:
        self._last_beat = time.monotonic()
        with self._lock:
            running = list(self._running.values())
        try:
            for job in running:
                if not self.store.heartbeat(job, self.name, self.lease_seconds):
                    log.warning("lost the lease of job %s", job.id)
            reaped = self.store.reap()
            if reaped:
                log.warning("requeued %d jobs whose worker stopped", reaped)
        except Exception as exc:  # the database: the next round tries again
            self._upkeep.failed(exc)
            return
        self._upkeep.recovered()

    def _tick(self) -> None:
        """Ask for every periodic task's tick, every lease/3 seconds; run those this replica
        wins, one after another, on this thread."""
        while not self._stopping.wait(self.maintenance_seconds):
            self.tick_periodic()

    def tick_periodic(self) -> None:
        """One round of the periodic tasks' thread: claim each task's tick if it is due, run
        the task if this replica won it, and record its success (tests call this directly)."""
        for task in self.periodic:
            if self._stopping.is_set():
                return
            try:
                tick = self.store.try_tick(task.name, task.interval_seconds, self.name)
                if tick is not None and self._run_periodic(task, tick.since):
                    self.store.tick_succeeded(tick)
            except Exception as exc:  # the database: the next round tries again
                self._ticks.failed(exc)
                return
            self._ticks.recovered()

    def _run_periodic(self, task: PeriodicTask, since: dt.datetime) -> bool:
        """Run a task this replica won; whether it did its work. A task's own failure (a
        helpdesk down during the sweep) is logged, never raised."""
        try:
            task.run(since, self._stopping)
        except Exception:
            log.exception(
                "periodic task %s failed; the next tick starts again from %s",
                task.name,
                since.isoformat(),
            )
            return False
        if self._stopping.is_set():
            log.info(
                "periodic task %s cut short by shutdown; the next tick does it again", task.name
            )
            return False
        return True

    def drain(self, timeout_seconds: float = 30.0) -> Iterator[Job]:
        """Run due jobs on the calling thread until none is left (tests, backfill, demo)."""
        stop = threading.Event()
        timer = threading.Timer(timeout_seconds, stop.set)
        timer.start()
        try:
            while not stop.is_set():
                job = self.store.claim(self.name, self.lease_seconds)
                if job is None:
                    return
                self.run_one(job)
                yield job
        finally:
            timer.cancel()
