"""The SLA decision for one ticket: tier, urgency, topic, scope, level, due time and tags.

``decide`` is the one function the worker calls. It is pure: the compiled policy and ``now``
are arguments. Every step leaves a human-readable reason, so an agent (or ``bitrix-sla
explain``) can see why a ticket got its due time.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict

from connector.policy.calendar import BusinessCalendar, cap, due, working_seconds_between
from connector.policy.classification import Classification, Classifier, Evidence
from connector.policy.levels import Level, LevelsFile, Urgency
from connector.policy.overrides import AgentChoice, OverridesFile, agent_choices
from connector.policy.ticket import TicketSnapshot
from connector.policy.tiers import TiersFile, resolve_tier

TOPICS = ("installation", "performance", "updates", "errors", "development", "other")
Source = Literal["classifier", "agent"]


@dataclass(frozen=True)
class Policy:
    """Everything ``decide`` needs, validated and compiled once when mappings load."""

    levels: LevelsFile
    tiers: TiersFile
    calendars: dict[str, BusinessCalendar]
    classifier: Classifier
    overrides: OverridesFile


class SlaDecision(BaseModel):
    """What the policy decided for a ticket, and why."""

    model_config = ConfigDict(frozen=True)

    ticket_id: str
    tier: str
    tier_rule: str | None
    urgency: Urgency
    urgency_by: Source
    topic: str
    topic_by: Source
    scope: Literal["in", "out"]
    scope_by: Source
    out_reasons: tuple[str, ...]
    level: str
    level_label: str
    level_by: Literal["matrix", "agent"]
    working_hours: float
    cap_days: int | None
    calendar: str
    started_at: AwareDatetime
    due_at: AwareDatetime
    due_by: Literal["working_hours", "cap"]
    tags: tuple[str, ...]
    reasons: tuple[str, ...]
    warnings: tuple[str, ...]
    evidence: tuple[Evidence, ...]

    def due_local(self, calendar: BusinessCalendar) -> dt.datetime:
        """The due time in the calendar's zone, for people."""
        return self.due_at.astimezone(calendar.zone)


def _accepted(
    choice: AgentChoice | None, allowed: tuple[str, ...] | set[str], warnings: list[str]
) -> str | None:
    """The allowed id an agent chose, matched case-insensitively like every other signal.

    Helpdesk select fields often show labels with a capital ("Errors", "Out"); tags, priorities
    and valued fields already compare ignoring case, so a bare field's value does too.
    """
    if choice is None:
        return None
    canonical = {value.lower(): value for value in allowed}.get(choice.value.strip().lower())
    if canonical is None:
        warnings.append(
            f"agent override {choice.signal} gives {choice.kind} {choice.value!r}, which is not "
            f"one of {', '.join(sorted(allowed))}; ignored"
        )
        return None
    return canonical


# The earliest and latest instants that stay valid datetimes in every zone (offsets reach
# ±14 h), so a clamped due time can still be shown in local time anywhere.
_FIRST_SAFE = dt.datetime(1, 1, 2, tzinfo=dt.UTC)
_LAST_SAFE = dt.datetime(9999, 12, 30, tzinfo=dt.UTC)


def _utc(moment: dt.datetime, warnings: list[str]) -> dt.datetime:
    """``moment`` in UTC; clamped (with a warning) at the very edge of the datetime range."""
    try:
        return moment.astimezone(dt.UTC)
    except OverflowError:
        clamped = _LAST_SAFE if moment.year > 1 else _FIRST_SAFE
        warnings.append(
            f"ticket created at {moment.isoformat()}, which has no UTC equivalent; "
            f"counted from {clamped.isoformat()} (check the ticket's creation time)"
        )
        return clamped


def _hours(seconds: int) -> str:
    return f"{seconds / 3600:.2f}".rstrip("0").rstrip(".") + " h"


def _due_time(
    started: dt.datetime,
    level: Level,
    calendar: BusinessCalendar,
    reasons: list[str],
    warnings: list[str],
) -> tuple[dt.datetime, Literal["working_hours", "cap"]]:
    """The due time of ``level`` from ``started`` on ``calendar``, with its reason.

    Raises:
        OverflowError: when the count runs past the limits of the datetime range.
    """
    by_hours = due(started, level.hours, calendar)
    due_at: dt.datetime = by_hours
    due_by: Literal["working_hours", "cap"] = "working_hours"
    if level.cap_days is not None:
        by_cap = cap(started, level.cap_days, calendar)
        if by_cap < by_hours:
            due_at, due_by = by_cap, "cap"
    zone = calendar.zone
    if due_by == "cap":
        reasons.append(
            f"due {due_at.astimezone(zone).isoformat()}: cap of {level.cap_days} calendar days "
            f"(not counting weekends) comes before {_hours(round(level.hours * 3600))} of "
            f"working time on calendar {calendar.name}"
        )
    else:
        reasons.append(
            f"due {due_at.astimezone(zone).isoformat()}: {_hours(round(level.hours * 3600))} "
            f"of working time on calendar {calendar.name} from "
            f"{started.astimezone(zone).isoformat()}"
        )
    if not calendar.is_covered(due_at) or not calendar.is_covered(started):
        warnings.append(
            f"calendar {calendar.name} knows holidays only from {calendar.covered_from} to "
            f"{calendar.covered_until}; outside that the due time assumes the regular week "
            "(add the official dates to calendars.yaml)"
        )
    return due_at, due_by


