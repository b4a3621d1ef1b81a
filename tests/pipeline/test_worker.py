"""The worker against a real fake-helpdesk server and a real store, on both engines."""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import threading

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from connector.helpdesks.base import IncomingEvent
from connector.helpdesks.fake.adapter import FakeAdapter
from connector.pipeline import db
from connector.pipeline.periodic import reconciliation
from connector.pipeline.plan import diff
from connector.pipeline.store import EPOCH, JobStore
from connector.pipeline.worker import Outage, PeriodicTask
from connector.policy.decision import Policy, decide
from connector.sandbox.fake_helpdesk import FakeHelpdesk, wait_until
from tests.clock import Clock
from tests.pipeline.conftest import make_worker, partner_ticket


def ingest(store: JobStore, ticket_id: str, delivery: str) -> None:
    store.ingest("fake", "main", IncomingEvent(ticket_id=ticket_id, delivery_id=delivery), b"{}")


def converged(adapter: FakeAdapter, policy: Policy, ticket_id: str) -> bool:
    snapshot = adapter.read(ticket_id)
    decision = decide(snapshot, policy, dt.datetime.now(dt.UTC))
    return diff(decision, snapshot, policy.overrides.tag_prefix).is_empty


def test_a_job_writes_due_time_and_tags_once(
    store: JobStore, helpdesk: FakeHelpdesk, adapter: FakeAdapter, policy: Policy
) -> None:
    ticket = partner_ticket(helpdesk)
    ingest(store, ticket, "d1")
    worker = make_worker(store, adapter, policy)
    assert [job.ticket_id for job in worker.drain()] == [ticket]
    written = helpdesk.ticket(ticket)
    assert written["fields"]["sla_tier"] == "partner"
    assert written["fields"]["sla_level"] == "partner-standard"
    assert written["fields"]["sla_due_at"].endswith("Z")
    assert "sla:level:partner-standard" in written["tags"]
    (run,) = store.ticket_runs("fake", "main", ticket)
    assert run["outcome"] == "applied"
    assert run["decision"]["level"] == "partner-standard"
    assert [call["method"] for call in run["calls"]] == ["PATCH", "POST"]
    # our own write made the helpdesk change the ticket; the next run finds nothing to do
    writes = len(helpdesk.writes(ticket))
    ingest(store, ticket, "d2")
    list(worker.drain())
    assert len(helpdesk.writes(ticket)) == writes
    assert store.ticket_runs("fake", "main", ticket)[-1]["outcome"] == "unchanged"
    assert converged(adapter, policy, ticket)


def test_an_agent_change_is_followed(
    store: JobStore, helpdesk: FakeHelpdesk, adapter: FakeAdapter, policy: Policy
) -> None:
    ticket = partner_ticket(helpdesk)
    ingest(store, ticket, "d1")
    worker = make_worker(store, adapter, policy)
    list(worker.drain())
    helpdesk.update_ticket(ticket, fields={"sla_override": "consulting"}, tags=["own-tag"])
    ingest(store, ticket, "d2")
    list(worker.drain())
    written = helpdesk.ticket(ticket)
    assert written["fields"]["sla_level"] == "consulting"
    assert "own-tag" in written["tags"]  # agents' tags are never touched
    assert "sla:level:partner-standard" not in written["tags"]
    assert converged(adapter, policy, ticket)


def test_an_outage_converges_with_backoff_and_nothing_dead(
    store: JobStore, helpdesk: FakeHelpdesk, adapter: FakeAdapter, policy: Policy, clock: Clock
) -> None:
    tickets = [partner_ticket(helpdesk, f"Вопрос {n}") for n in range(4)]
    for ticket in tickets:
        ingest(store, ticket, f"d{ticket}")
    worker = make_worker(store, adapter, policy)

    helpdesk.pause()  # connection refused
    list(worker.drain())
    queued = store.list_jobs("queued")
    assert len(queued) == 4
    assert all(job.attempts == 1 and job.run_at > clock() for job in queued)
    assert all("connect" in (job.last_error or "").lower() for job in queued)
    assert list(worker.drain()) == []  # backoff respected: nothing is due yet

    helpdesk.resume()
    helpdesk.faults.fail_for(3600, status=500)
    clock.advance(seconds=40)  # past the first backoff (30 s ± 20 %)
    list(worker.drain())
    assert {job.attempts for job in store.list_jobs("queued")} == {2}
    assert all("500" in (job.last_error or "") for job in store.list_jobs("queued"))

    helpdesk.faults.clear()
    # a 503 with Retry-After is retried inside the job, after the asked delay
    helpdesk.faults.fail_next(1, status=503, retry_after=0.1)
    clock.advance(seconds=80)
    assert len(list(worker.drain())) == 4
    assert store.counts() == {"queued": 0, "running": 0, "done": 4, "dead": 0}
    # and so is a 429
    tickets.append(partner_ticket(helpdesk, "ещё вопрос"))
    ingest(store, tickets[-1], "d-late")
    helpdesk.faults.fail_next(1, status=429, retry_after=0.1)
    assert len(list(worker.drain())) == 1
    reads = helpdesk.calls(method="GET")
    gaps = [
        later.started - earlier.started
        for earlier, later in itertools.pairwise(reads)
        if earlier.status in (429, 503) and later.ticket_id == earlier.ticket_id
    ]
    assert len(gaps) == 2 and all(gap >= 0.1 for gap in gaps)
    assert store.counts()["dead"] == 0
    assert all(converged(adapter, policy, ticket) for ticket in tickets)


