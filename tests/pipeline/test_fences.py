"""The fences of a run: heartbeat, finish, fail and reap act only on the claim they saw.

The races are forced, not waited for: the store asks its ``Backoff`` whether to give up between
reading a job and writing it, so a ``Backoff`` that first lets another replica act puts that
replica's call exactly there; an ingest is held just before its commit, and a call that must
wait for it is seen waiting in ``pg_stat_activity``. The races are PostgreSQL's (several
replicas, READ COMMITTED); on SQLite one write transaction at a time rules them out.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from sqlalchemy import create_engine, text, update
from sqlalchemy import event as sa_event

from connector.pipeline import db
from connector.pipeline.retry import Backoff
from connector.pipeline.store import IngestResult, Job, JobStore, RunRecord
from tests.clock import Clock
from tests.pipeline.stores import BACKOFF, T0, event, opened


@dataclass(frozen=True)
class Meddling(Backoff):
    """A backoff that, the first time the store asks it, lets another party act first: between
    the store's read of a job and its write."""

    meddle: Callable[[], None] = lambda: None
    done: threading.Event = field(default_factory=threading.Event)

    def gives_up(self, attempt: int, created_at: dt.datetime, now: dt.datetime) -> bool:
        if not self.done.is_set():
            self.done.set()
            self.meddle()
        return super().gives_up(attempt, created_at, now)


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def store(database_url: str, clock: Clock) -> Iterator[JobStore]:
    with opened(database_url, clock) as job_store:
        yield job_store


@pytest.fixture
def replicas(postgres_url: str, clock: Clock) -> Iterator[tuple[JobStore, JobStore]]:
    """Two replicas on one PostgreSQL database, sharing the test's clock."""
    engine = db.make_engine(postgres_url)
    db.upgrade(engine)
    pair = (
        JobStore(engine, BACKOFF, clock=clock),
        JobStore(db.make_engine(postgres_url), BACKOFF, clock=clock),
    )
    yield pair
    for replica in pair:
        replica.close()


def meddle(store: JobStore, party: Callable[[], None]) -> None:
    """Make ``party`` act once inside ``store``'s next reap or fail, between read and write."""
    store.backoff = Meddling(
        base_seconds=BACKOFF.base_seconds,
        cap_seconds=BACKOFF.cap_seconds,
        max_attempts=BACKOFF.max_attempts,
        max_age=BACKOFF.max_age,
        meddle=party,
    )


def on_thread(call: Callable[[], object], results: list[object]) -> threading.Thread:
    """Run ``call`` on a thread of its own (another replica's), its result into ``results``."""
    thread = threading.Thread(target=lambda: results.append(call()), daemon=True)
    thread.start()
    return thread


def record(clock: Clock, outcome: str = "applied") -> RunRecord:
    return RunRecord(worker="w", started_at=clock(), finished_at=clock(), outcome=outcome)


# -- a stale run, on both engines ------------------------------------------------------------


def reclaimed(store: JobStore, clock: Clock) -> tuple[Job, Job]:
    """Run 1 of ticket 7 stalls past its lease, another replica's reaper requeues the job, and
    another slot of the same worker claims it again: (run 1, run 2)."""
    store.ingest("fake", "a", event("7", "d1"), b"{}")
    run1 = store.claim("w", 30)
    assert run1 is not None
    clock.advance(seconds=31)
    assert store.reap() == 1
    run2 = store.claim("w", 30)
    assert run2 is not None and run2.id == run1.id
    return run1, run2


def test_a_stale_run_of_the_same_worker_cannot_end_the_new_one(
    store: JobStore, clock: Clock
) -> None:
    """Run 1 stalls past its lease, another replica's reaper requeues the job, and another slot
    of the SAME worker claims it again. Run 1's end, fenced on the worker's name only, used to
    mark the job done while run 2 was still going, so a third run of the ticket could start."""
    run1, run2 = reclaimed(store, clock)
    assert not store.finish(run1, "w", record(clock))  # its claim is over
    job = store.get(run1.id)
    assert job is not None and job.status == "running"
    assert run2.claim != run1.claim and job.claim == run2.claim
    assert not store.heartbeat(run1, "w", 30)
    store.ingest("fake", "a", event("7", "d2"), b"{}")
    assert store.claim("v", 30) is None  # run 2 still holds the ticket
    assert store.heartbeat(run2, "w", 30)
    assert store.finish(run2, "w", record(clock))
    assert [run["worker"] for run in store.runs(run1.id)] == ["w", "w"]  # both audited


