"""Webhooks while retention deletes a large backlog: chunked purge against one transaction.

A SQLite store as ``serve`` runs it (WAL, ``synchronous=FULL``, group commit) is filled with
``--events`` events older than the retention period, each with the Zammad webhook body captured
in ``tests/fixtures/zammad`` (12 KB), and copied. On each copy retention runs once while a
thread sends a new webhook every 10 ms, each stored through the same store on a request thread
of its own (32 of them), as the edge does, and timed from its scheduled send time (so a stall
shows up instead of slowing the sender):

* in ONE transaction (``chunk_rows`` larger than the backlog: how retention ran before), the
  baseline; every webhook that arrives meanwhile waits until the whole delete has committed;
* in transactions of :data:`~connector.pipeline.store.PURGE_CHUNK_ROWS` rows, as it runs now.

Prints, for both, how long the purge took and the webhooks' p50, p99 and longest wait, and the
ratio of the longest waits. A backlog like this is what the first run after shortening the
retention period meets (1000 tickets a day with ten webhooks each, 30 days cut to 7: 230 000
events). A webhook that waits longer than the helpdesk's read timeout (30 s for both Zammad and
Znuny) is sent again, and another process's write waits at most SQLite's busy timeout (30 s)
before it fails with 503; the target is that no webhook waits as long as a second.

Run: ``.venv/bin/python benchmarks/bench_retention.py [--events N]`` (about a minute with the
default 40 000 events, which take 0.5 GB of disk under the system's temporary directory).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from connector.helpdesks.base import IncomingEvent
from connector.pipeline import db
from connector.pipeline.store import PURGE_CHUNK_ROWS, JobStore

ROOT = Path(__file__).resolve().parents[1]
BODY = (ROOT / "tests/fixtures/zammad/ticket__created.json").read_bytes()
KEEP = dt.timedelta(days=30)
AGE = dt.timedelta(days=31)
INTERVAL = 0.010  # one webhook every 10 ms while the purge runs


class ShiftedClock:
    """The store's clock: ``AGE`` in the past while the backlog is written, then the present."""

    def __init__(self) -> None:
        self.shift = -AGE

    def __call__(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + self.shift


def fill(path: Path, count: int) -> None:
    """``count`` old events over 1000 tickets, written in batches as the edge would."""
    clock = ShiftedClock()
    store = JobStore(db.make_engine(f"sqlite:///{path}"), clock=clock)
    db.upgrade(store.engine)
    try:
        for first in range(0, count, 1000):
            batch = [
                (
                    "zammad",
                    "main",
                    IncomingEvent(ticket_id=str(n % 1000), delivery_id=f"old-{n}"),
                    BODY,
                )
                for n in range(first, min(first + 1000, count))
            ]
            store.ingest_many(batch)
    finally:
        store.close()
    with sqlite3.connect(path) as connection:  # fold the WAL in, so a copy is the whole store
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def run(path: Path, chunk_rows: int) -> tuple[float, int, list[float]]:
    """Purge with ``chunk_rows`` while webhooks keep coming; (seconds, rows, waits in s)."""
    store = JobStore(db.make_engine(f"sqlite:///{path}"), group_commit=True)
    waits: list[float] = []
    purged = threading.Event()

    def webhook(n: int, due: float) -> None:
        incoming = IncomingEvent(ticket_id=str(n % 50), delivery_id=f"new-{n}")
        store.ingest("zammad", "main", incoming, BODY)
        waits.append(time.monotonic() - due)

    def webhooks(pool: ThreadPoolExecutor) -> None:
        """Open loop: each webhook on its own request thread, as the edge's are, so those that
        queue behind the purge share a commit when they get in."""
        start = time.monotonic()
        n = 0
        while not purged.is_set():
            due = start + n * INTERVAL
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            pool.submit(webhook, n, due)
            n += 1

    with ThreadPoolExecutor(max_workers=32, thread_name_prefix="request") as pool:
        sender = threading.Thread(target=webhooks, args=(pool,), name="webhooks")
        try:
            sender.start()
            time.sleep(0.2)  # the webhooks are flowing before the purge starts
            began = time.monotonic()
            removed = store.purge(KEEP, chunk_rows=chunk_rows)
            took = time.monotonic() - began
            time.sleep(0.2)
        finally:
            purged.set()
            sender.join()
    store.close()
    return took, removed["events"], waits


def describe(label: str, took: float, rows: int, waits: list[float]) -> str:
    ordered = sorted(waits)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (
        f"{label:<34} {rows:>7} rows in {took:6.2f} s   webhooks: {len(waits):>5}, "
        f"p50 {statistics.median(ordered) * 1000:7.1f} ms, p99 {p99 * 1000:7.1f} ms, "
        f"longest {ordered[-1] * 1000:7.1f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=40_000, help="old events to delete")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-retention-") as tmp:
        filled = Path(tmp) / "filled.sqlite"
        began = time.monotonic()
        fill(filled, args.events)
        size = filled.stat().st_size / 1e6
        print(
            f"backlog: {args.events} events, {size:.0f} MB, written in "
            f"{time.monotonic() - began:.1f} s"
        )
        results = {}
        for label, chunk in (
            ("one transaction (before)", args.events + 1),
            (f"chunks of {PURGE_CHUNK_ROWS} rows (now)", PURGE_CHUNK_ROWS),
        ):
            copy = Path(tmp) / f"purge-{chunk}.sqlite"
            shutil.copyfile(filled, copy)
            os.sync()  # else the copy's writeback would stall the runs' own fsyncs
            took, rows, waits = run(copy, chunk)
            if rows != args.events:
                print(f"{label}: deleted {rows} rows, expected {args.events}", file=sys.stderr)
                return 1
            results[label] = max(waits)
            print(describe(label, took, rows, waits))
            copy.unlink()
        before, now = results.values()
        verdict = "meets" if now < 1.0 else "MISSES"
        print(
            f"longest webhook wait: {now * 1000:.0f} ms in chunks against {before * 1000:.0f} ms "
            f"in one transaction ({now / before:.1%} of it; {verdict} the < 1 s target)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
