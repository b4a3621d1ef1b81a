"""decide(): tier, urgency, level, due time, tags and reasons on the shipped mappings."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from connector.mappings import load_mappings
from connector.policy.decision import Policy, SlaDecision, decide
from connector.policy.ticket import Party, TicketSnapshot

ROOT = Path(__file__).resolve().parents[2]
MSK = ZoneInfo("Europe/Moscow")
WEDNESDAY = dt.datetime(2026, 11, 25, 10, 0, tzinfo=MSK)
LATER = dt.datetime(2026, 11, 25, 10, 5, tzinfo=MSK)

EMERGENCY = ("Сайт не открывается", "Публичная часть сайта полностью не работает, ошибка 500.")
STANDARD = ("Вопрос по API", "Как получить список элементов инфоблока через D7 ORM?")
CUSTOM_WORK = ("Доработка", "Нужно разработать компонент каталога по нашему ТЗ.")


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_mappings(ROOT / "mappings").policy


def org(license_type: str) -> Party:
    return Party(id="5", name="ООО Тест", fields={"bitrix_license_type": license_type})


def ticket(
    text: tuple[str, str], created: dt.datetime = WEDNESDAY, **changes: Any
) -> TicketSnapshot:
    base: dict[str, Any] = {
        "id": "1",
        "created_at": created,
        "subject": text[0],
        "body": text[1],
    }
    base.update(changes)
    return TicketSnapshot.model_validate(base)


def local_due(decision: SlaDecision) -> dt.datetime:
    return decision.due_at.astimezone(MSK)


@pytest.mark.parametrize(
    ("snapshot", "tier", "level", "due_local"),
    [
        # § 5.1: partner emergency, 3 h from Wed 10:00
        (
            ticket(EMERGENCY, organization=org("partner")),
            "partner",
            "partner-operational",
            "2026-11-25T13:00",
        ),
        # § 5.2: partner standard, 5 h: 10-13 and 14-16
        (
            ticket(STANDARD, organization=org("partner")),
            "partner",
            "partner-standard",
            "2026-11-25T16:00",
        ),
        # § 5.3: commercial emergency, 4 h
        (
            ticket(EMERGENCY, organization=org("commercial")),
            "commercial",
            "commercial-operational",
            "2026-11-25T15:00",
        ),
        # § 5.4: commercial standard, 6 h
        (
            ticket(STANDARD, organization=org("commercial")),
            "commercial",
            "commercial-standard",
            "2026-11-25T17:00",
        ),
        # § 5.5: enterprise, 2 h for an emergency and for a standard request alike
        (
            ticket(EMERGENCY, organization=org("enterprise")),
            "enterprise",
            "vip",
            "2026-11-25T12:00",
        ),
        (ticket(STANDARD, group="VIP"), "enterprise", "vip", "2026-11-25T12:00"),
        # § 5.7: unknown customer -> default non-commercial, 24 h = Mon 10:00 (cap: same instant)
        (ticket(EMERGENCY), "noncommercial", "noncommercial", "2026-11-30T10:00"),
        # § 5.7 cap wins: Tue 3 Nov 2026 (short day) then the 4 Nov holiday; 3 weekdays -> Fri 6
        (
            ticket(STANDARD, created=dt.datetime(2026, 11, 3, 10, 0, tzinfo=MSK)),
            "noncommercial",
            "noncommercial",
            "2026-11-06T10:00",
        ),
        # out of scope alone does not change the level
        (
            ticket(CUSTOM_WORK, organization=org("partner")),
            "partner",
            "partner-standard",
            "2026-11-25T16:00",
        ),
    ],
)
def test_levels_and_due_times(
    policy: Policy, snapshot: TicketSnapshot, tier: str, level: str, due_local: str
) -> None:
    decision = decide(snapshot, policy, LATER)
    assert (decision.tier, decision.level) == (tier, level)
    assert local_due(decision).isoformat(timespec="minutes") == due_local + "+03:00"


def test_an_explicit_license_type_beats_a_license_key(policy: Policy) -> None:
    # § 5.7: owners of the non-commercial version have license keys too
    snapshot = ticket(
        STANDARD,
        organization=org("noncommercial"),
        customer=Party(
            email="it@school5.example", fields={"bitrix_license_key": "NFR-AB-12345678CD"}
        ),
    )
    decision = decide(snapshot, policy, LATER)
    assert (decision.tier, decision.tier_rule) == ("noncommercial", "noncommercial-license-field")
    assert (decision.level, decision.working_hours) == ("noncommercial", 24)


def test_a_license_key_alone_still_means_commercial(policy: Policy) -> None:
    customer = Party(email="a@b.example", fields={"bitrix_license_key": "NFR-AB-12345678CD"})
    decision = decide(ticket(STANDARD, customer=customer), policy, LATER)
    assert (decision.tier, decision.tier_rule) == ("commercial", "commercial-license-key")


@pytest.mark.parametrize(
    "created",
    [
        dt.datetime(9999, 12, 31, 12, 0, tzinfo=dt.UTC),
        dt.datetime(9999, 12, 31, 23, 0, tzinfo=dt.timezone(-dt.timedelta(hours=5))),
        dt.datetime(1, 1, 1, 0, 0, tzinfo=dt.timezone(dt.timedelta(hours=3))),
    ],
)
def test_a_creation_time_at_the_edge_of_the_date_range_still_decides(
    policy: Policy, created: dt.datetime
) -> None:
    decision = decide(ticket(STANDARD, created=created), policy, LATER)
    assert decision.level == "noncommercial"
    assert decision.warnings
    assert any("check the ticket's creation time" in warning for warning in decision.warnings)
    decision.due_local(policy.calendars["moscow"])  # shows in local time without overflowing


def test_cap_is_reported_when_it_wins(policy: Policy) -> None:
    created = dt.datetime(2026, 11, 3, 10, 0, tzinfo=MSK)
    decision = decide(ticket(STANDARD, created=created), policy, created)
    assert decision.due_by == "cap"
    assert decision.cap_days == 3
    assert any("cap of 3 calendar days" in reason for reason in decision.reasons)


def test_tags_carry_the_whole_decision(policy: Policy) -> None:
    decision = decide(ticket(CUSTOM_WORK, organization=org("partner")), policy, LATER)
    assert decision.scope == "out"
    assert "custom-development" in decision.out_reasons
    assert set(decision.tags) >= {
        "sla:tier:partner",
        "sla:level:partner-standard",
        "sla:urgency:standard",
        "sla:topic:development",
        "sla:scope:out",
        "sla:out:custom-development",
    }
    assert all(tag.startswith("sla:") for tag in decision.tags)
    assert list(decision.tags) == sorted(decision.tags)


class TestAgentsWin:
    def test_confirmed_emergency(self, policy: Policy) -> None:
        snapshot = ticket(
            STANDARD, organization=org("commercial"), fields={"sla_override": "emergency"}
        )
        decision = decide(snapshot, policy, LATER)
        assert (decision.urgency, decision.urgency_by) == ("emergency", "agent")
        assert decision.level == "commercial-operational"

    def test_emergency_denied(self, policy: Policy) -> None:
        snapshot = ticket(
            EMERGENCY, organization=org("partner"), fields={"sla_override": "not_emergency"}
        )
        decision = decide(snapshot, policy, LATER)
        assert (decision.urgency, decision.level) == ("standard", "partner-standard")

    def test_moved_to_consulting(self, policy: Policy) -> None:
        snapshot = ticket(CUSTOM_WORK, organization=org("enterprise"), tags=("consulting",))
        decision = decide(snapshot, policy, LATER)
        assert (decision.level, decision.level_by) == ("consulting", "agent")
        # 40 h from Wed 10:00 is the next Wed 10:00; the 5-day cap is the same instant
        assert local_due(decision) == dt.datetime(2026, 12, 2, 10, 0, tzinfo=MSK)
        assert "sla:level:consulting" in decision.tags

    def test_topic_and_scope_set_by_hand(self, policy: Policy) -> None:
        snapshot = ticket(CUSTOM_WORK, fields={"sla_topic": "installation", "sla_scope": "in"})
        decision = decide(snapshot, policy, LATER)
        assert (decision.topic, decision.topic_by) == ("installation", "agent")
        assert (decision.scope, decision.out_reasons) == ("in", ())
        assert not any(tag.startswith("sla:out:") for tag in decision.tags)

    def test_a_bare_field_ignores_case_like_the_other_signals(self, policy: Policy) -> None:
        # a select shows "Errors" / "Out"; tags, priorities and valued fields ignore case too
        snapshot = ticket(STANDARD, fields={"sla_topic": "Errors", "sla_scope": " OUT "})
        decision = decide(snapshot, policy, LATER)
        assert (decision.topic, decision.topic_by) == ("errors", "agent")
        assert (decision.scope, decision.scope_by) == ("out", "agent")
        assert {"sla:topic:errors", "sla:scope:out"} <= set(decision.tags)

    def test_a_nonsense_choice_is_ignored_with_a_warning(self, policy: Policy) -> None:
        snapshot = ticket(STANDARD, fields={"sla_topic": "gardening"})
        decision = decide(snapshot, policy, LATER)
        assert decision.topic_by == "classifier"
        assert any("'gardening'" in warning for warning in decision.warnings)


def test_reasons_explain_every_step(policy: Policy) -> None:
    decision = decide(ticket(EMERGENCY, organization=org("partner")), policy, LATER)
    text = "\n".join(decision.reasons)
    for fragment in (
        "tier partner: rule partner-license-field",
        "urgency emergency",
        "level partner-operational",
        "due 2026-11-25T13:00:00+03:00",
    ):
        assert fragment in text
    assert decision.warnings == ()


def test_overdue_is_said(policy: Policy) -> None:
    now = dt.datetime(2026, 11, 26, 10, 0, tzinfo=MSK)
    decision = decide(ticket(EMERGENCY, organization=org("partner")), policy, now)
    # due Wed 13:00; by Thu 10:00 five working hours have passed (14-18 and 09-10)
    assert any(reason.startswith("overdue by 5 h ") for reason in decision.reasons)


def test_due_beyond_known_holidays_warns(policy: Policy) -> None:
    created = dt.datetime(2031, 3, 5, 10, 0, tzinfo=MSK)
    decision = decide(ticket(STANDARD, created=created), policy, created)
    assert any("knows holidays only" in warning for warning in decision.warnings)


def test_times_are_utc_inside(policy: Policy) -> None:
    decision = decide(ticket(STANDARD), policy, LATER)
    assert decision.due_at.utcoffset() == dt.timedelta(0)
    assert decision.started_at == WEDNESDAY