def test_a_stale_run_of_the_same_worker_cannot_fail_the_new_one(
    store: JobStore, clock: Clock
) -> None:
    run1, run2 = reclaimed(store, clock)
    # run 1 ends in a failure: its claim is over, so the job is left to run 2
    assert store.fail(run1, "w", "503", permanent=False, record=record(clock, "failed")) == "queued"
    job = store.get(run1.id)
    assert job is not None
    assert (job.status, job.attempts) == ("running", 2)
    assert job.claim == run2.claim
    assert job.last_error == "lease expired (worker w stopped)"  # the reaper's, not run 1's
    assert store.fail(run1, "w", "422", permanent=True, record=record(clock, "failed")) == "queued"
    assert store.counts() == {"queued": 0, "running": 1, "done": 0, "dead": 0}
    assert store.finish(run2, "w", record(clock))


# -- replicas racing on PostgreSQL -----------------------------------------------------------


def test_two_reapers_at_once_requeue_a_job_once(
    replicas: tuple[JobStore, JobStore], clock: Clock
) -> None:
    """Replica B reads the expired job; replica A reaps it before B writes. B used to find the
    job itself as "the ticket's queued job", merge it into itself and mark it done: lost."""
    a, b = replicas
    a.ingest("fake", "a", event("7", "d1"), b"{}")
    orphan = a.claim("x", 30)  # worker x is killed with -9
    assert orphan is not None
    clock.advance(seconds=31)
    by_a: list[object] = []
    meddle(b, lambda: on_thread(a.reap, by_a).join(timeout=30))
    assert b.reap() == 1
    assert by_a == [0]  # B holds the row: A skips it
    (queued,) = a.list_jobs("queued")
    assert (queued.id, queued.attempts, queued.claim) == (orphan.id, 1, None)
    assert queued.last_error == "lease expired (worker x stopped)"
    assert a.counts() == {"queued": 1, "running": 0, "done": 0, "dead": 0}


def test_a_failure_and_a_reaper_at_once_lose_nothing(
    replicas: tuple[JobStore, JobStore], clock: Clock
) -> None:
    """The run failed just after its lease expired: fail() reads its row, then another
    replica's reaper requeues the job. fail() used to merge the job into itself: lost."""
    a, b = replicas
    a.ingest("fake", "a", event("7", "d1"), b"{}")
    job = a.claim("x", 30)
    assert job is not None
    clock.advance(seconds=31)  # the run outlasted its lease; the next renewal is late
    by_b: list[object] = []
    meddle(a, lambda: on_thread(b.reap, by_b).join(timeout=30))
    assert a.fail(job, "x", "503", permanent=False, record=record(clock, "failed")) == "queued"
    assert by_b == [0]  # the failing run holds the row: the reaper skips it
    (queued,) = a.list_jobs("queued")
    assert (queued.id, queued.attempts, queued.last_error) == (job.id, 1, "503")
    assert queued.run_at > clock()  # with the backoff of a failure
    assert a.counts() == {"queued": 1, "running": 0, "done": 0, "dead": 0}


def test_a_failure_and_a_reaper_at_once_beside_a_queued_job(
    replicas: tuple[JobStore, JobStore], clock: Clock
) -> None:
    """As above, with a newer event queued for the ticket: the run merges into that job, once."""
    a, b = replicas
    a.ingest("fake", "a", event("7", "d1"), b"{}")
    job = a.claim("x", 30)
    assert job is not None
    newer = a.ingest("fake", "a", event("7", "d2"), b"{}").job_id
    clock.advance(seconds=31)
    by_b: list[object] = []
    meddle(a, lambda: on_thread(b.reap, by_b).join(timeout=30))
    assert a.fail(job, "x", "503", permanent=False, record=record(clock, "failed")) == "queued"
    assert by_b == [0]
    (queued,) = a.list_jobs("queued")
    assert (queued.id, queued.events, queued.attempts) == (newer, 2, 1)
    superseded = a.get(job.id)
    assert superseded is not None and (superseded.status, superseded.outcome) == (
        "done",
        "superseded",
    )


