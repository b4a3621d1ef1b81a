"""One run of one job: read the ticket, decide, diff, apply; nothing else.

Every run re-reads the ticket from the helpdesk (the API read is the truth: webhook payloads
can be stale), so runs are idempotent: running a job twice writes at most once.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from pydantic import ValidationError

from connector import metrics
from connector.errors import PermanentError
from connector.helpdesks.base import ApiCall, HelpdeskAdapter, WritePlan
from connector.pipeline.plan import diff
from connector.pipeline.retry import IN_JOB, InJobRetry
from connector.pipeline.store import Job, RunRecord, utcnow
from connector.policy.decision import Policy, SlaDecision, decide
from connector.policy.ticket import TicketSnapshot

log = logging.getLogger(__name__)


def read_and_decide(
    adapter: HelpdeskAdapter,
    policy: Policy,
    ticket_id: str,
    now: dt.datetime,
    *,
    retry: InJobRetry = IN_JOB,
    on_retry: Callable[[], None] | None = None,
) -> tuple[TicketSnapshot, SlaDecision, WritePlan]:
    """Read one ticket (with the in-job retries), decide it as of ``now`` and diff the decision
    against what it has: everything a run does but the write, which ``preview`` leaves out.

    Raises:
        TransientError: the helpdesk is unreachable or throttles us, after the retries.
        PermanentError: the ticket cannot be read (missing, forbidden, or invalid data).
    """
    try:
        snapshot = retry.call(lambda: adapter.read(ticket_id), on_retry)
    except ValidationError as exc:
        raise PermanentError(f"ticket {ticket_id} cannot be read: {exc}") from exc
    began = time.perf_counter()
    decision = decide(snapshot, policy, now)
    metrics.DECISION_LATENCY.observe(time.perf_counter() - began)
    return snapshot, decision, diff(decision, snapshot, policy.overrides.tag_prefix)


@dataclass
class Processor:
    """Runs jobs against the configured adapters with the current policy."""

    policy: Callable[[], Policy]
    adapters: Mapping[tuple[str, str], HelpdeskAdapter]
    retry: InJobRetry = IN_JOB
    clock: Callable[[], dt.datetime] = utcnow
    worker: str = "worker"

    def adapter_for(self, job: Job) -> HelpdeskAdapter:
        adapter = self.adapters.get((job.kind, job.instance))
        if adapter is None:
            raise PermanentError(
                f"no helpdesk instance {job.kind}/{job.instance} is configured; "
                "add it to the settings or drop the job"
            )
        return adapter

    def run(self, job: Job) -> RunRecord:
        """Process ``job``; raises TransientError/PermanentError for the caller to record."""
        started = self.clock()
        adapter = self.adapter_for(job)
        policy = self.policy()
        _, decision, plan = read_and_decide(
            adapter, policy, job.ticket_id, started, retry=self.retry, on_retry=metrics.RETRIES.inc
        )
        calls: list[ApiCall] = []
        if not plan.is_empty:
            calls = self.retry.call(lambda: adapter.apply(plan), metrics.RETRIES.inc)
        return RunRecord(
            worker=self.worker,
            started_at=started,
            finished_at=self.clock(),
            outcome="unchanged" if plan.is_empty else "applied",
            decision=decision.model_dump(mode="json"),
            plan=plan.model_dump(mode="json"),
            calls=[call.model_dump(mode="json") for call in calls],
        )
