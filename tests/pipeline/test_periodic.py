"""The periodic tasks: the reconciliation sweep's window, on both engines."""

from __future__ import annotations

import datetime as dt
import threading

from connector.helpdesks.fake.adapter import FakeAdapter
from connector.pipeline.periodic import RECONCILE, reconciliation
from connector.pipeline.store import EPOCH, JobStore
from connector.policy.decision import Policy
from connector.sandbox.fake_helpdesk import FakeHelpdesk
from tests.clock import Clock
from tests.pipeline.conftest import make_worker, partner_ticket


def test_sweeps_fail_until_one_succeeds_and_it_covers_their_windows(
    store: JobStore,
    policy: Policy,
    clock: Clock,
    clocked: tuple[FakeHelpdesk, FakeAdapter],
) -> None:
    """While no sweep had succeeded, each started from one interval before its own tick, so
    the window of a failed first sweep was never swept again: a webhook lost just before the
    service started, while the helpdesk was down, was never caught."""
    helpdesk, adapter = clocked
    sweep = reconciliation(store, {("fake", "main"): adapter}, 300)
    worker = make_worker(store, adapter, policy, concurrency=0, periodic=(sweep,))
    ticket = partner_ticket(helpdesk)  # an agent edits it and the webhook is lost
    clock.advance(seconds=60)
    first = clock()
    helpdesk.faults.fail_for(3600, status=500, methods=["GET"])
    for _ in range(3):  # the helpdesk is down: these sweeps fail
        worker.tick_periodic()
        assert store.list_jobs() == []
        clock.advance(seconds=300)
    assert store.first_tick(RECONCILE) == first  # where every sweep starts until one works
    assert store.periodic_successes() == {}
    helpdesk.faults.clear()
    worker.tick_periodic()
    assert [(job.ticket_id, job.reason) for job in store.list_jobs()] == [(ticket, "sweep")]
    assert store.periodic_successes() == {RECONCILE: clock()}


def test_a_sweep_before_any_tick_covers_the_last_interval(
    store: JobStore,
    policy: Policy,
    clock: Clock,
    clocked: tuple[FakeHelpdesk, FakeAdapter],
) -> None:
    """Run without a tick (no schedule yet), a first sweep covers one interval back from now;
    older changes are for ``backfill``."""
    helpdesk, adapter = clocked
    sweep = reconciliation(store, {("fake", "main"): adapter}, 300, overlap=dt.timedelta(0))
    partner_ticket(helpdesk, "old")
    clock.advance(seconds=400)
    recent = partner_ticket(helpdesk, "recent")
    assert store.first_tick(RECONCILE) is None
    assert sweep.run(EPOCH, threading.Event()) == 1
    assert [job.ticket_id for job in store.list_jobs()] == [recent]