@pytest.fixture
def waiting(postgres_url: str) -> Iterator[Callable[[], int]]:
    """How many sessions of the test's PostgreSQL database wait for a lock right now."""
    engine = create_engine(postgres_url, isolation_level="AUTOCOMMIT")

    def count() -> int:
        with engine.connect() as connection:
            return int(
                connection.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                    )
                ).scalar_one()
            )

    yield count
    engine.dispose()


def until(condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met"
        time.sleep(0.005)


def test_a_lease_renewed_while_the_reaper_works_is_never_requeued(
    replicas: tuple[JobStore, JobStore], waiting: Callable[[], int], clock: Clock
) -> None:
    """Worker x's renewal is late (a pause): the reaper reads the expired job, then x renews
    the lease. The reaper's write used to requeue it anyway, though x's heartbeat had said
    the lease was renewed: a second worker then ran the ticket beside x."""
    a, b = replicas
    a.ingest("fake", "a", event("7", "d1"), b"{}")
    job = a.claim("x", 30)
    assert job is not None
    clock.advance(seconds=31)
    renewed: list[object] = []
    heartbeats: list[threading.Thread] = []

    def renew() -> None:  # x renews now; wait until it has, or until it waits for the reaper
        heartbeats.append(on_thread(lambda: a.heartbeat(job, "x", 30), renewed))
        until(lambda: not heartbeats[0].is_alive() or waiting() > 0)

    meddle(b, renew)
    reaped = b.reap()
    heartbeats[0].join(timeout=30)
    second = a.claim("y", 30)
    # x is told the truth: either its lease holds and nobody else runs the ticket, or it lost
    # the lease (and its run's end is fenced off) before anyone else could claim the job
    assert renewed in ([True], [False])
    assert not (renewed == [True] and second is not None)
    # here the reaper held the row first: the renewal waited for it and found the lease gone
    assert (renewed, reaped) == ([False], 1)
    assert second is not None and second.id == job.id
    assert not a.finish(job, "x", record(clock))
    assert a.finish(second, "y", record(clock))


def test_a_job_claimed_before_the_upgrade_is_reaped_and_fenced(
    store: JobStore, clock: Clock
) -> None:
    """A job an older replica claimed has no claim token: it is fenced on its worker alone."""
    store.ingest("fake", "a", event("7", "d1"), b"{}")
    job = store.claim("old", 30)
    assert job is not None
    with store.engine.begin() as connection:
        connection.execute(update(db.jobs).values(claim=None))
    old = job.model_copy(update={"claim": None})
    assert store.heartbeat(old, "old", 30)
    assert not store.heartbeat(job, "old", 30)
    clock.advance(seconds=31)
    assert store.reap() == 1
    assert not store.finish(old, "old", record(clock))


# -- a run ending while an ingest of its ticket commits (PostgreSQL) ----------------------------


def ingest_held_before_commit(
    store: JobStore, ticket: str, delivery: str, into: list[object]
) -> tuple[threading.Thread, threading.Event]:
    """Ingest a webhook through ``store`` on a thread of its own (the edge of another replica),
    held just before its commit: once this returns, the ticket's queued job is inserted but not
    committed, until the returned event is set."""
    reached, release = threading.Event(), threading.Event()

    def held(_connection: object) -> None:
        reached.set()
        release.wait(timeout=30)

    sa_event.listen(store.engine, "commit", held, once=True)
    thread = outcome(lambda: store.ingest("fake", "a", event(ticket, delivery), b"{}"), into)
    assert reached.wait(timeout=30)
    return thread, release


def outcome(call: Callable[[], object], into: list[object]) -> threading.Thread:
    """Run ``call`` on a thread of its own; its result, or the exception it raised, into
    ``into``."""

    def run() -> None:
        try:
            into.append(call())
        except Exception as exc:
            into.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_a_failure_while_an_ingest_queues_the_ticket_merges_into_its_job(
    replicas: tuple[JobStore, JobStore], waiting: Callable[[], int], clock: Clock
) -> None:
    """Replica B's edge has inserted the ticket's queued job, not committed yet, when replica A's
    run fails. fail() cannot see that job, so it puts its own back as the ticket's queued job,
    and waits for B on the one-queued-job index. When B committed, fail() used to end in an
    IntegrityError: the run's outcome and its audit row were lost, and the job stayed running
    until its lease expired. Now it runs again, merges into B's job, and is audited once."""
    a, b = replicas
    a.ingest("fake", "a", event("7", "d1"), b"{}")
    job = a.claim("x", 30)
    assert job is not None
    ingested: list[object] = []
    ingest, commit = ingest_held_before_commit(b, "7", "d2", ingested)
    failed: list[object] = []
    failing = outcome(
        lambda: a.fail(job, "x", "503", permanent=False, record=record(clock, "failed")), failed
    )
    until(lambda: waiting() > 0 or not failing.is_alive())
    assert waiting() == 1  # fail() waits for B's uncommitted queued job
    commit.set()
    ingest.join(timeout=30)
    failing.join(timeout=30)
    assert failed == ["queued"]
    (stored,) = ingested
    assert isinstance(stored, IngestResult) and stored.job_id is not None
    (queued,) = a.list_jobs("queued")
    assert (queued.id, queued.events, queued.attempts) == (stored.job_id, 2, 1)
    assert queued.last_error == "503"
    assert queued.run_at > clock()  # with the failure's backoff
    ended = a.get(job.id)
    assert ended is not None and (ended.status, ended.outcome) == ("done", "superseded")
    assert [run["outcome"] for run in a.runs(job.id)] == ["failed"]  # audited exactly once
    assert a.counts() == {"queued": 1, "running": 0, "done": 1, "dead": 0}


def test_a_reaper_while_an_ingest_queues_the_ticket_merges_into_its_job(
    replicas: tuple[JobStore, JobStore], waiting: Callable[[], int], clock: Clock
) -> None:
    """As above for the reaper: its round used to end in an IntegrityError, rolling back every
    job it had requeued, and the expired job stayed running until the next round."""
    a, b = replicas
    a.ingest("fake", "a", event("7", "d1"), b"{}")
    orphan = a.claim("x", 30)  # worker x is killed with -9
    assert orphan is not None
    clock.advance(seconds=31)
    ingested: list[object] = []
    ingest, commit = ingest_held_before_commit(b, "7", "d2", ingested)
    reaped: list[object] = []
    reaping = outcome(a.reap, reaped)
    until(lambda: waiting() > 0 or not reaping.is_alive())
    assert waiting() == 1  # the reaper waits for B's uncommitted queued job
    commit.set()
    ingest.join(timeout=30)
    reaping.join(timeout=30)
    assert reaped == [1]
    (stored,) = ingested
    assert isinstance(stored, IngestResult) and stored.job_id is not None
    (queued,) = a.list_jobs("queued")
    assert (queued.id, queued.events, queued.attempts) == (stored.job_id, 2, 1)
    assert queued.last_error == "lease expired (worker x stopped)"
    ended = a.get(orphan.id)
    assert ended is not None and (ended.status, ended.outcome) == ("done", "superseded")
    assert a.runs(orphan.id) == []  # the reaper writes no audit row
    assert a.counts() == {"queued": 1, "running": 0, "done": 1, "dead": 0}


def test_a_replay_while_an_ingest_queues_the_ticket_runs_its_job_instead(
    replicas: tuple[JobStore, JobStore], waiting: Callable[[], int], clock: Clock
) -> None:
    """``jobs replay`` of a dead letter while replica B's edge is queueing the same ticket: the
    replay used to wait for B, then end in an IntegrityError (a traceback for the operator).
    Now it runs again, finds B's job, runs that now and marks the dead letter replayed."""
    a, b = replicas
    a.ingest("fake", "a", event("7", "d1"), b"{}")
    job = a.claim("x", 30)
    assert job is not None
    assert a.fail(job, "x", "404", permanent=True, record=record(clock, "dead")) == "dead"
    ingested: list[object] = []
    ingest, commit = ingest_held_before_commit(b, "7", "d2", ingested)
    replayed: list[object] = []
    replaying = outcome(lambda: a.replay(job.id), replayed)
    until(lambda: waiting() > 0 or not replaying.is_alive())
    assert waiting() == 1  # the replay waits for B's uncommitted queued job
    commit.set()
    ingest.join(timeout=30)
    replaying.join(timeout=30)
    assert replayed == [True]
    (stored,) = ingested
    assert isinstance(stored, IngestResult) and stored.job_id is not None
    (queued,) = a.list_jobs("queued")
    assert queued.id == stored.job_id and queued.run_at <= clock()  # run now
    dead = a.get(job.id)
    assert dead is not None and (dead.status, dead.outcome) == ("done", "replayed")
    assert a.counts() == {"queued": 1, "running": 0, "done": 1, "dead": 0}
