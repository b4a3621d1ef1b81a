"""Business time: working-hours due dates and calendar-day caps on a compiled calendar.

How it stays fast whatever the budget: compiling a calendar lays out a table of days (a fixed
span of years around the holiday data) with, for each day, its working intervals and the running
total of working seconds before it. A due date is then "position of the start + budget", found
again with one binary search in that running total, so a 4000-hour budget costs what a 2-hour
one does. Outside the table the regular week repeats, and whole weeks are skipped with
arithmetic.

Hours are counted as real elapsed seconds between wall-clock interval bounds of the calendar's
zone: on a day whose UTC offset changes (DST), an interval spanning the change is as long as the
clock says it is in reality. Outside the table, days are taken as wall-clock lengths.

Everything here is pure: no clock reads, no I/O (python-holidays computes its data in memory).
"""

from __future__ import annotations

import bisect
import datetime as dt
from dataclasses import dataclass, field
from typing import Final
from zoneinfo import ZoneInfo

from connector.policy.calendar_spec import CalendarSpec, HolidaySource

DayIntervals = tuple[tuple[int, int], ...]

TABLE_FIRST_YEAR: Final = 2010
TABLE_MIN_LAST_YEAR: Final = 2050

# Countries whose day-off transfers are set each year by decree: their holiday data is only
# known up to the last published year (the library's ``special_public_holidays``).
# src: python-holidays countries/russia.py, belarus.py, kazakhstan.py, china.py (per-year tables)
_DECREE_COUNTRIES: Final[frozenset[str]] = frozenset({"RU", "BY", "KZ", "UZ", "CN", "VN"})

_DAY = 86400


@dataclass(frozen=True, slots=True)
class _Cumulative:
    """Running totals of a per-day quantity over the table, with the regular week outside it.

    ``at(i)`` is the total over days ``[0, i)`` for any integer ``i`` (negative before the
    table); ``locate(t)`` finds the day ``i`` with ``at(i) < t <= at(i + 1)``.
    """

    table: list[int]  # len = days + 1
    week: tuple[int, ...]  # per weekday (Monday = 0) outside the table
    week_prefix: tuple[int, ...]  # prefix sums over two weeks, for partial-week spans
    week_total: int

    @classmethod
    def build(cls, per_day: list[int], week: tuple[int, ...]) -> _Cumulative:
        table = [0]
        running = 0
        for value in per_day:
            running += value
            table.append(running)
        prefix = [0]
        for k in range(14):
            prefix.append(prefix[-1] + week[k % 7])
        return cls(table, week, tuple(prefix), sum(week))

    def _regular(self, first: int, last: int) -> int:
        """Total of the regular week over days ``[first, last)``; the table starts on Monday."""
        weeks, rest = divmod(last - first, 7)
        start = first % 7
        return weeks * self.week_total + self.week_prefix[start + rest] - self.week_prefix[start]

    def at(self, day: int) -> int:
        size = len(self.table) - 1
        if 0 <= day <= size:
            return self.table[day]
        if day > size:
            return self.table[size] + self._regular(size, day)
        return -self._regular(day, 0)

    def value(self, day: int) -> int:
        size = len(self.table) - 1
        if 0 <= day < size:
            return self.table[day + 1] - self.table[day]
        return self.week[day % 7]

    def locate(self, target: int) -> int:
        table = self.table
        size = len(table) - 1
        if table[0] < target <= table[size]:
            return bisect.bisect_left(table, target) - 1
        if target > table[size]:
            remaining = target - table[size]
            weeks = (remaining - 1) // self.week_total
            day = size + 7 * weeks
            remaining -= weeks * self.week_total
            while remaining > self.week[day % 7]:
                remaining -= self.week[day % 7]
                day += 1
            return day
        deficit = table[0] - target  # >= 0: how far before the table the target lies
        weeks = deficit // self.week_total
        day = -7 * weeks
        while self._regular(day - 1, 0) <= deficit:
            day -= 1
        return day - 1


