"""What the connector would write to tickets, read live from the helpdesk, without writing.

An admin about to deploy changed mappings wants to know which open tickets they would move
(another level, a later due time, other tags) before agents see it; one chasing a complaint
wants the decision for one ticket as the worker would make it now. :func:`preview` runs the
worker's own read → decide → diff (:func:`~connector.pipeline.processor.read_and_decide`) on
each ticket and stops before ``apply``: the helpdesk is only read, and the job store is not
touched at all, so it runs with candidate mappings on an admin's machine as well as beside the
service.

A ticket that cannot be read (deleted, no permission, the helpdesk down after the in-job
retries) is reported with its error and the preview goes on with the next.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator

from pydantic import BaseModel, ConfigDict

from connector.errors import PermanentError, TransientError
from connector.helpdesks.base import HelpdeskAdapter, WritePlan
from connector.pipeline.processor import read_and_decide
from connector.pipeline.retry import IN_JOB, InJobRetry
from connector.policy.decision import Policy, SlaDecision


class TicketPreview(BaseModel):
    """One ticket: what it has, what the policy decides, and the writes that would follow."""

    model_config = ConfigDict(frozen=True)

    kind: str
    instance: str
    ticket_id: str
    number: str | None = None
    current: dict[str, str | None] = {}
    decision: SlaDecision | None = None
    plan: WritePlan | None = None
    error: str | None = None

    @property
    def changes(self) -> bool:
        """Whether the worker would write anything to this ticket now."""
        return self.plan is not None and not self.plan.is_empty


def preview_ticket(
    adapter: HelpdeskAdapter,
    policy: Policy,
    ticket_id: str,
    now: dt.datetime,
    *,
    retry: InJobRetry = IN_JOB,
) -> TicketPreview:
    """Read one ticket and decide it as the worker would at ``now``, without writing."""
    base = TicketPreview(kind=adapter.kind, instance=adapter.instance, ticket_id=ticket_id)
    try:
        snapshot, decision, plan = read_and_decide(adapter, policy, ticket_id, now, retry=retry)
    except (PermanentError, TransientError) as exc:
        return base.model_copy(update={"error": str(exc)})
    return base.model_copy(
        update={
            "number": snapshot.number,
            "current": dict(snapshot.managed_fields),
            "decision": decision,
            "plan": plan,
        }
    )


def preview(
    adapter: HelpdeskAdapter,
    policy: Policy,
    now: dt.datetime,
    *,
    tickets: Iterable[str] | None = None,
    since: dt.datetime | None = None,
    retry: InJobRetry = IN_JOB,
    progress: Callable[[int], None] = lambda _count: None,
) -> Iterator[TicketPreview]:
    """Preview ``tickets``, or else every open ticket changed since ``since`` (all open ones
    without it), as the sweep and ``backfill`` find them. ``progress`` gets the running count."""
    ids = tickets if tickets is not None else adapter.changed_since(since)
    for count, ticket_id in enumerate(ids, start=1):
        yield preview_ticket(adapter, policy, ticket_id, now, retry=retry)
        progress(count)
