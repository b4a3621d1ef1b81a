"""Business time: table tests for due() and cap(), DST, table edges, and properties."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import holidays
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from connector.mappings import CalendarsFile
from connector.policy.calendar import (
    TABLE_FIRST_YEAR,
    TABLE_MIN_LAST_YEAR,
    BusinessCalendar,
    cap,
    compile_calendar,
    due,
    working_seconds_between,
)
from connector.policy.calendar_spec import CalendarSpec

ROOT = Path(__file__).resolve().parents[2]
MSK = ZoneInfo("Europe/Moscow")
BERLIN = ZoneInfo("Europe/Berlin")
WORKDAY = ["09:00-13:00", "14:00-18:00"]


def _shipped() -> CalendarsFile:
    return CalendarsFile.model_validate(
        yaml.safe_load((ROOT / "mappings" / "calendars.yaml").read_text(encoding="utf-8"))
    )


@pytest.fixture(scope="module")
def moscow() -> BusinessCalendar:
    return compile_calendar("moscow", _shipped().calendars["moscow"])


def _calendar(**spec: object) -> BusinessCalendar:
    return compile_calendar("test", CalendarSpec.model_validate(spec))


def msk(*parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=MSK)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("start", "hours", "expected"),
    [
        # inside hours, within the morning block
        (msk(2026, 11, 25, 10, 0), 2, msk(2026, 11, 25, 12, 0)),
        # ends exactly at the lunch break: the break's start, not 14:00
        (msk(2026, 11, 25, 10, 0), 3, msk(2026, 11, 25, 13, 0)),
        # crosses the lunch break
        (msk(2026, 11, 25, 12, 0), 2, msk(2026, 11, 25, 15, 0)),
        # ends exactly at closing time: 18:00 that day, not 09:00 the next
        (msk(2026, 11, 25, 17, 0), 1, msk(2026, 11, 25, 18, 0)),
        # starts before opening: the clock starts at 09:00
        (msk(2026, 11, 25, 6, 30), 1, msk(2026, 11, 25, 10, 0)),
        # starts during lunch: the clock starts at 14:00
        (msk(2026, 11, 25, 13, 20), 0.5, msk(2026, 11, 25, 14, 30)),
        # starts exactly at closing: nothing left today
        (msk(2026, 11, 25, 18, 0), 1, msk(2026, 11, 26, 10, 0)),
        # Friday evening to Monday
        (msk(2026, 11, 27, 17, 0), 3, msk(2026, 11, 30, 11, 0)),
        # Saturday start waits for Monday's opening
        (msk(2026, 11, 28, 12, 0), 2, msk(2026, 11, 30, 11, 0)),
        # fractional hours: 1 h 30 min, second resolution
        (msk(2026, 11, 25, 12, 0), 1.5, msk(2026, 11, 25, 14, 30)),
        (msk(2026, 11, 25, 9, 0, 0), 1 / 3600, msk(2026, 11, 25, 9, 0, 1)),
        # a whole 8-hour day from opening ends at that day's closing
        (msk(2026, 11, 25, 9, 0), 8, msk(2026, 11, 25, 18, 0)),
        # zero hours: the start itself
        (msk(2026, 11, 28, 12, 0), 0, msk(2026, 11, 28, 12, 0)),
        # New Year: 31 Dec 2025 is a transferred day off, 1-8 Jan holidays, 9 Jan transferred
        (msk(2025, 12, 30, 17, 0), 2, msk(2026, 1, 12, 10, 0)),
        # the shortened pre-holiday day 30 Apr 2026 closes at 17:00 ...
        (msk(2026, 4, 30, 16, 0), 1, msk(2026, 4, 30, 17, 0)),
        # ... then 1 May (holiday) and the weekend; work resumes on Monday 4 May
        (msk(2026, 4, 30, 16, 0), 2, msk(2026, 5, 4, 10, 0)),
        # 9 May 2026 is a Saturday: moved to Monday 11 May; 8 May (Fri) is shortened
        (msk(2026, 5, 8, 16, 0), 2, msk(2026, 5, 12, 10, 0)),
        # Saturday 1 Nov 2025 was made working (and shortened: it stands for Mon 3 Nov)
        (msk(2025, 10, 31, 17, 0), 2, msk(2025, 11, 1, 10, 0)),
        (msk(2025, 11, 1, 16, 0), 1, msk(2025, 11, 1, 17, 0)),
        # 22 Feb 2027 is a transferred day off, 23 Feb a holiday; Saturday 20 Feb works
        (msk(2027, 2, 19, 17, 0), 2, msk(2027, 2, 20, 10, 0)),
        (msk(2027, 2, 20, 16, 0), 2, msk(2027, 2, 24, 10, 0)),
        # a start given in UTC is read in Moscow time (UTC+3)
        (dt.datetime(2026, 11, 25, 6, 0, tzinfo=dt.UTC), 1, msk(2026, 11, 25, 10, 0)),
        # the noncommercial budget: 24 h = three 8-hour days
        (msk(2026, 11, 23, 9, 0), 24, msk(2026, 11, 25, 18, 0)),
        # consulting: 40 h = one working week
        (msk(2026, 11, 23, 9, 0), 40, msk(2026, 11, 27, 18, 0)),
    ],
)
def test_due_on_moscow(
    moscow: BusinessCalendar, start: dt.datetime, hours: float, expected: dt.datetime
) -> None:
    result = due(start, hours, moscow)
    assert result == expected
    assert result.utcoffset() == expected.utcoffset()


def test_due_returns_the_calendar_zone(moscow: BusinessCalendar) -> None:
    result = due(dt.datetime(2026, 11, 25, 6, 0, tzinfo=dt.UTC), 1, moscow)
    assert result.tzinfo == MSK
    assert result.isoformat() == "2026-11-25T10:00:00+03:00"


def test_due_refuses_naive_and_negative(moscow: BusinessCalendar) -> None:
    with pytest.raises(ValueError, match="naive"):
        due(dt.datetime(2026, 11, 25, 10, 0), 1, moscow)
    with pytest.raises(ValueError, match="negative"):
        due(msk(2026, 11, 25, 10, 0), -1, moscow)


def test_24_00_ends_the_day() -> None:
    every_day = {day: ["00:00-24:00"] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    calendar = _calendar(timezone="Europe/Moscow", week=every_day)
    assert due(msk(2026, 11, 25, 23, 30), 1, calendar) == msk(2026, 11, 26, 0, 30)
    # a budget ending exactly at midnight gives midnight
    assert due(msk(2026, 11, 25, 23, 0), 1, calendar) == msk(2026, 11, 26, 0, 0)
    late = _calendar(timezone="Europe/Moscow", week={"mon": ["18:00-24:00"]})
    assert due(msk(2026, 11, 23, 23, 0), 1, late) == msk(2026, 11, 24, 0, 0)
    assert due(msk(2026, 11, 23, 23, 0), 2, late) == msk(2026, 11, 30, 19, 0)


class TestDaylightSaving:
    """Working hours are real elapsed hours between wall-clock bounds."""

    @pytest.fixture
    def berlin_24x7(self) -> BusinessCalendar:
        days = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
        return _calendar(timezone="Europe/Berlin", week={d: ["00:00-24:00"] for d in days})

    def test_spring_forward_day_has_23_hours(self, berlin_24x7: BusinessCalendar) -> None:
        # 29 Mar 2026: clocks jump from 02:00 to 03:00 in Berlin
        day = dt.date(2026, 3, 29)
        assert berlin_24x7.working_seconds_on(day) == 23 * 3600
        start = dt.datetime(2026, 3, 29, 0, 0, tzinfo=BERLIN)
        assert due(start, 24, berlin_24x7) == dt.datetime(2026, 3, 30, 1, 0, tzinfo=BERLIN)
        # 01:30 + 1 h of real time is 03:30 summer time
        assert due(start + dt.timedelta(minutes=90), 1, berlin_24x7) == dt.datetime(
            2026, 3, 29, 3, 30, tzinfo=BERLIN
        )

    def test_fall_back_day_has_25_hours(self, berlin_24x7: BusinessCalendar) -> None:
        # 25 Oct 2026: clocks go back from 03:00 to 02:00
        assert berlin_24x7.working_seconds_on(dt.date(2026, 10, 25)) == 25 * 3600
        start = dt.datetime(2026, 10, 25, 0, 0, tzinfo=BERLIN)
        assert due(start, 24, berlin_24x7) == dt.datetime(2026, 10, 25, 23, 0, tzinfo=BERLIN)
        # 01:30 CEST + 1 h is the first 02:30 (CEST), + 2 h the second one (CET, fold=1)
        one = due(start + dt.timedelta(minutes=90), 1, berlin_24x7)
        assert one.astimezone(dt.UTC) == dt.datetime(2026, 10, 25, 0, 30, tzinfo=dt.UTC)
        two = due(start + dt.timedelta(minutes=90), 2, berlin_24x7)
        assert two.astimezone(dt.UTC) == dt.datetime(2026, 10, 25, 1, 30, tzinfo=dt.UTC)
        assert (two.hour, two.minute, two.fold) == (2, 30, 1)

    def test_start_inside_the_repeated_hour(self, berlin_24x7: BusinessCalendar) -> None:
        second_0230 = dt.datetime(2026, 10, 25, 1, 30, tzinfo=dt.UTC)  # 02:30 CET
        first_0230 = dt.datetime(2026, 10, 25, 0, 30, tzinfo=dt.UTC)  # 02:30 CEST
        assert working_seconds_between(first_0230, second_0230, berlin_24x7) == 3600
        assert due(first_0230, 1, berlin_24x7).astimezone(dt.UTC) == second_0230

    def test_office_hours_keep_their_wall_clock(self) -> None:
        office = _shipped().calendars["berlin"]
        calendar = compile_calendar("berlin", office)
        # Friday before the spring change, 16:00 CET + 2 h -> Monday 10:00 CEST
        friday = dt.datetime(2026, 3, 27, 16, 0, tzinfo=BERLIN)
        result = due(friday, 2, calendar)
        assert result == dt.datetime(2026, 3, 30, 10, 0, tzinfo=BERLIN)
        assert result.utcoffset() == dt.timedelta(hours=2)


@pytest.mark.parametrize(
    ("start", "days", "expected"),
    [
        # Friday + 3 weekdays -> Wednesday, same time of day
        (msk(2026, 11, 27, 12, 0), 3, msk(2026, 12, 2, 12, 0)),
        # Monday + 5 -> next Monday
        (msk(2026, 11, 23, 9, 30), 5, msk(2026, 11, 30, 9, 30)),
        # Saturday start moves to Monday 00:00, then + 3 -> Thursday 00:00
        (msk(2026, 11, 28, 12, 0), 3, msk(2026, 12, 3, 0, 0)),
        # Sunday likewise
        (msk(2026, 11, 29, 23, 59), 3, msk(2026, 12, 3, 0, 0)),
        # public holidays count as days by default: Fri 8 May 2026 + 3 -> Wed 13 May
        (msk(2026, 5, 8, 10, 0), 3, msk(2026, 5, 13, 10, 0)),
        # Wednesday + 3 crosses one weekend
        (msk(2026, 11, 25, 10, 0), 3, msk(2026, 11, 30, 10, 0)),
        # 10 weekdays = two whole weeks
        (msk(2026, 11, 25, 10, 0), 10, msk(2026, 12, 9, 10, 0)),
    ],
)
def test_cap_counts_weekdays(
    moscow: BusinessCalendar, start: dt.datetime, days: int, expected: dt.datetime
) -> None:
    assert cap(start, days, moscow) == expected


def test_cap_can_skip_every_non_working_day() -> None:
    spec = _shipped().calendars["moscow"].model_copy(update={"cap_skips": "non_working_days"})
    calendar = compile_calendar("moscow", spec)
    # 9 May (Sat), 10 (Sun), 11 (Mon, holiday moved) are skipped: 12, 13, 14
    assert cap(msk(2026, 5, 8, 10, 0), 3, calendar) == msk(2026, 5, 14, 10, 0)
    # a start on a holiday moves to 00:00 of the next working day
    assert cap(msk(2026, 1, 5, 15, 0), 1, calendar) == msk(2026, 1, 13, 0, 0)
    # the working Saturday 1 Nov 2025 counts as a day
    assert cap(msk(2025, 10, 31, 10, 0), 1, calendar) == msk(2025, 11, 1, 10, 0)


class TestTableEdges:
    """Outside the precomputed years the regular week repeats; results stay consistent."""

    def test_beyond_the_table_end(self, moscow: BusinessCalendar) -> None:
        start = msk(TABLE_MIN_LAST_YEAR, 12, 30, 17, 0)
        # 30 Dec 2050 is a Friday; crossing into the regular week, holidays unknown
        assert due(start, 2, moscow) == msk(TABLE_MIN_LAST_YEAR + 1, 1, 2, 10, 0)
        assert not moscow.is_covered(start)

    def test_before_the_table_start(self, moscow: BusinessCalendar) -> None:
        start = msk(TABLE_FIRST_YEAR - 1, 12, 18, 17, 0)  # a Friday, before the table
        assert due(start, 2, moscow) == msk(TABLE_FIRST_YEAR - 1, 12, 21, 10, 0)
        assert not moscow.is_covered(start)

    def test_far_future_costs_nothing_more(self, moscow: BusinessCalendar) -> None:
        start = msk(2200, 1, 1, 0, 0)
        result = due(start, 4000, moscow)
        assert working_seconds_between(start, result, moscow) == 4000 * 3600

    def test_coverage_follows_the_holiday_data(self, moscow: BusinessCalendar) -> None:
        assert moscow.covered_until is not None
        assert moscow.covered_until >= dt.date(2027, 12, 31)
        assert moscow.is_covered(msk(2027, 6, 1, 12, 0))

    @pytest.mark.parametrize("extra", [dt.date(2030, 3, 15), dt.date(2099, 3, 7)])
    def test_an_explicit_date_does_not_make_its_years_known(
        self, moscow: BusinessCalendar, extra: dt.date
    ) -> None:
        # A company closed day in 2030 (or a year typo) says nothing about the RU decrees for
        # 2028-2030: those due dates must keep their "holidays unknown" warning.
        raw = _shipped().calendars["moscow"].model_dump()
        raw["dates"] = {**raw["dates"], extra: []}
        calendar = compile_calendar("moscow", CalendarSpec.model_validate(raw))
        assert calendar.covered_until == moscow.covered_until
        assert not calendar.is_covered(msk(2029, 5, 7, 10, 0))
        assert not calendar.is_working_day(extra)

    def test_known_until_extends_coverage(self) -> None:
        raw = _shipped().calendars["moscow"].model_dump()
        raw["holidays"] = {"country": "RU", "known_until": 2030}
        calendar = compile_calendar("moscow", CalendarSpec.model_validate(raw))
        assert calendar.covered_until == dt.date(2030, 12, 31)


class TestSpecValidation:
    @pytest.mark.parametrize(
        ("change", "loc", "message"),
        [
            (
                {"holidays": {"country": "RU", "known_until": 20270}},
                ("holidays", "known_until"),
                "year 20270 is outside 2000–2100",
            ),
            ({"dates": {"9999-03-07": []}}, ("dates",), "9999-03-07: year 9999 is outside"),
            ({"dates": {"0025-03-07": []}}, ("dates",), "0025-03-07: year 25 is outside"),
        ],
    )
    def test_implausible_years_are_refused(
        self, change: dict[str, object], loc: tuple[str, ...], message: str
    ) -> None:
        with pytest.raises(ValidationError) as caught:
            CalendarSpec.model_validate({"week": {"mon": WORKDAY}, **change})
        (error,) = caught.value.errors()
        assert error["loc"] == loc
        assert message in error["msg"]

    @pytest.mark.parametrize(
        ("week", "loc", "message"),
        [
            ({"mon": ["9-18"]}, ("week", "mon", 0), "HH:MM-HH:MM"),
            ({"mon": ["18:00-09:00"]}, ("week", "mon", 0), "start before it ends"),
            ({"mon": ["24:00-24:00"]}, ("week", "mon", 0), "24:00 only as an end"),
            ({"mon": ["09:00-13:00", "12:00-18:00"]}, ("week",), "overlap"),
            ({"mon": []}, ("week",), "no working hours"),
            ({"xyz": ["09:00-18:00"]}, ("week", "xyz", "[key]"), "mon"),
            # lists are the model's own dump (seconds); anything else in one is refused, not
            # passed to int() (a mapping there was a TypeError, infinity an OverflowError)
            ({"mon": [[{"a": 1}, 3600]]}, ("week", "mon", 0), "HH:MM-HH:MM"),
            ({"mon": [[0, float("inf")]]}, ("week", "mon", 0), "HH:MM-HH:MM"),
            ({"mon": [[True, 3600]]}, ("week", "mon", 0), "HH:MM-HH:MM"),
            ({"mon": [[3600, 7200.5]]}, ("week", "mon", 0), "HH:MM-HH:MM"),
        ],
    )
    def test_bad_week(
        self, week: dict[str, list[object]], loc: tuple[object, ...], message: str
    ) -> None:
        with pytest.raises(ValidationError) as caught:
            CalendarSpec.model_validate({"timezone": "Europe/Moscow", "week": week})
        error = caught.value.errors()[0]
        assert error["loc"] == loc
        assert message in str(error["msg"])

    def test_bad_zone_and_country(self) -> None:
        with pytest.raises(ValidationError) as caught:
            CalendarSpec.model_validate(
                {
                    "timezone": "Mars/Olympus",
                    "week": {"mon": WORKDAY},
                    "holidays": {"country": "XX"},
                }
            )
        locs = {error["loc"] for error in caught.value.errors()}
        assert locs == {("timezone",), ("holidays", "country")}

    def test_touching_intervals_merge(self) -> None:
        calendar = _calendar(timezone="UTC", week={"mon": ["09:00-12:00", "12:00-13:00"]})
        assert calendar.intervals_on(dt.date(2026, 11, 23)) == ((9 * 3600, 13 * 3600),)


# -- properties ------------------------------------------------------------------------------

starts = st.datetimes(
    min_value=dt.datetime(2009, 11, 1), max_value=dt.datetime(2052, 2, 1), timezones=st.just(MSK)
).map(lambda d: d.replace(microsecond=0))
budgets = st.integers(min_value=0, max_value=4000 * 3600)


@settings(max_examples=300, deadline=None)
@given(start=starts, seconds=budgets)
def test_due_is_never_before_start_and_spends_exactly_the_budget(
    moscow: BusinessCalendar, start: dt.datetime, seconds: int
) -> None:
    result = due(start, seconds / 3600, moscow)
    assert result >= start
    assert working_seconds_between(start, result, moscow) == seconds
    if seconds > 0:  # the earliest such instant: one second less is not enough
        assert working_seconds_between(start, result - dt.timedelta(seconds=1), moscow) < seconds


@settings(max_examples=300, deadline=None)
@given(start=starts, first=budgets, second=budgets)
def test_due_is_monotone_and_additive(
    moscow: BusinessCalendar, start: dt.datetime, first: int, second: int
) -> None:
    low, high = sorted((first, second))
    assert due(start, low / 3600, moscow) <= due(start, high / 3600, moscow)
    middle = due(start, first / 3600, moscow)
    assert due(middle, second / 3600, moscow) == due(start, (first + second) / 3600, moscow)


def _reference_due(start: dt.datetime, seconds: int, spec: CalendarSpec) -> dt.datetime:
    """A deliberately naive day-by-day walk, built from the spec and python-holidays only."""
    assert spec.holidays is not None
    ru = holidays.country_holidays(spec.holidays.country, years=range(2020, 2031))
    week = spec.week_hours()
    explicit = spec.date_hours()
    transferred = spec.weekend_workday_hours()
    local = start.astimezone(MSK)
    day = local.date()
    clock = local.hour * 3600 + local.minute * 60 + local.second
    while True:
        if day in explicit:
            hours = explicit[day]
        elif day in ru.weekend_workdays:
            hours = transferred
        elif day in ru:
            hours = ()
        else:
            hours = week[day.weekday()]
        for opens, closes in hours:
            begin = max(opens, clock)
            if begin >= closes:
                continue
            if seconds <= closes - begin:
                return dt.datetime.combine(day, dt.time(), tzinfo=MSK) + dt.timedelta(
                    seconds=begin + seconds
                )
            seconds -= closes - begin
        day += dt.timedelta(days=1)
        clock = 0


@settings(max_examples=200, deadline=None)
@given(
    start=st.datetimes(
        min_value=dt.datetime(2024, 1, 1),
        max_value=dt.datetime(2027, 12, 1),
        timezones=st.just(MSK),
    ).map(lambda d: d.replace(microsecond=0)),
    seconds=st.integers(min_value=1, max_value=200 * 3600),
)
def test_due_agrees_with_a_naive_walk(
    moscow: BusinessCalendar, start: dt.datetime, seconds: int
) -> None:
    spec = _shipped().calendars["moscow"]
    assert due(start, seconds / 3600, moscow) == _reference_due(start, seconds, spec)


@settings(max_examples=200, deadline=None)
@given(
    start=st.datetimes(
        min_value=dt.datetime(2026, 1, 1),
        max_value=dt.datetime(2026, 12, 31),
        timezones=st.just(BERLIN),
    ),
    seconds=st.integers(min_value=1, max_value=72 * 3600),
)
def test_24x7_in_a_dst_zone_counts_real_time(start: dt.datetime, seconds: int) -> None:
    days = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    calendar = _calendar(timezone="Europe/Berlin", week={d: ["00:00-24:00"] for d in days})
    start = start.replace(microsecond=0)
    expected = start.astimezone(dt.UTC) + dt.timedelta(seconds=seconds)
    assert due(start, seconds / 3600, calendar).astimezone(dt.UTC) == expected
