"""Crash test: two worker processes, 2000 events over 100 tickets, ``kill -9`` of one mid-run.

Checks, on both engines: every ticket converges to the decision of its final data; no event is
lost (each one's job ran to ``done``); no two runs of one ticket overlap; nothing is dead.
"""

from __future__ import annotations

import datetime as dt
import itertools
import random
import signal
import subprocess
import sys
from pathlib import Path

import yaml
from sqlalchemy import exists, select

from connector.helpdesks.base import IncomingEvent
from connector.helpdesks.fake.adapter import FakeAdapter
from connector.pipeline.db import events, jobs
from connector.pipeline.plan import diff
from connector.pipeline.store import JobStore
from connector.policy.decision import Policy, decide
from connector.sandbox.fake_helpdesk import FakeHelpdesk, wait_until
from tests.pipeline.conftest import ROOT, TOKEN

TICKETS = 100
EVENTS = 2000
LICENSES = ("partner", "commercial", "enterprise", "noncommercial", "unknown")
SUBJECTS = ("Сайт не открывается, ошибка 500", "Вопрос по API D7", "Нужно разработать компонент")


def _start_worker(config: Path, log: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "connector.cli", "worker", "--config", str(config)]
    with log.open("ab") as handle:  # the child keeps its own descriptor
        return subprocess.Popen(
            [*command, "--log-level", "WARNING"], stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT
        )


def test_kill_9_loses_nothing(database_url: str, tmp_path: Path, policy: Policy) -> None:
    helpdesk = FakeHelpdesk(TOKEN)
    helpdesk.start()
    config = tmp_path / "settings.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "database_url": database_url,
                "mappings_dir": str(ROOT / "mappings"),
                "lease_seconds": 2,
                "settle_seconds": 0.02,
                "settle_max_seconds": 1,
                "backoff_base_seconds": 0.5,
                "backoff_cap_seconds": 2,
                "worker_concurrency": 4,
                "reconcile_interval_seconds": 3600,
                "instances": [
                    {
                        "name": "main",
                        "kind": "fake",
                        "url": helpdesk.base_url,
                        "token": TOKEN,
                        "webhook_secret": "unused",
                    }
                ],
            }
        ),
        encoding="utf-8",
    )
    store = JobStore.open(database_url, settle_seconds=0.02, settle_max_seconds=1)
    adapter = FakeAdapter("main", helpdesk.base_url, TOKEN, timeout=10)
    rng = random.Random(2000)
    ids = [
        str(helpdesk.create_ticket(subject=rng.choice(SUBJECTS), body="")["id"])
        for _ in range(TICKETS)
    ]
    log = tmp_path / "workers.log"
    workers = [_start_worker(config, log), _start_worker(config, log)]
    try:
        victim: int | None = None
        number = 0
        # 2000 events; from the middle on, kill -9 worker 0 the first time it is caught in a
        # job. Events keep coming until then (bounded), so there is always work to be caught in.
        while number < EVENTS or (victim is None and number < EVENTS * 3):
            ticket = rng.choice(ids)
            helpdesk.update_ticket(
                ticket,
                subject=rng.choice(SUBJECTS),
                organization={
                    "id": "o" + ticket,
                    "name": "Org " + ticket,
                    "fields": {"bitrix_license_type": rng.choice(LICENSES)},
                },
            )
            store.ingest(
                "fake", "main", IncomingEvent(ticket_id=ticket, delivery_id=f"e{number}"), b"{}"
            )
            number += 1
            if victim is None and number >= EVENTS // 2:
                victim = _kill_if_mid_job(store, workers[0])
        assert victim is not None, "worker 0 was never caught in a job"
        workers[0] = _start_worker(config, log)

        def settled() -> bool:
            counts = store.counts()
            return counts["queued"] == 0 and counts["running"] == 0

        wait_until(settled, timeout=180, interval=0.2)
        assert all(worker.poll() is None for worker in workers), log.read_text()[-3000:]
        _check(store, helpdesk, adapter, policy, ids, number)
        # the job killed mid-run was taken over after its lease expired, and completed
        after = store.get(victim)
        assert after is not None and after.status == "done"
        assert after.attempts >= 2 or after.outcome == "superseded"
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
        for worker in workers:
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
        helpdesk.stop()
        store.close()


def _kill_if_mid_job(store: JobStore, worker: subprocess.Popen[bytes]) -> int | None:
    """If the worker holds a running job, ``kill -9`` it and return the job id; else None.

    SIGSTOP first makes the observation exact: a frozen process cannot finish the job between
    our look at the table and the kill. The signal is delivered asynchronously, so the look
    waits until every thread of the worker is stopped: one still running on the other CPU
    could commit the job's end just after the look.
    """

    def mine() -> list[int]:
        return [
            job.id
            for job in store.list_jobs("running")
            if f":{worker.pid}:" in (job.locked_by or "")
        ]

    if not mine():
        return None
    worker.send_signal(signal.SIGSTOP)
    wait_until(lambda: _all_threads_stopped(worker.pid), timeout=10, interval=0.001)
    held = mine()
    if held:
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
        return held[0]
    worker.send_signal(signal.SIGCONT)
    return None


def _check(
    store: JobStore,
    helpdesk: FakeHelpdesk,
    adapter: FakeAdapter,
    policy: Policy,
    ids: list[str],
    sent: int,
) -> None:
    assert store.counts()["dead"] == 0, store.list_jobs("dead")
    with store.engine.connect() as connection:
        stored = connection.execute(select(events.c.id)).all()
        # lost: an event whose ticket has no job, or still has one that did not end done
        has_job = exists().where(jobs.c.key == events.c.job_key)
        unfinished = exists().where(jobs.c.key == events.c.job_key, jobs.c.status != "done")
        lost = connection.execute(select(events.c.delivery_id).where(~has_job | unfinished)).all()
    assert len(stored) == sent
    assert lost == []

    now = dt.datetime.now(dt.UTC)
    for ticket in ids:
        snapshot = adapter.read(ticket)
        plan = diff(decide(snapshot, policy, now), snapshot, policy.overrides.tag_prefix)
        assert plan.is_empty, (ticket, plan)

    total_runs = 0
    for ticket in ids:
        spans = sorted(
            (run["started_at"], run["finished_at"])
            for run in store.ticket_runs("fake", "main", ticket)
        )
        total_runs += len(spans)
        for (_, previous_end), (next_start, _) in itertools.pairwise(spans):
            assert next_start >= previous_end, f"runs of ticket {ticket} overlap"
    assert helpdesk.max_concurrent_per_ticket() <= 1
    assert TICKETS <= total_runs <= sent + TICKETS
    print(f"\n{sent} events -> {total_runs} runs over {TICKETS} tickets, 0 lost, 0 dead")


def _all_threads_stopped(pid: int) -> bool:
    """Whether every thread of ``pid`` is in the stopped state (``T`` in /proc/…/stat)."""
    states = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except FileNotFoundError:  # a thread that ended meanwhile
            continue
        states.append(stat.rsplit(")", 1)[1].split()[0])
    return bool(states) and all(state in ("T", "t") for state in states)
