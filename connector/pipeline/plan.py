"""The write plan: what a decision changes on a ticket, as a diff against what it has.

Writes are diffs so that an unchanged ticket costs no call, and so that our own write, which
makes the helpdesk fire another webhook, converges after one no-op round instead of looping.
Only managed fields and tags under the managed prefix are ever in a plan.
"""

from __future__ import annotations

import datetime as dt

from connector.helpdesks.base import WritePlan
from connector.policy.decision import SlaDecision
from connector.policy.ticket import TicketSnapshot


def format_due(moment: dt.datetime) -> str:
    """The due time as written to helpdesks: ISO 8601 in UTC, whole seconds, ``Z``."""
    return moment.astimezone(dt.UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_due(text: str) -> dt.datetime | None:
    """A due time as a helpdesk holds it (ISO 8601, ``Z`` allowed), or None when it is not an
    instant (unreadable, or without an offset)."""
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _same_instant(current: str | None, wanted: str) -> bool:
    parsed = None if current is None else parse_due(current)
    return parsed is not None and format_due(parsed) == wanted


def desired_fields(decision: SlaDecision) -> dict[str, str]:
    """The managed field values a decision asks for."""
    return {
        "sla_due_at": format_due(decision.due_at),
        "sla_tier": decision.tier,
        "sla_level": decision.level,
    }


def diff(decision: SlaDecision, ticket: TicketSnapshot, tag_prefix: str) -> WritePlan:
    """The smallest plan that brings ``ticket`` to ``decision``."""
    fields: dict[str, str | None] = {}
    for name, wanted in desired_fields(decision).items():
        current = ticket.managed_fields.get(name)
        same = _same_instant(current, wanted) if name == "sla_due_at" else current == wanted
        if not same:
            fields[name] = wanted
    prefix = tag_prefix.lower()
    current_tags = {tag for tag in ticket.tags if tag.lower().startswith(prefix)}
    wanted_tags = set(decision.tags)
    return WritePlan(
        ticket_id=ticket.id,
        fields=fields,
        add_tags=tuple(sorted(wanted_tags - current_tags)),
        remove_tags=tuple(sorted(current_tags - wanted_tags)),
    )
