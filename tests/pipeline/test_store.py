"""The job store, the same suite on a real SQLite file and a real PostgreSQL database."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import select

from connector.pipeline import db
from connector.pipeline.store import EPOCH, MAX_ID, JobStore, RunRecord
from tests.clock import Clock
from tests.pipeline.stores import T0, event, opened


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def store(database_url: str, clock: Clock) -> Iterator[JobStore]:
    with opened(database_url, clock) as job_store:
        yield job_store


def record(clock: Clock, outcome: str = "applied", error: str | None = None) -> RunRecord:
    return RunRecord(
        worker="w", started_at=clock(), finished_at=clock(), outcome=outcome, error=error
    )


def test_batched_writes_store_times_as_core_statements_do(store: JobStore) -> None:
    """The ingest path's multi-row statements convert times with the engine's own column types,
    as ``Connection.execute`` does: on SQLite the same text (so stored times compare as times,
    even at a whole second), on PostgreSQL the same timestamps."""
    store.ingest("fake", "a", event("1", "d1"), b"{}")
    with store.engine.begin() as connection:
        connection.execute(db.schedules.insert().values(name="probe", next_run_at=T0))
        core = connection.exec_driver_sql("SELECT next_run_at FROM schedules").scalar_one()
        received = connection.exec_driver_sql("SELECT received_at FROM events").scalar_one()
        created = connection.exec_driver_sql("SELECT created_at FROM jobs").scalar_one()
    assert received == core
    assert created == core


def test_migrations_are_idempotent(database_url: str) -> None:
    engine = db.make_engine(database_url)
    assert db.current_version(engine) == 0
    unmigrated = JobStore(engine)
    assert unmigrated.ready() == (
        False,
        f"schema version 0, expected {db.LATEST}: run bitrix-sla db upgrade",
    )
    assert db.upgrade(engine) == list(range(1, db.LATEST + 1))
    assert db.upgrade(engine) == []
    assert db.current_version(engine) == db.LATEST
    assert unmigrated.ready() == (True, "ok")
    engine.dispose()


def test_ingest_deduplicates_by_delivery_id(store: JobStore) -> None:
    first = store.ingest("fake", "a", event("1", "d1"), b'{"ticket_id": "1"}')
    again = store.ingest("fake", "a", event("1", "d1"), b'{"ticket_id": "1"}')
    assert not first.duplicate and first.job_id is not None
    assert again.duplicate and again.job_id is None
    # the same delivery id from another instance is another delivery
    other = store.ingest("fake", "b", event("1", "d1"), b"{}")
    assert not other.duplicate
    assert store.counts()["queued"] == 2


def test_a_burst_for_one_ticket_is_one_queued_job(store: JobStore) -> None:
    ids = {store.ingest("fake", "a", event("7", f"d{n}"), b"{}").job_id for n in range(1000)}
    assert len(ids) == 1
    (job,) = store.list_jobs("queued")
    assert job.events == 1000
    assert store.counts() == {"queued": 1, "running": 0, "done": 0, "dead": 0}


def test_a_batch_dedups_and_coalesces_in_two_statements(store: JobStore, clock: Clock) -> None:
    running = store.ingest("fake", "a", event("9", "r1"), b"{}")
    claimed = store.claim("w", 30)
    assert claimed is not None and claimed.id == running.job_id
    store.ingest("fake", "a", event("1", "old"), b"{}")
    statements: list[str] = []
    if store.is_sqlite:  # SQLite reports every statement it runs, whoever sends it
        store.engine.dispose()
        sa_event.listen(
            store.engine,
            "connect",
            lambda dbapi_connection, _: dbapi_connection.set_trace_callback(statements.append),
        )
    results = store.ingest_many(
        [
            ("fake", "a", event("1", "old"), b"{}"),  # stored before: a duplicate
            ("fake", "a", event("1", "n1"), b'{"n": 1}'),
            ("fake", "a", event("1", "n2"), b'{"n": 2}'),
            ("fake", "a", event("2", "n3"), b"{}"),
            ("fake", "a", event("1", "n1"), b'{"n": 1}'),  # earlier in this batch
            ("fake", "b", event("1", "n1"), b"{}"),  # another instance: not a duplicate
            ("fake", "a", event("9", "n4"), b"{}"),  # ticket 9 is running: a new job
        ]
    )
    if store.is_sqlite:  # one INSERT for the events, one for the jobs, in one transaction
        verbs = [statement.split()[0] for statement in statements if "PRAGMA" not in statement]
        assert verbs == ["BEGIN", "INSERT", "INSERT", "COMMIT"], statements
    assert [r.duplicate for r in results] == [True, False, False, False, True, False, False]
    assert results[1].job_id == results[2].job_id
    assert len({results[i].job_id for i in (1, 3, 5, 6)}) == 4
    assert results[6].job_id != running.job_id
    queued = {job.key: job.events for job in store.list_jobs("queued")}
    assert queued == {"fake:a:1": 3, "fake:a:2": 1, "fake:b:1": 1, "fake:a:9": 1}
    assert store.counts() == {"queued": 4, "running": 1, "done": 0, "dead": 0}
    with store.engine.connect() as connection:
        stored = connection.execute(
            select(db.events.c.delivery_id, db.events.c.body)
            .where(db.events.c.instance == "a", db.events.c.ticket_id == "1")
            .order_by(db.events.c.id)
        ).all()
    assert [tuple(row) for row in stored] == [("old", "{}"), ("n1", '{"n": 1}'), ("n2", '{"n": 2}')]


def test_one_running_job_per_ticket(store: JobStore, clock: Clock) -> None:
    store.ingest("fake", "a", event("1", "d1"), b"{}")
    store.ingest("fake", "a", event("2", "d2"), b"{}")
    first = store.claim("w1", 30)
    assert first is not None
    assert first.attempts == 1
    # an event arriving while ticket 1 runs queues a second job for it ...
    store.ingest("fake", "a", event(first.ticket_id, "d3"), b"{}")
    second = store.claim("w2", 30)
    assert second is not None and second.ticket_id != first.ticket_id
    # ... which nobody may claim while the first run is still going
    assert store.claim("w3", 30) is None
    assert store.finish(first, "w1", record(clock))
    third = store.claim("w3", 30)
    assert third is not None and third.ticket_id == first.ticket_id


def test_jobs_wait_for_their_run_at(store: JobStore, clock: Clock) -> None:
    store.ingest("fake", "a", event("1", "d1"), b"{}")
    job = store.claim("w", 30)
    assert job is not None
    assert (
        store.fail(job, "w", "503 from helpdesk", permanent=False, record=record(clock)) == "queued"
    )
    (queued,) = store.list_jobs("queued")
    delay = (queued.run_at - T0).total_seconds()
    assert 8 <= delay <= 12  # base 10 s, jitter 0.8-1.2
    assert queued.last_error == "503 from helpdesk"
    assert store.claim("w", 30) is None
    clock.advance(seconds=12)
    assert store.claim("w", 30) is not None


def test_backoff_grows_then_gives_up(store: JobStore, clock: Clock) -> None:
    store.ingest("fake", "a", event("1", "d1"), b"{}")
    delays = []
    for attempt in range(1, 5):
        job = store.claim("w", 30)
        assert job is not None and job.attempts == attempt
        status = store.fail(job, "w", "timeout", permanent=False, record=record(clock))
        if attempt < 4:
            assert status == "queued"
            (queued,) = store.list_jobs("queued")
            delays.append((queued.run_at - clock()).total_seconds())
            clock.now = queued.run_at
        else:
            assert status == "dead"
    assert [round(d / b) for d, b in zip(delays, (10, 20, 40), strict=True)] == [1, 1, 1]
    (dead,) = store.list_jobs("dead")
    assert dead.last_error == "gave up after 4 attempts: timeout"


def test_old_jobs_give_up_by_age(store: JobStore, clock: Clock) -> None:
    store.ingest("fake", "a", event("1", "d1"), b"{}")
    job = store.claim("w", 30)
    assert job is not None
    clock.advance(seconds=3601)
    assert store.fail(job, "w", "still down", permanent=False, record=record(clock)) == "dead"


def test_permanent_failure_is_dead_at_once_and_replayable(store: JobStore, clock: Clock) -> None:
    store.ingest("fake", "a", event("1", "d1"), b"{}")
    job = store.claim("w", 30)
    assert job is not None
    reason = "PATCH /api/tickets/1 -> 422: unknown field 'sla_due_at'"
    assert (
        store.fail(job, "w", reason, permanent=True, record=record(clock, "failed", reason))
        == "dead"
    )
    (dead,) = store.list_jobs("dead")
    assert dead.last_error == reason
    assert [run["outcome"] for run in store.runs(dead.id)] == ["dead"]
    assert store.replay(dead.id)
    assert not store.replay(dead.id)  # no longer dead
    replayed = store.claim("w", 30)
    assert replayed is not None and replayed.id == dead.id and replayed.attempts == 1
    assert replayed.reason == "replay"


def test_replay_all_dead_and_replay_beside_a_queued_job(store: JobStore, clock: Clock) -> None:
    for ticket in ("1", "2"):
        store.ingest("fake", "a", event(ticket, f"d{ticket}"), b"{}")
        job = store.claim("w", 30)
        assert job is not None
        store.fail(job, "w", "404", permanent=True, record=record(clock))
    store.ingest("fake", "a", event("1", "d-new"), b"{}")  # ticket 1 is queued again
    assert store.replay_all_dead() == 2
    counts = store.counts()
    assert (counts["queued"], counts["dead"]) == (2, 0)


def test_failure_merges_into_a_newer_queued_job(store: JobStore, clock: Clock) -> None:
    store.ingest("fake", "a", event("1", "d1"), b"{}")
    job = store.claim("w", 30)
    assert job is not None
    store.ingest("fake", "a", event("1", "d2"), b"{}")
    assert store.fail(job, "w", "500", permanent=False, record=record(clock)) == "queued"
    (queued,) = store.list_jobs("queued")
    assert queued.id != job.id
    assert queued.attempts == 1  # the failed attempt still counts towards giving up
    assert queued.run_at > clock()  # and the backoff holds for the merged job
    superseded = store.get(job.id)
    assert superseded is not None and superseded.outcome == "superseded"


def test_expired_leases_are_reaped_and_fenced(store: JobStore, clock: Clock) -> None:
    store.ingest("fake", "a", event("1", "d1"), b"{}")
    job = store.claim("w1", 30)
    assert job is not None
    clock.advance(seconds=20)
    assert store.heartbeat(job, "w1", 30)  # lease now ends at +50 s
    clock.advance(seconds=25)
    assert store.reap() == 0
    clock.advance(seconds=10)
    assert store.reap() == 1
    assert not store.heartbeat(job, "w1", 30)  # the lease is gone
    again = store.claim("w2", 30)
    assert again is not None and again.id == job.id and again.attempts == 2
    # the first worker wakes up late: its finish is fenced off, its audit row kept
    assert not store.finish(job, "w1", record(clock))
    assert store.finish(again, "w2", record(clock))
    assert len(store.runs(job.id)) == 2


def test_periodic_tick_has_one_owner_across_replicas(database_url: str, clock: Clock) -> None:
    engine = db.make_engine(database_url)
    db.upgrade(engine)
    replicas = [JobStore(db.make_engine(database_url), clock=clock) for _ in range(4)]
    owners: list[str] = []
    barrier = threading.Barrier(len(replicas))

    def tick(index: int) -> None:
        barrier.wait()
        if replicas[index].try_tick("reconcile", 60, f"r{index}") is not None:
            owners.append(f"r{index}")

    for _round in range(3):
        threads = [threading.Thread(target=tick, args=(i,)) for i in range(len(replicas))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        clock.advance(seconds=61)
    assert len(owners) == 3
    for replica in replicas:
        replica.close()
    engine.dispose()


def test_a_tick_starts_from_the_last_one_that_succeeded(store: JobStore, clock: Clock) -> None:
    first = store.try_tick("sweep", 60, "a")
    assert first is not None and (first.at, first.since) == (T0, EPOCH)
    assert store.try_tick("sweep", 60, "a") is None  # not due yet
    store.tick_succeeded(first)
    clock.advance(seconds=60)
    failed = store.try_tick("sweep", 60, "a")
    assert failed is not None and failed.since == T0
    # that run failed (no tick_succeeded): the next tick starts from the same place
    clock.advance(seconds=60)
    retry = store.try_tick("sweep", 60, "b")
    assert retry is not None and (retry.at, retry.since) == (T0 + dt.timedelta(seconds=120), T0)
    store.tick_succeeded(retry)
    store.tick_succeeded(failed)  # a slow run that ends later never moves the start back
    clock.advance(seconds=60)
    after = store.try_tick("sweep", 60, "a")
    assert after is not None and after.since == retry.at


def test_purge_deletes_in_short_transactions(store: JobStore, clock: Clock) -> None:
    for n in range(25):
        store.ingest("fake", "a", event(str(n % 5), f"d{n}"), b"{}")
    clock.advance(days=31)
    store.ingest("fake", "a", event("9", "recent"), b"{}")
    trace: list[str] = []  # D: a DELETE ran, C: a transaction committed

    def deleting(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.lstrip().upper().startswith("DELETE"):
            trace.append("D")

    sa_event.listen(store.engine, "before_cursor_execute", deleting)
    sa_event.listen(store.engine, "commit", lambda _connection: trace.append("C"))
    asked: list[bool] = []

    def stop_after_one_chunk() -> bool:
        asked.append(True)
        return len(asked) > 1

    first = store.purge(dt.timedelta(days=30), chunk_rows=10, stop=stop_after_one_chunk)
    assert first == {"events": 10, "jobs": 0, "decisions": 0}
    trace.clear()
    assert store.purge(dt.timedelta(days=30), chunk_rows=10) == {
        "events": 15,
        "jobs": 0,
        "decisions": 0,
    }
    # each chunk commits on its own: two of events, then one pass over each other table
    assert "".join(trace).count("DC") == 4 and "DD" not in "".join(trace)
    with store.engine.connect() as connection:
        left = connection.execute(select(db.events.c.delivery_id)).scalars().all()
    assert left == ["recent"]
    with pytest.raises(ValueError, match="chunk_rows"):
        store.purge(dt.timedelta(days=30), chunk_rows=0)


def test_purge_keeps_recent_and_unfinished_work(store: JobStore, clock: Clock) -> None:
    store.ingest("fake", "a", event("1", "d1"), b"{}")
    job = store.claim("w", 30)
    assert job is not None
    store.finish(job, "w", record(clock))
    store.ingest("fake", "a", event("2", "d2"), b"{}")  # still queued
    clock.advance(seconds=86400 * 31)
    store.ingest("fake", "a", event("3", "d3"), b"{}")  # recent
    removed = store.purge(dt.timedelta(days=30))
    assert removed == {"events": 2, "jobs": 1, "decisions": 1}
    assert store.counts() == {"queued": 2, "running": 0, "done": 0, "dead": 0}


def test_settle_window_debounces_a_ticket(database_url: str, clock: Clock) -> None:
    engine = db.make_engine(database_url)
    db.upgrade(engine)
    store = JobStore(engine, clock=clock, settle_seconds=2, settle_max_seconds=5)
    try:
        store.ingest("fake", "a", event("1", "d1"), b"{}")
        (job,) = store.list_jobs("queued")
        assert job.run_at == T0 + dt.timedelta(seconds=2)
        clock.advance(seconds=1.5)  # another event inside the window pushes the run back
        store.ingest("fake", "a", event("1", "d2"), b"{}")
        assert store.list_jobs("queued")[0].run_at == T0 + dt.timedelta(seconds=3.5)
        assert store.claim("w", 30) is None
        clock.advance(seconds=3)  # a steady stream still runs within settle_max of the first event
        store.ingest("fake", "a", event("1", "d3"), b"{}")
        assert store.list_jobs("queued")[0].run_at == T0 + dt.timedelta(seconds=5)
        clock.now = T0 + dt.timedelta(seconds=5)
        assert store.claim("w", 30) is not None
    finally:
        store.close()


def test_v2_upgrades_a_v1_database_with_data(database_url: str, clock: Clock) -> None:
    from sqlalchemy import text

    engine = db.make_engine(database_url)
    db.upgrade(engine)
    with engine.begin() as connection:  # make it a v1 database, as released
        connection.execute(text("ALTER TABLE events DROP COLUMN job_key"))
        connection.execute(text("ALTER TABLE jobs DROP COLUMN settle_deadline"))
        connection.execute(text("ALTER TABLE schedules DROP COLUMN succeeded_at"))
        connection.execute(text("ALTER TABLE schedules DROP COLUMN first_run_at"))
        connection.execute(text("ALTER TABLE jobs DROP COLUMN claim"))
        connection.execute(db.schema_version.delete().where(db.schema_version.c.version > 1))
        connection.execute(
            text(
                "INSERT INTO jobs (key, kind, instance, ticket_id, status, reason, events, "
                "attempts, run_at, created_at) VALUES ('fake:a:1', 'fake', 'a', '1', 'queued', "
                "'webhook', 3, 0, :t, :t)"
            ),
            {"t": T0.replace(tzinfo=None) if engine.dialect.name == "sqlite" else T0},
        )
    assert db.current_version(engine) == 1
    assert db.upgrade(engine) == [2, 3, 4]
    store = JobStore(engine, clock=clock, settle_seconds=2, settle_max_seconds=5)
    try:
        store.ingest("fake", "a", event("1", "d1"), b"{}")  # coalesces into the v1 job
        (job,) = store.list_jobs("queued")
        assert job.events == 4
        assert job.run_at == T0 + dt.timedelta(seconds=2)
    finally:
        store.close()


def test_v3_counts_every_earlier_tick_as_a_success(database_url: str, clock: Clock) -> None:
    from sqlalchemy import text

    engine = db.make_engine(database_url)
    db.upgrade(engine)
    store = JobStore(engine, clock=clock)
    try:
        assert store.try_tick("reconcile", 60, "a") is not None  # a v2 replica ticked at T0
        with engine.begin() as connection:  # make it a v2 database, as released
            connection.execute(text("ALTER TABLE schedules DROP COLUMN succeeded_at"))
            connection.execute(text("ALTER TABLE schedules DROP COLUMN first_run_at"))
            connection.execute(text("ALTER TABLE jobs DROP COLUMN claim"))
            connection.execute(db.schema_version.delete().where(db.schema_version.c.version > 2))
        assert db.upgrade(engine) == [3, 4]
        clock.advance(seconds=60)
        tick = store.try_tick("reconcile", 60, "a")
        assert tick is not None and tick.since == T0  # not the epoch: no sweep starts over
    finally:
        store.close()


def test_v4_starts_a_schedule_without_success_from_its_last_tick(
    database_url: str, clock: Clock
) -> None:
    """A v3 database does not know when a task first ticked: its last tick stands in. A job a
    v3 replica claimed has no claim token; the reaper takes it over all the same."""
    from sqlalchemy import text

    engine = db.make_engine(database_url)
    db.upgrade(engine)
    store = JobStore(engine, clock=clock)
    try:
        assert store.try_tick("reconcile", 60, "a") is not None  # that sweep failed
        clock.advance(seconds=60)
        assert store.try_tick("reconcile", 60, "a") is not None  # and that one
        store.ingest("fake", "a", event("1", "d1"), b"{}")
        assert store.claim("v3-worker", 30) is not None
        with engine.begin() as connection:  # make it a v3 database, as released
            connection.execute(text("ALTER TABLE schedules DROP COLUMN first_run_at"))
            connection.execute(text("ALTER TABLE jobs DROP COLUMN claim"))
            connection.execute(db.schema_version.delete().where(db.schema_version.c.version > 3))
        assert db.upgrade(engine) == [4]
        assert store.first_tick("reconcile") == T0 + dt.timedelta(seconds=60)
        assert store.first_tick("retention") is None
        (running,) = store.list_jobs("running")
        assert running.claim is None
        clock.advance(seconds=31)
        assert store.reap() == 1
        assert store.counts()["queued"] == 1
    finally:
        store.close()


def test_a_tick_records_the_first_one(store: JobStore, clock: Clock) -> None:
    assert store.first_tick("sweep") is None
    assert store.try_tick("sweep", 60, "a") is not None
    clock.advance(seconds=60)
    assert store.try_tick("sweep", 60, "b") is not None
    assert store.first_tick("sweep") == T0


def test_an_id_past_64_bits_names_no_job(store: JobStore) -> None:
    """An id from a URL or the command line can be any size; the drivers bind 64 bits only."""
    for job_id in (MAX_ID, MAX_ID + 1, 10**30, 0, -1):
        assert store.get(job_id) is None
        assert store.runs(job_id) == []
        assert store.replay(job_id) is False


def test_stored_events_can_be_listed_read_and_their_tickets_found(
    store: JobStore, clock: Clock
) -> None:
    store.ingest("fake", "a", event("1", "d1"), '{"n": "при"}'.encode())
    clock.advance(minutes=10)
    store.ingest("fake", "a", event("2", "d2"), b"{}")
    store.ingest("fake", "b", event("1", "d3"), b"{}")
    store.ingest("fake", "a", event("1", "d4"), b"{}")
    listed = store.list_events()
    assert [e.delivery_id for e in listed] == ["d4", "d3", "d2", "d1"]
    assert listed[-1].body_length == len('{"n": "при"}') and listed[-1].received_at == T0
    assert [e.delivery_id for e in store.list_events(instance="a", ticket_id="1")] == ["d4", "d1"]
    assert [e.delivery_id for e in store.list_events(since=T0 + dt.timedelta(minutes=1))] == [
        "d4",
        "d3",
        "d2",
    ]
    assert len(store.list_events(limit=2)) == 2
    found = store.get_event(listed[-1].id)
    assert found is not None and found == (listed[-1], '{"n": "при"}')
    assert store.get_event(MAX_ID + 1) is None and store.get_event(10**6) is None
    # each ticket once, in the order of its first webhook in the window
    later = T0 + dt.timedelta(minutes=5)
    assert store.tickets_with_events(T0) == [
        ("fake", "a", "1"),
        ("fake", "a", "2"),
        ("fake", "b", "1"),
    ]
    assert store.tickets_with_events(later) == [
        ("fake", "a", "2"),
        ("fake", "b", "1"),
        ("fake", "a", "1"),
    ]
    assert store.tickets_with_events(T0, later) == [("fake", "a", "1")]
    assert store.tickets_with_events(T0, instance="b") == [("fake", "b", "1")]
    assert store.tickets_with_events(T0, ticket_id="2") == [("fake", "a", "2")]


def test_text_no_engine_can_store_is_kept_readable(store: JobStore, clock: Clock) -> None:
    """A helpdesk's error text (or a ticket field in the audit) may hold a NUL or a lone
    surrogate; PostgreSQL refuses the first in text, and neither driver can encode the second.
    Recording such a failure failed, so the job stayed running until its lease expired and ran
    again, forever. The store replaces what it cannot keep, on both engines."""
    store.ingest("fake", "a", event("1", "d1"), b"{}")
    job = store.claim("w", 30)
    assert job is not None
    reason = "PATCH /api/tickets/1 -> 422: bad \x00 byte \ud800 here"
    run = RunRecord(
        worker="w",
        started_at=clock(),
        finished_at=clock(),
        outcome="failed",
        decision={"title": "a\x00b", "note": "\udfff", "tags": ["\x00"]},
        plan={"tags": ["c\x00"]},
        calls=[{"body": "\ud83d"}],
        error=reason,
    )
    assert store.fail(job, "w", reason, permanent=True, record=run) == "dead"
    (dead,) = store.list_jobs("dead")
    assert dead.last_error == "PATCH /api/tickets/1 -> 422: bad \ufffd byte \ufffd here"
    (audit,) = store.runs(dead.id)
    assert audit["error"] == dead.last_error
    assert audit["decision"] == {"title": "a\ufffdb", "note": "\ufffd", "tags": ["\ufffd"]}
    assert audit["plan"] == {"tags": ["c\ufffd"]}
    assert audit["calls"] == [{"body": "\ufffd"}]