def test_permanent_errors_go_dead_and_replay_after_the_fix(
    store: JobStore, policy: Policy, clock: Clock
) -> None:
    helpdesk = FakeHelpdesk("test-api-token", declared_fields=["sla_tier", "sla_level"])
    helpdesk.start()
    try:
        adapter = FakeAdapter("main", helpdesk.base_url, "test-api-token", timeout=5)
        worker = make_worker(store, adapter, policy)
        ticket = partner_ticket(helpdesk)
        ingest(store, ticket, "d1")
        ingest(store, "404404", "d2")  # a ticket the helpdesk does not have
        list(worker.drain())
        dead = {job.ticket_id: job for job in store.list_jobs("dead")}
        assert set(dead) == {ticket, "404404"}
        assert "404" in (dead["404404"].last_error or "")
        assert "not found" in (dead["404404"].last_error or "")
        assert "422" in (dead[ticket].last_error or "")
        assert "sla_due_at" in (dead[ticket].last_error or "")
        assert dead[ticket].attempts == 1  # not retried
        # the admin adds the missing field, then replays the dead job
        helpdesk.declare_field("sla_due_at")
        assert store.replay(dead[ticket].id)
        list(worker.drain())
        assert store.get(dead[ticket].id).status == "done"  # type: ignore[union-attr]
        assert converged(adapter, policy, ticket)
    finally:
        helpdesk.stop()


def test_a_burst_of_1000_events_is_at_most_two_runs(
    store: JobStore, helpdesk: FakeHelpdesk, adapter: FakeAdapter, policy: Policy
) -> None:
    ticket = partner_ticket(helpdesk)
    # real time here, and the settle window that makes bursts coalesce (default 1 s)
    store = JobStore(store.engine, settle_seconds=0.5, settle_max_seconds=30)
    worker = make_worker(store, adapter, policy, concurrency=2, poll_seconds=0.01)
    worker.start()
    try:
        for n in range(1000):
            ingest(store, ticket, f"burst-{n}")
            worker.poke()
        wait_until(lambda: store.counts()["queued"] == 0 and worker.busy == 0, timeout=30)
    finally:
        worker.stop(10)
    runs = store.ticket_runs("fake", "main", ticket)
    assert 1 <= len(runs) <= 2
    assert converged(adapter, policy, ticket)


