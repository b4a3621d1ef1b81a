"""Online backup and restore of the SQLite job store, on real files with a live writer.

The store's own code writes (group commit, WAL, ``synchronous=FULL``) while a backup is taken
and while a backup is restored, so these tests see what a running service would.
"""

from __future__ import annotations

import datetime as dt
import itertools
import sqlite3
import stat
import threading
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest
from pydantic import SecretStr

from connector.errors import BackupError, BackupStopped
from connector.helpdesks.base import IncomingEvent
from connector.pipeline import backup, db, periodic
from connector.pipeline.store import JobStore
from connector.service import Service
from connector.settings import Settings
from tests.cli import run

TICKETS = 20
ROOT = Path(__file__).resolve().parents[2]


def open_store(path: Path) -> JobStore:
    return JobStore.open(f"sqlite:///{path}", migrate=True)


def ingest(store: JobStore, number: int) -> None:
    event = IncomingEvent(ticket_id=str(number % TICKETS), delivery_id=f"delivery-{number}")
    store.ingest("fake", "main", event, b'{"n": %d}' % number)


@contextmanager
def writing(store: JobStore, start: int = 0) -> Iterator[list[int]]:
    """Store webhooks on a thread until the block ends; yields the running count, which
    has reached at least 50 (so some are in the WAL only) before the block starts."""
    stored = [start]
    stop = threading.Event()
    begun = threading.Event()

    def run() -> None:
        for number in itertools.count(start + 1):
            if stop.is_set():
                return
            ingest(store, number)
            stored[0] = number
            if number >= start + 50:
                begun.set()

    thread = threading.Thread(target=run)
    thread.start()
    try:
        assert begun.wait(30)
        yield stored
    finally:
        stop.set()
        thread.join()


def rows(path: Path) -> tuple[int, int, int]:
    """Events, jobs, and events whose job row is missing, read from the file alone."""
    with closing(sqlite3.connect(path)) as connection:
        orphans = connection.execute(
            "SELECT count(*) FROM events WHERE job_key NOT IN (SELECT key FROM jobs)"
        ).fetchone()[0]
        return (
            connection.execute("SELECT count(*) FROM events").fetchone()[0],
            connection.execute("SELECT count(*) FROM jobs").fetchone()[0],
            orphans,
        )


def intact(path: Path) -> bool:
    with closing(sqlite3.connect(path)) as connection:
        try:
            return connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        except sqlite3.DatabaseError:  # too damaged to even check
            return False


class StopAfter(threading.Event):
    """A stop flag that is raised once it has been asked ``calls`` times."""

    def __init__(self, calls: int) -> None:
        super().__init__()
        self.calls = calls
        self.asked = 0

    def is_set(self) -> bool:
        self.asked += 1
        if self.asked >= self.calls:
            self.set()
        return super().is_set()


def fill(store: JobStore, webhooks: int) -> None:
    """Webhooks of 2 KB each, for a database of a few hundred pages."""
    for number in range(webhooks):
        event = IncomingEvent(ticket_id=str(number % TICKETS), delivery_id=f"fill-{number}")
        store.ingest("fake", "main", event, b'{"pad": "%s"}' % (b"x" * 2000))


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[Path, JobStore]]:
    path = tmp_path / "live" / "bitrix-sla.db"
    store = open_store(path)
    yield path, store
    store.close()


def test_a_backup_taken_under_load_is_one_consistent_self_contained_file(
    live: tuple[Path, JobStore], tmp_path: Path
) -> None:
    path, store = live
    with writing(store) as stored:
        before = stored[0]
        snapshot, removed = backup.backup(path, tmp_path / "copy.db")
        after = stored[0]
    assert removed == []
    # moved on its own: only the one file, no -wal or -shm beside it
    alone = tmp_path / "elsewhere" / "restored.db"
    alone.parent.mkdir()
    (tmp_path / "copy.db").rename(alone)
    events, jobs, orphans = rows(alone)
    assert before <= events <= after  # a state between two commits, WAL content included
    assert (snapshot.events, snapshot.jobs) == (events, jobs)
    assert jobs == TICKETS
    assert orphans == 0  # an event and its job are in the copy together, or neither
    assert snapshot.schema_version == db.LATEST
    with closing(sqlite3.connect(alone)) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("delete",)
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert stat.S_IMODE(alone.stat().st_mode) == 0o600  # it holds webhook bodies


