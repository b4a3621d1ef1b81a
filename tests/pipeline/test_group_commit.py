"""Group commit: concurrent ingests share transactions; each answers after its own commit."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from connector.helpdesks.base import IncomingEvent
from connector.pipeline import db
from connector.pipeline.group_commit import GroupCommit
from connector.pipeline.store import IngestResult, JobStore


def test_concurrent_ingests_share_commits_and_lose_nothing(database_url: str) -> None:
    engine = db.make_engine(database_url)
    db.upgrade(engine)
    store = JobStore(engine, group_commit=True)
    results: list[IngestResult] = []
    lock = threading.Lock()
    barrier = threading.Barrier(16)

    def send(thread: int) -> None:
        barrier.wait()
        for number in range(25):
            # every delivery is sent twice: the second must be a duplicate, even in one batch
            for _ in range(2):
                event = IncomingEvent(ticket_id=str(number % 10), delivery_id=f"{thread}-{number}")
                outcome = store.ingest("fake", "main", event, b"{}")
                with lock:
                    results.append(outcome)

    threads = [threading.Thread(target=send, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert len(results) == 800
        assert sum(not r.duplicate for r in results) == 400
        assert store.counts()["queued"] == 10
        assert sum(job.events for job in store.list_jobs("queued")) == 400
        group = store._group
        assert group is not None and group.items == 800
        assert group.batches < group.items  # some transactions carried several webhooks
    finally:
        store.close()


def test_a_failing_item_does_not_fail_its_batch() -> None:
    gate = threading.Event()
    seen_batches: list[list[int]] = []

    def run_batch(items: list[int]) -> list[int]:
        gate.wait(5)
        seen_batches.append(items)
        if 13 in items:
            raise RuntimeError("item 13 is bad")
        return [item * 2 for item in items]

    def run_one(item: int) -> int:
        if item == 13:
            raise ValueError("bad item")
        return item * 2

    group: GroupCommit[int, int] = GroupCommit(run_batch, run_one)
    outcomes: dict[int, object] = {}

    def submit(item: int) -> None:
        try:
            outcomes[item] = group.submit(item)
        except ValueError as exc:
            outcomes[item] = exc

    threads = [threading.Thread(target=submit, args=(n,)) for n in (11, 12, 13, 14)]
    for thread in threads:
        thread.start()
    gate.set()
    for thread in threads:
        thread.join()
    assert {k: v for k, v in outcomes.items() if k != 13} == {11: 22, 12: 24, 14: 28}
    assert isinstance(outcomes[13], ValueError)


@pytest.mark.parametrize("max_batch", [1, 3])
def test_batches_never_exceed_the_limit(max_batch: int) -> None:
    sizes: list[int] = []
    release = threading.Event()

    def run_batch(items: list[int]) -> list[int]:
        release.wait(5)
        sizes.append(len(items))
        return items

    group: GroupCommit[int, int] = GroupCommit(run_batch, lambda item: item, max_batch=max_batch)
    threads = [threading.Thread(target=group.submit, args=(n,)) for n in range(10)]
    for thread in threads:
        thread.start()
    release.set()
    for thread in threads:
        thread.join()
    assert sum(sizes) == 10
    assert max(sizes) <= max_batch


def wait_until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    """Poll ``condition`` (a state the test waits for, not a guessed delay)."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the condition never came true"
        time.sleep(0.001)


def test_items_queued_while_the_leader_waits_for_the_lock_share_its_batch() -> None:
    lock = threading.Lock()
    batches: list[list[int]] = []

    def run_batch(items: list[int]) -> list[int]:
        batches.append(items)
        return [item * 10 for item in items]

    group: GroupCommit[int, int] = GroupCommit(run_batch, lambda item: item, hold=lambda: lock)
    outcomes: dict[int, int] = {}

    def submit(item: int) -> None:
        outcomes[item] = group.submit(item)

    with lock:  # another process's commit, as the leader sees it
        threads = [threading.Thread(target=submit, args=(n,)) for n in range(6)]
        for thread in threads:
            thread.start()
        wait_until(lambda: len(group._waiting) == 6)
    for thread in threads:
        thread.join(5)
    assert outcomes == {n: n * 10 for n in range(6)}
    assert len(batches) == 1 and sorted(batches[0]) == list(range(6))


def test_a_lock_failure_fails_the_leader_only_and_the_lead_moves_on() -> None:
    class FailingOnce:
        failures = 1

        def __enter__(self) -> None:
            if self.failures:
                self.failures -= 1
                raise OSError("lock file gone")

        def __exit__(self, *exc: object) -> None:
            return None

    hold = FailingOnce()
    group: GroupCommit[int, int] = GroupCommit(
        lambda items: [item + 1 for item in items], lambda item: item + 1, hold=lambda: hold
    )
    with pytest.raises(OSError, match="lock file gone"):
        group.submit(1)
    assert group.submit(2) == 3  # not stuck behind a leader that is gone
    assert group._waiting == [] and not group._leading