@dataclass(frozen=True, slots=True)
class BusinessCalendar:
    """A calendar compiled for fast queries. Build it with :func:`compile_calendar`."""

    name: str
    zone: ZoneInfo
    covered_from: dt.date | None
    covered_until: dt.date | None
    cap_skips: str
    base: dt.date  # day 0 of the table, a Monday
    days: int
    week: tuple[DayIntervals, ...]
    day_intervals: list[DayIntervals]
    offset_change_days: frozenset[int]
    seconds: _Cumulative
    working_days: _Cumulative
    holiday_names: dict[dt.date, str] = field(default_factory=dict)

    # -- per-day facts -------------------------------------------------------------------

    def _index(self, day: dt.date) -> int:
        return (day - self.base).days

    def intervals_on(self, day: dt.date) -> DayIntervals:
        """Working intervals of a local date, in seconds after local midnight."""
        index = self._index(day)
        if 0 <= index < self.days:
            return self.day_intervals[index]
        return self.week[day.weekday()]

    def working_seconds_on(self, day: dt.date) -> int:
        """Working seconds on a local date (real elapsed seconds; 0 on days off)."""
        return self.seconds.value(self._index(day))

    def is_working_day(self, day: dt.date) -> bool:
        """Whether the local date has any working hours."""
        return self.working_seconds_on(day) > 0

    def holiday_name(self, day: dt.date) -> str | None:
        """The public holiday or transfer that closes this date, if any."""
        return self.holiday_names.get(day)

    def is_covered(self, moment: dt.datetime) -> bool:
        """Whether holiday data is known for the local date of ``moment``."""
        date = moment.astimezone(self.zone).date()
        if self.covered_from is not None and date < self.covered_from:
            return False
        return self.covered_until is None or date <= self.covered_until

    # -- positions on the working-time axis ---------------------------------------------

    def _wall_to_instant(self, day: int, wall: int) -> dt.datetime:
        """Local wall-clock time ``wall`` seconds after midnight of table day ``day``."""
        date = self.base + dt.timedelta(days=day)
        midnight = dt.datetime(date.year, date.month, date.day, tzinfo=self.zone)
        return midnight + dt.timedelta(seconds=wall)

    def _wall_to_utc(self, day: int, wall: int) -> dt.datetime:
        # Aware datetimes sharing a tzinfo compare and subtract as wall clocks; UTC does not.
        return self._wall_to_instant(day, wall).astimezone(dt.UTC)

    def position(self, moment: dt.datetime) -> int:
        """Working seconds from the table's start to ``moment`` (negative before it)."""
        if moment.tzinfo is None:
            raise ValueError("naive datetime: pass an aware datetime")
        local = moment.astimezone(self.zone)
        date = local.date()
        day = (date - self.base).days
        total = self.seconds.at(day)
        if day in self.offset_change_days:
            utc = moment.astimezone(dt.UTC)
            for start, end in self.intervals_on(date):
                opens = self._wall_to_utc(day, start)
                if utc <= opens:
                    break
                closes = self._wall_to_utc(day, end)
                total += int((min(utc, closes) - opens).total_seconds())
            return total
        wall = local.hour * 3600 + local.minute * 60 + local.second
        for start, end in self.intervals_on(date):
            if wall <= start:
                break
            total += (wall if wall < end else end) - start
        return total

    def instant(self, position: int) -> dt.datetime:
        """The earliest instant at ``position`` working seconds, in the calendar's zone.

        A position that falls exactly on a closing time (or the start of a break) gives that
        closing time, not the next opening.
        """
        day = self.seconds.locate(position)
        remaining = position - self.seconds.at(day)
        date = self.base + dt.timedelta(days=day)
        exact = day in self.offset_change_days
        for start, end in self.intervals_on(date):
            if exact:
                opens = self._wall_to_utc(day, start)
                length = int((self._wall_to_utc(day, end) - opens).total_seconds())
                if remaining <= length:
                    return (opens + dt.timedelta(seconds=remaining)).astimezone(self.zone)
            else:
                length = end - start
                if remaining <= length:
                    return self._wall_to_instant(day, start + remaining)
            remaining -= length
        raise AssertionError("working-time table is inconsistent")  # pragma: no cover


def due(start: dt.datetime, working_hours: float, calendar: BusinessCalendar) -> dt.datetime:
    """The earliest instant at which ``working_hours`` working hours have elapsed since ``start``.

    A start outside working hours starts at the next opening. A budget that ends exactly at a
    closing time returns that closing time. Zero hours return ``start`` itself. The budget is
    rounded to whole seconds; the result is an aware datetime in the calendar's zone.
    """
    budget = round(working_hours * 3600)
    if budget < 0:
        raise ValueError(f"working hours must not be negative, got {working_hours}")
    if budget == 0:
        return start.astimezone(calendar.zone)
    return calendar.instant(calendar.position(start) + budget)


def working_seconds_between(
    start: dt.datetime, end: dt.datetime, calendar: BusinessCalendar
) -> int:
    """Working seconds in ``[start, end)``; negative when ``end`` is before ``start``."""
    return calendar.position(end) - calendar.position(start)


def cap(start: dt.datetime, days: int, calendar: BusinessCalendar) -> dt.datetime:
    """``start`` plus ``days`` calendar days, "not counting weekends", at the same time of day.

    Taken in local time. By default only Saturdays and Sundays are skipped (public holidays
    count as days): a weekend start moves to Monday 00:00, then each step goes to the next
    Monday–Friday date. With ``cap_skips: non_working_days`` every day without working hours is
    skipped instead (a start on such a day moves to 00:00 of the next working day).
    """
    if days < 0:
        raise ValueError(f"cap days must not be negative, got {days}")
    local = start.astimezone(calendar.zone)
    date, clock = local.date(), local.time().replace(tzinfo=None, fold=0)
    if calendar.cap_skips == "weekends":
        weekday = date.weekday()
        if weekday >= 5:
            date += dt.timedelta(days=7 - weekday)
            clock, weekday = dt.time(0), 0
        weeks, rest = divmod(days, 5)
        shift = 7 * weeks + rest + (2 if weekday + rest > 4 else 0)
        target = date + dt.timedelta(days=shift)
    else:
        counter = calendar.working_days
        index = (date - calendar.base).days
        if counter.value(index) == 0:
            index = counter.locate(counter.at(index) + 1)
            clock = dt.time(0)
        index = counter.locate(counter.at(index) + days + 1)
        target = calendar.base + dt.timedelta(days=index)
    return dt.datetime.combine(target, clock, tzinfo=calendar.zone)


