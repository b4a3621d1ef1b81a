"""The worker's leases: renewed through the grace period of a stop, and kept per claim.

Jobs here run until the test lets them end (:class:`HeldProcessor`), and the store's clock
moves only when the test moves it, so a lease expires exactly when the test says.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from connector.helpdesks.base import IncomingEvent
from connector.pipeline import db
from connector.pipeline.processor import Processor
from connector.pipeline.store import Job, JobStore, RunRecord
from connector.pipeline.worker import Worker
from connector.policy.decision import Policy
from connector.sandbox.fake_helpdesk import wait_until
from tests.clock import Clock

T0 = dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.UTC)


def _no_policy() -> Policy:
    raise AssertionError("a held run decides nothing")


@dataclass
class HeldProcessor(Processor):
    """Each run waits until the test releases it (by its place in :attr:`started`)."""

    started: list[Job] = field(default_factory=list)
    gates: list[threading.Event] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, job: Job) -> RunRecord:
        began = self.clock()
        gate = threading.Event()
        with self.lock:
            self.started.append(job)
            self.gates.append(gate)
        assert gate.wait(timeout=60), "the test never released the run"
        return RunRecord(
            worker=self.worker, started_at=began, finished_at=self.clock(), outcome="unchanged"
        )

    def release(self, index: int) -> None:
        with self.lock:
            self.gates[index].set()

    def release_all(self) -> None:
        with self.lock:
            for gate in self.gates:
                gate.set()


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def stores(database_url: str, clock: Clock) -> Iterator[tuple[JobStore, JobStore]]:
    """This worker's store and another replica's, on one database, with the test's clock."""
    engine = db.make_engine(database_url)
    db.upgrade(engine)
    pair = (JobStore(engine, clock=clock), JobStore(db.make_engine(database_url), clock=clock))
    yield pair
    for store in pair:
        store.close()


def ingest(store: JobStore, ticket: str, delivery: str) -> None:
    store.ingest("fake", "a", IncomingEvent(ticket_id=ticket, delivery_id=delivery), b"{}")


def renewed_past(store: JobStore, job: Job, moment: dt.datetime) -> bool:
    current = store.get(job.id)
    return current is not None and current.lease_until is not None and current.lease_until > moment


def held_worker(store: JobStore, **options: float) -> tuple[Worker, HeldProcessor]:
    processor = HeldProcessor(policy=_no_policy, adapters={}, clock=store.now)
    concurrency = int(options.pop("concurrency", 1))
    worker = Worker(store, processor, concurrency=concurrency, poll_seconds=0.01, **options)
    return worker, processor


def test_leases_are_renewed_until_the_grace_period_ends(
    stores: tuple[JobStore, JobStore], clock: Clock
) -> None:
    """SIGTERM used to end the lease keeper at once: a job still running a lease's time later
    was reaped by another replica and ran twice at the same time."""
    store, other = stores
    worker, processor = held_worker(store, lease_seconds=0.6)  # renewed every 0.2 s
    ingest(store, "7", "d1")
    worker.start()
    stopper = threading.Thread(target=worker.stop, kwargs={"grace_seconds": 60}, daemon=True)
    try:
        wait_until(lambda: len(processor.started) == 1, timeout=10)
        (job,) = processor.started
        stopper.start()
        wait_until(lambda: worker.health() == (False, "stopping"), timeout=10)
        for _ in range(3):  # each step shorter than a lease: only a missed renewal expires it
            clock.advance(seconds=0.5)
            wait_until(lambda: renewed_past(store, job, clock() + dt.timedelta(seconds=0.5)))
            assert other.reap() == 0
        assert stopper.is_alive()  # still in its grace period, the job still running
    finally:
        processor.release_all()
        if stopper.ident is None:  # it failed before the stop
            worker.stop(grace_seconds=10)
        else:
            stopper.join(timeout=30)
    assert not stopper.is_alive()
    assert not any(thread.is_alive() for thread in worker._threads)  # the keeper too
    done = store.get(job.id)
    assert done is not None and (done.status, done.outcome) == ("done", "unchanged")
    assert len(store.runs(job.id)) == 1


def test_a_stale_run_does_not_end_the_lease_keeping_of_the_new_run(
    stores: tuple[JobStore, JobStore], clock: Clock
) -> None:
    """Run 1 of a job stalls past its lease, another replica reaps it, and another slot of the
    same worker claims it again (run 2). The worker's running jobs were kept by job id, so
    run 1's end dropped run 2 from them: its lease was no longer renewed, and another replica
    took the job over while run 2 still ran."""
    store, other = stores
    # a lease of 300 s: the lease keeper's own rounds (every 100 s) stay out of the test, which
    # calls keep_leases itself
    worker, processor = held_worker(store, lease_seconds=300, concurrency=2)
    ingest(store, "7", "d1")
    worker.start()
    try:
        wait_until(lambda: len(processor.started) == 1, timeout=10)
        clock.advance(seconds=301)
        assert other.reap() == 1  # run 1's lease expired: the job is queued again ...
        wait_until(lambda: len(processor.started) == 2, timeout=10)  # ... and run 2 started
        run1, run2 = processor.started
        assert run1.id == run2.id and worker.busy == 2
        ingest(store, "8", "d2")  # the next job for the slot run 1 frees
        processor.release(0)  # run 1 ends; its end is fenced off
        wait_until(lambda: len(processor.started) == 3, timeout=10)  # its slot went on
        job = store.get(run2.id)
        assert job is not None and job.status == "running"
        assert worker.busy == 2
        clock.advance(seconds=200)
        worker.keep_leases()  # renews run 2's lease, and the third run's
        clock.advance(seconds=200)  # past run 2's first lease, within its renewed one
        assert other.reap() == 0
    finally:
        processor.release_all()
        worker.stop(grace_seconds=30)
    assert store.counts() == {"queued": 0, "running": 0, "done": 2, "dead": 0}
    assert [run["outcome"] for run in store.runs(run1.id)] == ["unchanged", "unchanged"]