def decide(ticket: TicketSnapshot, policy: Policy, now: dt.datetime) -> SlaDecision:
    """Decide the SLA of ``ticket`` as of ``now`` (an aware datetime)."""
    reasons: list[str] = []
    warnings: list[str] = []

    tier = resolve_tier(ticket, policy.tiers)
    if tier.rule is None:
        reasons.append(f"tier {tier.tier}: no tier rule matched, default tier")
    else:
        reasons.append(
            f"tier {tier.tier}: rule {tier.rule}" + (f" ({tier.note})" if tier.note else "")
        )

    found: Classification = policy.classifier.classify(ticket.subject, ticket.body)
    choices = agent_choices(ticket, policy.overrides)

    urgency_choice = _accepted(choices.get("urgency"), ("emergency", "standard"), warnings)
    urgency: Urgency = found.urgency
    urgency_by: Source = "classifier"
    if urgency_choice is not None:
        urgency = "emergency" if urgency_choice == "emergency" else "standard"
        urgency_by = "agent"
        reasons.append(f"urgency {urgency}: set by an agent ({choices['urgency'].signal})")
    else:
        cue = next((e for e in found.evidence if e.kind == "emergency"), None)
        reasons.append(
            f"urgency {urgency}: "
            + (f"emergency wording {cue.match!r} in the {cue.field}" if cue else "no emergency")
        )

    topic = found.topic
    topic_by: Source = "classifier"
    topic_choice = _accepted(choices.get("topic"), TOPICS, warnings)
    if topic_choice is not None:
        topic, topic_by = topic_choice, "agent"
        reasons.append(f"topic {topic}: set by an agent ({choices['topic'].signal})")
    else:
        reasons.append(f"topic {topic}: classified from the subject and first article")

    scope: Literal["in", "out"] = found.scope
    scope_by: Source = "classifier"
    out_reasons = found.out_reasons
    scope_choice = _accepted(choices.get("scope"), ("in", "out"), warnings)
    if scope_choice is not None:
        scope = "out" if scope_choice == "out" else "in"
        scope_by = "agent"
        if scope == "in":
            out_reasons = ()
        reasons.append(f"scope {scope}: set by an agent ({choices['scope'].signal})")
    elif scope == "out":
        reasons.append(f"scope out: {', '.join(out_reasons)} (outside technical support)")
    else:
        reasons.append("scope in: no out-of-scope wording found")

    levels = policy.levels
    level_choice = _accepted(choices.get("level"), set(levels.levels), warnings)
    if level_choice is not None:
        level_id = level_choice
        level_by: Literal["matrix", "agent"] = "agent"
        reasons.append(f"level {level_id}: set by an agent ({choices['level'].signal})")
    else:
        level_id = levels.level_for(tier.tier, urgency)
        level_by = "matrix"
        reasons.append(f"level {level_id}: {tier.tier} tier, {urgency} request")
    level = levels.levels[level_id]

    calendar = policy.calendars[level.calendar or levels.calendar]
    started = _utc(ticket.created_at, warnings)
    due_reasons: list[str] = []
    due_warnings: list[str] = []
    try:
        due_at, due_by = _due_time(started, level, calendar, due_reasons, due_warnings)
        if now >= due_at:
            late = working_seconds_between(due_at, now, calendar)
            due_reasons.append(f"overdue by {_hours(late)} of working time as of {now.isoformat()}")
        reasons.extend(due_reasons)
        warnings.extend(due_warnings)
    except OverflowError:
        # A creation time at the very edge of the datetime range (a helpdesk bug or a typo such
        # as 9999-12-31): deciding without raising matters more than a meaningful due time.
        due_at, due_by = min(max(started, _FIRST_SAFE), _LAST_SAFE), "working_hours"
        reasons.append(f"due {due_at.isoformat()}: no due time can be computed")
        warnings.append(
            f"ticket created at {ticket.created_at.isoformat()}, too close to the limits of the "
            f"date range to count working time; due time set to {due_at.isoformat()} "
            "(check the ticket's creation time)"
        )
    if started > now:
        warnings.append(f"ticket created at {started.isoformat()}, after 'now' ({now.isoformat()})")

    prefix = policy.overrides.tag_prefix
    tags = {
        f"{prefix}tier:{tier.tier}",
        f"{prefix}level:{level_id}",
        f"{prefix}urgency:{urgency}",
        f"{prefix}topic:{topic}",
        f"{prefix}scope:{scope}",
        *(f"{prefix}out:{reason}" for reason in out_reasons),
    }
    return SlaDecision(
        ticket_id=ticket.id,
        tier=tier.tier,
        tier_rule=tier.rule,
        urgency=urgency,
        urgency_by=urgency_by,
        topic=topic,
        topic_by=topic_by,
        scope=scope,
        scope_by=scope_by,
        out_reasons=tuple(out_reasons),
        level=level_id,
        level_label=level.label,
        level_by=level_by,
        working_hours=level.hours,
        cap_days=level.cap_days,
        calendar=calendar.name,
        started_at=started,
        due_at=due_at.astimezone(dt.UTC),
        due_by="cap" if due_by == "cap" else "working_hours",
        tags=tuple(sorted(tags)),
        reasons=tuple(reasons),
        warnings=tuple(warnings),
        evidence=found.evidence,
    )