# -- compilation -----------------------------------------------------------------------------


def _holiday_data(
    source: HolidaySource, first_year: int, last_year: int
) -> tuple[dict[dt.date, str], set[dt.date], int | None]:
    """Holidays, Saturdays/Sundays made working, and the last year the data is known for."""
    import holidays

    table = holidays.country_holidays(
        source.country, subdiv=source.subdiv, years=range(first_year, last_year + 1)
    )
    names = {day: str(name) for day, name in table.items()}
    workdays = set(getattr(table, "weekend_workdays", set()))
    known = source.known_until
    if known is None and source.country in _DECREE_COUNTRIES:
        special = getattr(table, "special_public_holidays", {}) or {}
        known = max(special) if special else None
    return names, workdays, known


def _utc_offset_seconds(zone: ZoneInfo, date: dt.date) -> float:
    offset = dt.datetime(date.year, date.month, date.day, tzinfo=zone).utcoffset()
    return offset.total_seconds() if offset is not None else 0.0


def compile_calendar(name: str, spec: CalendarSpec) -> BusinessCalendar:
    """Lay out the day table of ``spec``; done once when mappings load."""
    zone = ZoneInfo(spec.timezone)
    explicit = spec.date_hours()
    known_years = [day.year for day in explicit]
    if spec.holidays is not None and spec.holidays.known_until is not None:
        known_years.append(spec.holidays.known_until)
    first_year = min([TABLE_FIRST_YEAR, *known_years])
    last_year = max([TABLE_MIN_LAST_YEAR, *(year + 1 for year in known_years)])

    names: dict[dt.date, str] = {}
    weekend_workdays: set[dt.date] = set()
    known_until: dt.date | None = None
    if spec.holidays is not None:
        # Only the holiday source says how far the official data goes: an explicit date (a
        # company closed day in 2030, a shortened pre-holiday day) says nothing about the
        # decrees of the years up to it.
        names, weekend_workdays, known_year = _holiday_data(spec.holidays, first_year, last_year)
        if known_year is None:
            known_year = last_year
        known_until = dt.date(min(known_year, last_year), 12, 31)

    first = dt.date(first_year, 1, 1)
    base = first - dt.timedelta(days=first.weekday())
    end = dt.date(last_year + 1, 1, 1)
    days = (end - base).days
    week = spec.week_hours()
    transferred = spec.weekend_workday_hours()

    day_intervals: list[DayIntervals] = []
    offset_change_days: set[int] = set()
    seconds: list[int] = []
    working: list[int] = []
    previous_offset = _utc_offset_seconds(zone, base)
    for index in range(days):
        date = base + dt.timedelta(days=index)
        if date in explicit:
            hours = explicit[date]
        elif date in weekend_workdays:
            hours = transferred
        elif date in names:
            hours = ()
        else:
            hours = week[date.weekday()]
        day_intervals.append(hours)
        next_offset = _utc_offset_seconds(zone, date + dt.timedelta(days=1))
        if next_offset != previous_offset:
            offset_change_days.add(index)
        previous_offset = next_offset
        seconds.append(sum(end - start for start, end in hours))
        working.append(1 if hours else 0)

    calendar = BusinessCalendar(
        name=name,
        zone=zone,
        covered_from=first if spec.holidays is not None else None,
        covered_until=known_until,
        cap_skips=spec.cap_skips,
        base=base,
        days=days,
        week=week,
        day_intervals=day_intervals,
        offset_change_days=frozenset(offset_change_days),
        seconds=_Cumulative.build(seconds, tuple(sum(e - s for s, e in d) for d in week)),
        working_days=_Cumulative.build(working, tuple(1 if d else 0 for d in week)),
        holiday_names={day: label for day, label in names.items() if day not in explicit},
    )
    _exact_lengths_on_offset_change_days(calendar, seconds)
    return calendar


def _exact_lengths_on_offset_change_days(calendar: BusinessCalendar, seconds: list[int]) -> None:
    """Replace wall-clock lengths by real lengths on the days whose UTC offset changes."""
    changed = False
    for index in calendar.offset_change_days:
        real = 0
        for start, end in calendar.day_intervals[index]:
            opens = calendar._wall_to_utc(index, start)
            closes = calendar._wall_to_utc(index, end)
            real += int((closes - opens).total_seconds())
        if real != seconds[index]:
            seconds[index] = real
            changed = True
    if changed:
        rebuilt = _Cumulative.build(seconds, calendar.seconds.week)
        calendar.seconds.table[:] = rebuilt.table