def test_commits_between_steps_neither_restart_a_backup_nor_get_into_it(
    live: tuple[Path, JobStore], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large database is copied a step at a time; a webhook is committed after every step
    here. The copy is still the state the backup began with (one read transaction), and no
    commit sends it back to the first page, so under steady load it still ends."""
    path, store = live
    fill(store, 100)
    monkeypatch.setattr(backup, "STEP_PAGES", 8)
    steps: list[int] = []  # pages left after each step
    progress = backup._until

    def committing(stop: Callable[[], bool], database: Path) -> Callable[[int, int, int], None]:
        def step(status: int, left: int, total: int) -> None:
            steps.append(left)
            ingest(store, 1000 + len(steps))  # another connection commits meanwhile
            progress(stop, database)(status, left, total)

        return step

    monkeypatch.setattr(backup, "_until", committing)
    snapshot, _ = backup.backup(path, tmp_path / "copy.db")
    assert len(steps) > 10
    assert steps == sorted(steps, reverse=True) and steps[-1] == 0  # never started again
    assert snapshot.events == rows(tmp_path / "copy.db")[0] == 100
    assert rows(path)[0] == 100 + len(steps)  # each of those commits is in the database


def test_a_directory_gets_time_named_backups_and_keeps_the_newest(
    live: tuple[Path, JobStore], tmp_path: Path
) -> None:
    path, store = live
    ingest(store, 1)
    folder = tmp_path / "backups"
    folder.mkdir()
    (folder / "notes.txt").write_text("not a backup", encoding="utf-8")
    moments = iter(
        dt.datetime(2026, 11, 29, 3, 0, tzinfo=dt.UTC) + dt.timedelta(days=n) for n in range(4)
    )
    made = []
    for _ in range(4):
        snapshot, removed = backup.backup(path, folder, keep=2, now=lambda: next(moments))
        made.append((snapshot.path, removed))
    names = [snapshot.name for snapshot, _ in made]
    assert names[0] == "bitrix-sla-20261129T030000.000Z.db"
    assert [removed for _, removed in made] == [[], [], [made[0][0]], [made[1][0]]]
    assert sorted(p.name for p in folder.iterdir()) == [*names[2:], "notes.txt"]


@pytest.fixture
def stepped(live: tuple[Path, JobStore], monkeypatch: pytest.MonkeyPatch) -> Path:
    """The live database with 300 webhooks, copied 16 pages a step: a backup of many steps."""
    path, store = live
    fill(store, 300)
    monkeypatch.setattr(backup, "STEP_PAGES", 16)
    return path


def test_a_backup_stops_between_two_steps_and_leaves_nothing(stepped: Path, tmp_path: Path) -> None:
    """Shutdown (or Ctrl-C) need not wait for a large database to be copied to the end."""
    path = stepped
    folder = tmp_path / "backups"
    folder.mkdir()
    old = folder / backup.backup_name(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    old.write_bytes(b"an older backup")
    stop = StopAfter(calls=3)
    with pytest.raises(BackupStopped, match=r"stopped for shutdown after 48 of \d+ pages"):
        backup.backup(path, folder, keep=1, stop=stop.is_set)
    assert stop.asked == 3  # asked between steps, and not again once it said yes
    assert [p.name for p in folder.iterdir()] == [old.name]  # no copy, no .partial, none pruned
    snapshot, removed = backup.backup(path, folder, keep=1)  # the next one is whole
    assert (snapshot.events, removed) == (300, [old])


def test_shutdown_abandons_a_periodic_backup_and_the_tick_is_not_a_success(
    stepped: Path, tmp_path: Path
) -> None:
    path = stepped
    folder = tmp_path / "backups"
    task = periodic.backups(path, folder, keep=3, interval_seconds=3600)
    assert task.run(dt.datetime.now(dt.UTC), StopAfter(calls=2)) == ""
    assert list(folder.iterdir()) == []
    assert task.run(dt.datetime.now(dt.UTC), threading.Event()) != ""
    (made,) = folder.iterdir()
    assert rows(made)[0] == 300
    missing = periodic.backups(tmp_path / "gone.db", folder, keep=3, interval_seconds=3600)
    with pytest.raises(BackupError, match="no database file"):  # a failure is still one
        missing.run(dt.datetime.now(dt.UTC), StopAfter(calls=1))


def test_a_backup_never_overwrites_and_names_what_is_wrong(
    live: tuple[Path, JobStore], tmp_path: Path
) -> None:
    path, _ = live
    existing = tmp_path / "existing.db"
    existing.write_bytes(b"precious")
    with pytest.raises(BackupError, match="already exists"):
        backup.backup(path, existing)
    assert existing.read_bytes() == b"precious"
    with pytest.raises(BackupError, match="no such directory"):
        backup.backup(path, tmp_path / "missing" / "copy.db")
    with pytest.raises(BackupError, match="--keep needs a directory"):
        backup.backup(path, tmp_path / "copy.db", keep=3)
    with pytest.raises(BackupError, match="no database file"):
        backup.backup(tmp_path / "nothing.db", tmp_path / "copy.db")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing.db", "live"]


def test_restore_under_load_replaces_everything_at_once(
    live: tuple[Path, JobStore], tmp_path: Path
) -> None:
    """The service keeps running: its writes before the restore are replaced, its writes
    after it land in the restored database, and it never sees a mix."""
    path, store = live
    for number in range(1, 31):
        ingest(store, number)
    saved, _ = backup.backup(path, tmp_path / "saved.db")
    assert saved.events == 30
    with writing(store, start=1000) as stored:
        restored, before = backup.restore(path, saved.path)
    last = stored[0]
    assert before is not None and before.events >= 80
    assert restored.events == 30
    events, jobs, orphans = rows(path)
    assert (jobs, orphans) == (TICKETS, 0)
    with closing(sqlite3.connect(path)) as connection:
        numbers = sorted(
            int(row[0].removeprefix("delivery-"))
            for row in connection.execute("SELECT delivery_id FROM events")
        )
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    # the backup's 30, then every webhook stored after the switch and none from before it
    # (at least 50 were stored before the restore began)
    assert numbers[:30] == list(range(1, 31))
    later = numbers[30:]
    if later:
        assert later == list(range(later[0], last + 1))
        assert later[0] > 1050
    assert len(later) == events - 30
    ingest(store, 5000)  # the running store goes on writing
    assert rows(path)[0] == events + 1


def test_restore_refuses_what_is_not_a_job_store_backup(
    live: tuple[Path, JobStore], tmp_path: Path
) -> None:
    path, store = live
    ingest(store, 1)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not sqlite at all" * 100)
    other = tmp_path / "other.db"
    with closing(sqlite3.connect(other)) as connection:
        connection.execute("CREATE TABLE t (x)")
    newer = tmp_path / "newer.db"
    backup.backup(path, newer)
    with closing(sqlite3.connect(newer)) as connection:
        connection.execute(
            "INSERT INTO schema_version VALUES (?, ?)", (db.LATEST + 1, "2030-01-01 00:00:00")
        )
        connection.commit()
    cases = [
        (junk, "not a readable SQLite database"),
        (other, "not a job store"),
        (newer, f"schema version {db.LATEST + 1} is newer"),
        (tmp_path / "absent.db", "no such file"),
    ]
    for source, reason in cases:
        with pytest.raises(BackupError, match=reason):
            backup.restore(path, source)
    assert rows(path)[:2] == (1, 1)  # untouched


def test_restore_mends_a_damaged_database(tmp_path: Path) -> None:
    """Restoring is what one does when the live file is damaged: pages overwritten with
    garbage are replaced; a file that is not a database at all gets the way out named."""
    path = tmp_path / "live.db"
    store = open_store(path)
    try:
        for number in range(1, 201):
            ingest(store, number)
        saved, _ = backup.backup(path, tmp_path / "saved.db")
    finally:
        store.close()
    with closing(sqlite3.connect(path)) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(path.read_bytes())
    page = 4096
    assert len(data) > 6 * page
    data[2 * page : len(data) - page] = b"\xa5" * (len(data) - 3 * page)
    path.write_bytes(bytes(data))
    assert not intact(path)

    restored, _ = backup.restore(path, saved.path)

    assert restored.events == 200
    assert rows(path) == (200, TICKETS, 0)
    assert intact(path)

    path.write_bytes(b"garbage" * 1000)
    with pytest.raises(BackupError, match="move it and its -wal and -shm files aside"):
        backup.restore(path, saved.path)
    assert path.read_bytes() == b"garbage" * 1000


def test_cli_backup_then_restore_with_migrations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    database = tmp_path / "data" / "bitrix-sla.db"
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{database}")
    monkeypatch.setenv("BITRIX_SLA_MAPPINGS", str(Path(__file__).resolve().parents[2] / "mappings"))
    store = open_store(database)
    try:
        for number in range(1, 6):
            ingest(store, number)
    finally:
        store.close()
    folder = tmp_path / "backups"
    folder.mkdir()

    code, text = run("db", "backup", str(folder), "--keep", "3")
    assert code == 0, text
    (made,) = folder.iterdir()
    assert f"to {made}" in text
    assert "5 events" in text

    store = open_store(database)
    try:
        ingest(store, 6)
    finally:
        store.close()
    code, text = run("db", "restore", str(made))
    assert code == 2
    assert "5 events" in text and "6 events" in text
    assert "add --yes" in capsys.readouterr().err
    assert rows(database)[0] == 6  # nothing changed

    # a backup of an older schema is brought up to date after the restore
    with closing(sqlite3.connect(made)) as connection:
        connection.execute(f"DELETE FROM schema_version WHERE version = {db.LATEST}")
        connection.commit()
    code, text = run("db", "restore", str(made), "--yes")
    assert code == 0, text
    assert rows(database)[0] == 5
    assert f"applied migrations [{db.LATEST}]" in text
    assert "bitrix-sla backfill --since " in text
    assert db.current_version(db.make_engine(f"sqlite:///{database}")) == db.LATEST


def test_cli_backup_refuses_postgresql_and_names_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://sla:s3cret@127.0.0.1/test")
    code, _ = run("db", "backup", str(tmp_path))
    err = capsys.readouterr().err
    assert code == 2
    assert "pg_dump" in err
    assert "s3cret" not in err
    with pytest.raises(SystemExit) as exited:
        run("db", "backup", str(tmp_path), "--keep", "0")
    assert exited.value.code == 2
    assert "--keep: '0' is not a count" in capsys.readouterr().err


def test_the_worker_backs_up_once_per_interval_and_keeps_the_newest(tmp_path: Path) -> None:
    """With ``backup_dir`` set (SQLite only), the worker's periodic thread takes a backup at
    its first tick, then once per ``backup_interval_hours``, keeping ``backup_keep``; the
    schedule records each success, which /metrics reports."""
    folder = tmp_path / "backups" / "nested"  # created by the task, owner-only
    settings = Settings(
        database_url=SecretStr(f"sqlite:///{tmp_path / 'live.db'}"),
        mappings_dir=ROOT / "mappings",
        backup_dir=folder,
        backup_interval_hours=1,
        backup_keep=2,
    )
    service = Service.from_settings(settings)
    try:
        ingest(service.store, 1)
        worker = service.worker()
        assert [task.name for task in worker.periodic][-1] == "backup"
        worker.tick_periodic()
        (first,) = folder.iterdir()
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        assert rows(first)[0] == 1
        worker.tick_periodic()  # not due yet
        assert list(folder.iterdir()) == [first]
        successes = service.store.periodic_successes()
        assert "backup" in successes
    finally:
        service.store.close()


def test_backups_are_for_sqlite_only(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="backup_dir: periodic backups copy the SQLite store"):
        Settings(
            database_url=SecretStr("postgresql+psycopg://u@127.0.0.1/test"), backup_dir=tmp_path
        )