def test_periodic_tasks_run_once_per_tick_across_two_workers(
    database_url: str, adapter: FakeAdapter, policy: Policy, clock: Clock
) -> None:
    engine = db.make_engine(database_url)
    db.upgrade(engine)
    engine.dispose()
    ran: list[dt.datetime] = []
    lock = threading.Lock()

    def task(since: dt.datetime, stopping: threading.Event) -> None:
        with lock:
            ran.append(clock())

    workers = []
    for _ in range(2):
        replica = JobStore(db.make_engine(database_url), clock=clock)
        workers.append(
            make_worker(replica, adapter, policy, periodic=(PeriodicTask("sweep", 60, task),))
        )
    try:
        for _tick in range(3):
            barrier = threading.Barrier(2)

            def maintain(index: int, barrier: threading.Barrier = barrier) -> None:
                barrier.wait()
                workers[index].tick_periodic()

            threads = [threading.Thread(target=maintain, args=(i,)) for i in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            clock.advance(seconds=61)
    finally:
        for worker in workers:
            worker.store.close()
    assert len(ran) == 3
    assert len(set(ran)) == 3


@pytest.mark.parametrize("count", [3])
def test_reconciliation_sweep_queues_changed_tickets(
    store: JobStore, helpdesk: FakeHelpdesk, adapter: FakeAdapter, policy: Policy, count: int
) -> None:
    tickets = [partner_ticket(helpdesk, f"q{n}") for n in range(count)]
    sweep = reconciliation(store, {("fake", "main"): adapter}, 300)
    queued = sweep.run(store.now() - dt.timedelta(minutes=5), threading.Event())
    assert queued == count
    assert {job.ticket_id for job in store.list_jobs("queued")} == set(tickets)
    assert {job.reason for job in store.list_jobs("queued")} == {"sweep"}
    worker = make_worker(store, adapter, policy)
    list(worker.drain())
    assert all(converged(adapter, policy, ticket) for ticket in tickets)


def test_the_lease_keeper_goes_on_while_a_periodic_task_runs(
    store: JobStore, adapter: FakeAdapter, policy: Policy, clock: Clock
) -> None:
    """A long sweep must not hold up lease renewals and reaping: with them stopped, leases
    expire under running jobs and another replica runs the same tickets again."""
    entered = threading.Event()

    def long_sweep(since: dt.datetime, stopping: threading.Event) -> None:
        entered.set()
        stopping.wait(timeout=30)  # as a sweep over many pages would, until shutdown

    worker = make_worker(
        store,
        adapter,
        policy,
        concurrency=0,  # nothing claims the job the reaper puts back
        lease_seconds=0.3,
        periodic=(PeriodicTask("sweep", 60, long_sweep),),
    )
    worker.start()
    try:
        wait_until(entered.is_set, timeout=10)
        ingest(store, "t1", "d1")
        clock.advance(seconds=5)  # past the settle window
        orphan = store.claim("a-worker-that-died", lease_seconds=30)
        assert orphan is not None
        clock.advance(seconds=31)  # its lease has expired
        wait_until(lambda: [job.status for job in store.list_jobs()] == ["queued"], timeout=10)
        assert worker.health()[0]
    finally:
        worker.stop(grace_seconds=10)
    # cut short by the shutdown, so not a success: the next tick starts from the same place
    clock.advance(seconds=61)
    tick = store.try_tick("sweep", 60, "next")
    assert tick is not None and tick.since == EPOCH


def test_a_failed_sweep_is_done_again_by_the_next_tick(
    store: JobStore,
    policy: Policy,
    clock: Clock,
    clocked: tuple[FakeHelpdesk, FakeAdapter],
) -> None:
    helpdesk, adapter = clocked
    sweep = reconciliation(store, {("fake", "main"): adapter}, 300)
    worker = make_worker(store, adapter, policy, concurrency=0, periodic=(sweep,))
    worker.tick_periodic()  # the first sweep: nothing changed yet
    clock.advance(seconds=30)
    ticket = partner_ticket(helpdesk)  # an agent edits it and the webhook is lost
    clock.advance(seconds=270)
    helpdesk.faults.fail_for(60, status=500, methods=["GET"])
    worker.tick_periodic()  # the helpdesk is down: this sweep fails
    assert store.list_jobs() == []
    helpdesk.faults.clear()
    clock.advance(seconds=300)  # the change is now older than the next window and overlap
    worker.tick_periodic()
    assert [(job.ticket_id, job.reason) for job in store.list_jobs()] == [(ticket, "sweep")]


def test_stop_lets_a_running_job_finish(
    store: JobStore, helpdesk: FakeHelpdesk, adapter: FakeAdapter, policy: Policy
) -> None:
    ticket = partner_ticket(helpdesk)
    helpdesk.faults.latency(0.3)  # every API call takes a while: stop arrives mid-job
    worker = make_worker(store, adapter, policy, concurrency=1, poll_seconds=0.01)
    worker.start()
    ingest(store, ticket, "d1")
    wait_until(lambda: worker.busy == 1, timeout=10)
    worker.stop(grace_seconds=20)
    worker.wait_stopped()
    (job,) = store.list_jobs()
    assert (job.status, job.outcome) == ("done", "applied")
    assert converged(adapter, policy, ticket)
    assert worker.health() == (False, "stopping")


# -- a lost database ---------------------------------------------------------------------------


def test_an_outage_logs_once_a_minute_and_backs_off(caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    outage = Outage("claiming jobs", "retrying", first_pause=0.5, max_pause=4, clock=lambda: now[0])
    caplog.set_level(logging.DEBUG, logger="connector.pipeline.worker")
    failure = OperationalError("SELECT secret FROM jobs", {"p": "ticket data"}, Exception("gone"))
    pauses = []
    for _ in range(7):
        pauses.append(outage.failed(failure))
        now[0] += 10
    assert pauses == [0.5, 1, 2, 4, 4, 4, 4]  # doubling, capped
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    # the first failure, then a reminder once 60 s have passed (at the seventh)
    assert warnings == [
        "claiming jobs failed: Exception: gone; retrying",
        "claiming jobs still failing after 60 s (7 attempts): Exception: gone",
    ]
    assert sum(r.levelno == logging.DEBUG and r.exc_info is not None for r in caplog.records) == 7
    # the statement and its parameters (ticket data) stay out of the log's messages
    assert not any(
        "SELECT" in r.getMessage() or "ticket data" in r.getMessage() for r in caplog.records
    )
    caplog.clear()
    outage.recovered()
    outage.recovered()  # once only
    assert [r.getMessage() for r in caplog.records] == [
        "claiming jobs works again after 70 s (7 failed attempts)"
    ]
    assert outage.failed(failure) == 0.5  # a new outage starts over


def test_a_failure_that_is_not_the_database_keeps_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    outage = Outage("recording a job's outcome", "later", first_pause=0.1)
    caplog.set_level(logging.DEBUG, logger="connector.pipeline.worker")
    for _ in range(2):
        try:
            raise ValueError("a bug")
        except ValueError as exc:
            outage.failed(exc)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2 and all(r.exc_info and r.exc_info[0] is ValueError for r in errors)
    assert errors[0].getMessage() == "recording a job's outcome failed unexpectedly"


def _rename(store: JobStore, table: str, to: str) -> None:
    with store.engine.begin() as connection:
        connection.execute(text(f"ALTER TABLE {table} RENAME TO {to}"))


def _warnings(caplog: pytest.LogCaptureFixture, start: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and r.getMessage().startswith(start)
    ]


def test_a_slot_outlives_a_database_lost_mid_job(
    store: JobStore,
    helpdesk: FakeHelpdesk,
    adapter: FakeAdapter,
    policy: Policy,
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The job's outcome cannot be recorded: the slot lives on, and the job runs again once
    its lease has expired (pytest would fail the test on a thread dying with an exception)."""
    caplog.set_level(logging.INFO, logger="connector.pipeline.worker")
    ticket = partner_ticket(helpdesk)
    helpdesk.faults.latency(0.3)  # the job is mid-run when the table goes
    worker = make_worker(store, adapter, policy, concurrency=1, poll_seconds=0.01, lease_seconds=3)
    worker.start()
    try:
        ingest(store, ticket, "d1")
        wait_until(lambda: worker.busy == 1, timeout=10)
        _rename(store, "decisions", "decisions_away")  # where the run's record goes
        wait_until(lambda: worker.busy == 0, timeout=10)
        assert worker.health()[0], worker.health()
        (failed,) = _warnings(caplog, "recording a job's outcome failed:")
        assert failed.endswith("; the job runs again once its lease has expired")
        (job,) = store.list_jobs()
        assert job.status == "running"  # nothing was recorded: the lease still holds it
        _rename(store, "decisions_away", "decisions")
        clock.advance(seconds=5)  # past the lease: the reaper queues the job again
        wait_until(lambda: store.counts()["done"] == 1, timeout=20)
        # the slot logs the recovery after the run's commit, which the line above may see first
        wait_until(
            lambda: bool(_warnings(caplog, "recording a job's outcome works again after")),
            timeout=10,
        )
        assert worker.health()[0], worker.health()
    finally:
        worker.stop(grace_seconds=10)
    (run,) = store.ticket_runs("fake", "main", ticket)  # the first run left no record
    assert run["outcome"] in ("applied", "unchanged")
    assert converged(adapter, policy, ticket)


def test_claims_back_off_while_the_jobs_table_is_gone(
    store: JobStore,
    helpdesk: FakeHelpdesk,
    adapter: FakeAdapter,
    policy: Policy,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="connector.pipeline.worker")
    worker = make_worker(store, adapter, policy, concurrency=2, poll_seconds=0.01)
    _rename(store, "jobs", "jobs_away")
    worker.start()
    try:

        def attempts() -> int:
            return sum(
                r.levelno == logging.DEBUG and r.getMessage() == "claiming jobs failed"
                for r in caplog.records
            )

        wait_until(lambda: attempts() >= 6, timeout=20)
        assert worker.health()[0], worker.health()
        # two slots failing again and again: one warning, no tracebacks above DEBUG
        assert len(_warnings(caplog, "claiming jobs failed:")) == 1
        assert not any(r.exc_info for r in caplog.records if r.levelno > logging.DEBUG)
        _rename(store, "jobs_away", "jobs")
        ticket = partner_ticket(helpdesk)
        ingest(store, ticket, "d1")
        worker.poke()
        wait_until(lambda: store.counts()["done"] == 1, timeout=20)
        assert _warnings(caplog, "claiming jobs works again after")
    finally:
        worker.stop(grace_seconds=10)
    assert converged(adapter, policy, ticket)
