"""Retention (``JobStore.purge``) on a real SQLite file and a real PostgreSQL database: what it
keeps, how it walks the old rows in chunks, and that every statement it runs is an index
search on both engines."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event as sa_event

from connector.pipeline.store import Job, JobStore, RunRecord
from tests.clock import Clock
from tests.pipeline.stores import T0, event, opened

KEEP = dt.timedelta(days=30)


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def store(database_url: str, clock: Clock) -> Iterator[JobStore]:
    with opened(database_url, clock) as job_store:
        yield job_store


def record(clock: Clock, outcome: str = "applied") -> RunRecord:
    return RunRecord(worker="w", started_at=clock(), finished_at=clock(), outcome=outcome)


def claimed(store: JobStore, ticket: str) -> Job:
    """A job of its own for ``ticket``, claimed by worker w."""
    store.ingest("fake", "a", event(ticket, f"d-{ticket}"), b"{}")
    job = store.claim("w", 30)
    assert job is not None and job.ticket_id == ticket
    return job


def dead_letter(store: JobStore, clock: Clock, ticket: str) -> Job:
    job = claimed(store, ticket)
    assert store.fail(job, "w", "422", permanent=True, record=record(clock, "failed")) == "dead"
    return job


def done(store: JobStore, clock: Clock, ticket: str) -> Job:
    job = claimed(store, ticket)
    assert store.finish(job, "w", record(clock))
    return job


def test_a_dead_letter_keeps_its_runs_until_replayed_and_done(
    store: JobStore, clock: Clock
) -> None:
    """Retention used to delete the audit rows of dead jobs with the others, though it never
    deletes a dead job: ``jobs show`` of an old dead letter then showed no runs, and the
    operator lost its history before replaying it."""
    dead = dead_letter(store, clock, "1")
    finished = done(store, clock, "2")
    clock.advance(days=31)
    assert store.purge(KEEP) == {"events": 2, "jobs": 1, "decisions": 1}
    assert store.runs(finished.id) == []
    assert [run["outcome"] for run in store.runs(dead.id)] == ["dead"]
    job = store.get(dead.id)
    assert job is not None and job.status == "dead"
    assert store.replay(dead.id)
    assert store.purge(KEEP) == {"events": 0, "jobs": 0, "decisions": 0}  # queued: not done yet
    again = store.claim("w", 30)
    assert again is not None and again.id == dead.id
    assert store.purge(KEEP) == {"events": 0, "jobs": 0, "decisions": 0}  # running
    assert [run["outcome"] for run in store.runs(dead.id)] == ["dead"]
    assert store.finish(again, "w", record(clock))
    # replayed and done: normal retention, so the old run goes at once and the new one stays
    assert store.purge(KEEP) == {"events": 0, "jobs": 0, "decisions": 1}
    assert [run["outcome"] for run in store.runs(dead.id)] == ["applied"]
    clock.advance(days=31)
    assert store.purge(KEEP) == {"events": 0, "jobs": 1, "decisions": 1}
    assert store.runs(dead.id) == [] and store.get(dead.id) is None


def test_a_dead_letter_replayed_beside_a_queued_job_loses_its_runs_to_retention(
    store: JobStore, clock: Clock
) -> None:
    """Replayed while the ticket had a queued job, a dead letter is done at once ("replayed"):
    retention treats it as any finished job."""
    dead = dead_letter(store, clock, "1")
    clock.advance(days=31)
    store.ingest("fake", "a", event("1", "newer"), b"{}")
    assert store.replay(dead.id)
    job = store.get(dead.id)
    assert job is not None and (job.status, job.outcome) == ("done", "replayed")
    # the job finished before the replay: its finished_at is the time it went dead
    assert store.purge(KEEP) == {"events": 1, "jobs": 1, "decisions": 1}
    assert store.runs(dead.id) == []


def test_retention_walks_past_kept_rows_in_chunks(store: JobStore, clock: Clock) -> None:
    """Old dead letters come first in the order of time, and a chunk may keep all its rows: the
    run goes on after it (a chunk that deleted fewer rows than its size used to end it), each
    transaction deletes at most ``chunk_rows`` rows, and ``stop`` still ends the run between
    two chunks."""
    dead = [dead_letter(store, clock, f"dead-{n}") for n in range(6)]
    clock.advance(seconds=1)
    finished = [done(store, clock, f"done-{n}") for n in range(7)]
    clock.advance(days=31)
    deleted: dict[str, list[int]] = {"events": [], "jobs": [], "decisions": []}

    def count(
        _conn: object, cursor: Any, statement: str, _parameters: object, *_rest: object
    ) -> None:
        match = re.match(r"\s*DELETE FROM (\w+)", statement)
        if match:
            deleted[match.group(1)].append(cursor.rowcount)

    sa_event.listen(store.engine, "after_cursor_execute", count)
    asked: list[bool] = []

    def stop_after_three_chunks() -> bool:
        asked.append(True)
        return len(asked) > 3

    first = store.purge(KEEP, chunk_rows=3, stop=stop_after_three_chunks)
    assert first == {"events": 9, "jobs": 0, "decisions": 0}
    assert deleted == {"events": [3, 3, 3], "jobs": [], "decisions": []}
    for rows in deleted.values():
        rows.clear()
    assert store.purge(KEEP, chunk_rows=3) == {"events": 4, "jobs": 7, "decisions": 7}
    # 13 old rows of each table, 3 a chunk; the six dead letters and their runs come first
    assert deleted == {
        "events": [3, 1],
        "jobs": [0, 0, 3, 3, 1],
        "decisions": [0, 0, 3, 3, 1],
    }
    for job in dead:
        assert [run["outcome"] for run in store.runs(job.id)] == ["dead"]
    assert all(store.get(job.id) is None for job in finished)
    assert store.counts() == {"queued": 0, "running": 0, "done": 0, "dead": 6}


def test_a_chunk_of_exactly_the_rows_left_ends_with_an_empty_one(
    store: JobStore, clock: Clock
) -> None:
    for n in range(4):
        done(store, clock, str(n))
    clock.advance(days=31)
    deleted: list[int] = []

    def count(
        _conn: object, cursor: Any, statement: str, _parameters: object, *_rest: object
    ) -> None:
        if statement.lstrip().startswith("DELETE FROM decisions"):
            deleted.append(cursor.rowcount)

    sa_event.listen(store.engine, "after_cursor_execute", count)
    assert store.purge(KEEP, chunk_rows=2) == {"events": 4, "jobs": 4, "decisions": 4}
    assert deleted == [2, 2, 0]


#: the indexes retention may read: the primary keys and each table's index of its time column
RETENTION_INDEXES = {
    "pkey",  # SQLite's INTEGER PRIMARY KEY
    "events_pkey",
    "jobs_pkey",
    "decisions_pkey",
    "events_received_idx",
    "jobs_finished_at",
    "decisions_finished_idx",
}


def unindexed(plan: list[str], sqlite: bool) -> list[str]:
    """The lines of a query plan that read a table otherwise than through
    :data:`RETENTION_INDEXES`, or sort rows that its time index gives in order (SQLite)."""
    wrong = []
    for line in plan:
        if sqlite:
            access = re.match(r"(?:SCAN|SEARCH) (\w+)", line)
            index = re.search(r"USING (?:COVERING )?INDEX (\w+)|(INTEGER PRIMARY KEY)", line)
            table_read = access is not None and access.group(1) != "chunk"  # chunk: rows chosen
            if "TEMP B-TREE" in line or (
                table_read
                and (index is None or (index.group(1) or "pkey") not in RETENTION_INDEXES)
            ):
                wrong.append(line)
        else:
            used = re.findall(r"Index (?:Only )?Scan using (\w+)|Bitmap Index Scan on (\w+)", line)
            names = {name for pair in used for name in pair if name}
            if "Seq Scan" in line or not names <= RETENTION_INDEXES:
                wrong.append(line)
    return wrong


def test_every_statement_of_retention_is_an_index_search(store: JobStore, clock: Clock) -> None:
    """Each statement purge runs reads the time index of its table, primary keys, or both:
    never a whole table, nor another index. (On SQLite the jobs' chunk used to be found on the
    index of ``status``: every done job was read whenever fewer old ones than a chunk were
    left, the end of every run, under the write lock.) PostgreSQL is told to avoid sequential
    scans, which it prefers on tables this small."""
    for n in range(5):
        dead_letter(store, clock, f"dead-{n}")
        done(store, clock, f"done-{n}")
    clock.advance(days=31)
    for n in range(3):
        done(store, clock, f"recent-{n}")
    sqlite = store.is_sqlite
    plans: list[tuple[str, list[str]]] = []

    def explain(
        _conn: object, cursor: Any, statement: str, parameters: Any, *_rest: object
    ) -> None:
        if not statement.lstrip().startswith(("SELECT", "DELETE")):
            return
        if not sqlite:
            cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(("EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN ") + statement, parameters)
        plans.append((statement, [str(row[-1]) for row in cursor.fetchall()]))

    sa_event.listen(store.engine, "before_cursor_execute", explain)
    assert store.purge(KEEP, chunk_rows=2) == {"events": 10, "jobs": 5, "decisions": 5}
    deletes = [statement for statement, _plan in plans if statement.lstrip().startswith("DELETE")]
    assert len(deletes) == 6 + 6 + 6  # 10 old rows of each table, 2 a chunk, and the last
    assert {statement: unindexed(plan, sqlite) for statement, plan in plans} == {
        statement: [] for statement, _plan in plans
    }
