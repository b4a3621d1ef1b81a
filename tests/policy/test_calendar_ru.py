"""The compiled ``moscow`` calendar against the official Russian production calendar, 2025-2027.

Five-day week, 40-hour norm: a working day is 8 h, a shortened pre-holiday day 7 h (Labour Code
art. 95), so a month's norm is ``8 h x working days - shortened days`` (Order of the Ministry of
Health and Social Development No. 588n of 13.08.2009). The ``moscow`` calendar works 09:00-13:00
and 14:00-18:00, i.e. exactly 8 h, so its hours per month must equal the official norm.

Sources (keys used in the row comments below):

[D25]  Government Decree No. 1335 of 04.10.2024 (transfers in 2025),
       https://www.consultant.ru/document/cons_doc_LAW_481586/ ; transfers, 247 working days and
       118 days off: http://www.fpur.ru/news/kogda_rabotaem_i_otdykhaem_v_2025_godu/2025-01-08-2512
       and https://saransk-news.net/incident/2025/01/08/224021-amp.html (also the 4 short days).
[C25]  ConsultantPlus, 2025 norms: short days 7 Mar, 30 Apr, 11 Jun,
       https://consultant.ru/document/cons_doc_LAW_481572/be7520a6cfab512886261138094eca03336858c4
[N25]  Short working Saturday 1 Nov 2025: https://tass.ru/obschestvo/25213405 ; October 23 and
       November 19 working days: https://news.mail.ru/society/68124521/ ; November 19 days and
       151 h: https://zaryasa.ru/?p=83630 (after https://www.klerk.ru/buh/news/664170/).
[D26]  Government Decree No. 1466 of 24.09.2025 (transfers in 2026),
       https://www.consultant.ru/document/cons_doc_LAW_515170/ ; short days 30 Apr, 8 May, 11 Jun,
       3 Nov: https://profedu38.ru/index.php?option=com_content&view=article&id=2426:perenos-vykhodnykh-dnej-v-2026-godu&catid=105&Itemid=393
       and https://www.m24.ru/news/obshchestvo/16022026/874111 (Fri 20 Feb, Fri 6 Mar are not).
[K26]  ConsultantPlus production calendar 2026, working days per month,
       https://www.consultant.ru/law/ref/calendar/proizvodstvennye/2026/ (read in the copy kept in
       github.com/arvidsever/Sudrf, Tests/SudrfKitTests/Fixtures/production-calendar/).
[Q26]  Quarterly 2026 figures, days 55/62/66/64, hours 440/493/528/511, year 247 d / 1972 h:
       https://www.4dk.ru/s/calendar
[D27]  Government Decree No. 1187 of 17.09.2026 (transfers in 2027),
       http://publication.pravo.gov.ru/document/0001202609180037 ,
       https://www.consultant.ru/document/cons_doc_LAW_544706/ (NOT read directly: known from
       python-holidays 0.109, which cites it, and from [K27]).
[K27]  ConsultantPlus production calendar 2027 (approved), working days per month and the short
       days 20 Feb, 30 Apr, 11 Jun, 3 Nov,
       https://www.consultant.ru/law/ref/calendar/proizvodstvennye/2027/ (read only in the copy
       captured on 2026-10-09 in github.com/arvidsever/Sudrf, same folder as [K26]).
[F]    No source with this month's hour norm was found; hours = 8 x days - short days.
       UNCONFIRMED for every 2027 month and for 2025/2026 months other than those noted.
"""

from __future__ import annotations

import calendar as std_calendar
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml

from connector.policy.calendar import BusinessCalendar, CalendarSpec, compile_calendar

REPO_ROOT = Path(__file__).resolve().parents[2]
CALENDARS_YAML = REPO_ROOT / "mappings" / "calendars.yaml"

HOUR = 3600
SHORT_DAY_HOURS = ["09:00-13:00", "14:00-17:00"]

# Shortened (7 h) pre-holiday working days, per year.
SHORT_DAYS: dict[int, tuple[dt.date, ...]] = {
    # [C25] 7 Mar, 30 Apr, 11 Jun; [N25] Sat 1 Nov (made working, replaces Mon 3 Nov before 4 Nov)
    2025: (dt.date(2025, 3, 7), dt.date(2025, 4, 30), dt.date(2025, 6, 11), dt.date(2025, 11, 1)),
    # [D26] [K26]
    2026: (dt.date(2026, 4, 30), dt.date(2026, 5, 8), dt.date(2026, 6, 11), dt.date(2026, 11, 3)),
    # [K27] (Sat 20 Feb made working by [D27], replaces Mon 22 Feb before 23 Feb)
    2027: (dt.date(2027, 2, 20), dt.date(2027, 4, 30), dt.date(2027, 6, 11), dt.date(2027, 11, 3)),
}

# (year, month) -> (working days, hour norm at 40 h/week).
MONTHLY_NORMS: dict[tuple[int, int], tuple[int, int]] = {
    (2025, 1): (17, 136),  # [D25] 1-8 Jan off; [F]
    (2025, 2): (20, 160),  # [D25] 23 Feb is a Sunday, its day off moved to 8 May; [F]
    (2025, 3): (21, 167),  # [D25] 8 Mar is a Sat, day off moved to 13 Jun; [C25] 7 Mar; [F]
    (2025, 4): (22, 175),  # [D25]; [C25] 30 Apr; [F]
    (2025, 5): (18, 144),  # [D25] 1-4 and 8-11 May off; [F]
    (2025, 6): (19, 151),  # [D25] 12-15 Jun off; [C25] 11 Jun; [F]
    (2025, 7): (23, 184),  # [D25] no holiday; [F]
    (2025, 8): (21, 168),  # [D25] no holiday; [F]
    (2025, 9): (22, 176),  # [D25] no holiday; [F]
    (2025, 10): (23, 184),  # [N25] 23 working days; [F]
    (2025, 11): (19, 151),  # [N25] 19 days, 151 h (Sat 1 Nov works 7 h; 2-4 Nov off)
    (2025, 12): (22, 176),  # [D25] 31 Dec off (from Sun 5 Jan); 30 Dec not shortened; [F]
    (2026, 1): (15, 120),  # [K26] 15 days (1-11 Jan off); [Q26] Q1 440 h; [F]
    (2026, 2): (19, 152),  # [K26] 19 days; Fri 20 Feb not shortened [D26]; [Q26]; [F]
    (2026, 3): (21, 168),  # [K26] 21 days (9 Mar off); Fri 6 Mar not shortened [D26]; [Q26]; [F]
    (2026, 4): (22, 175),  # [K26] 22 days; [D26] 30 Apr; [Q26] Q2 493 h; [F]
    (2026, 5): (19, 151),  # [K26] 19 days (1, 11 May off); [D26] 8 May; [Q26]; [F]
    (2026, 6): (21, 167),  # [K26] 21 days (12 Jun off); [D26] 11 Jun; [Q26]; [F]
    (2026, 7): (23, 184),  # [K26] 23 days; [Q26] Q3 528 h; [F]
    (2026, 8): (21, 168),  # [K26] 21 days; [Q26]; [F]
    (2026, 9): (22, 176),  # [K26] 22 days; [Q26]; [F]
    (2026, 10): (22, 176),  # [K26] 22 days; [Q26] Q4 511 h; [F]
    (2026, 11): (20, 159),  # [K26] 20 days (4 Nov off); [D26] 3 Nov; [Q26]; [F]
    (2026, 12): (22, 176),  # [K26] 22 days (31 Dec off, from Sun 4 Jan); 30 Dec not short; [F]
    (2027, 1): (15, 120),  # [K27] 15 days (1-10 Jan off); [F]
    (2027, 2): (19, 151),  # [K27] 19 days (Sat 20 Feb works 7 h; 22-23 Feb off) [D27]; [F]
    (2027, 3): (22, 176),  # [K27] 22 days (8 Mar off); Fri 5 Mar not shortened; [F]
    (2027, 4): (22, 175),  # [K27] 22 days; 30 Apr short; [F]
    (2027, 5): (19, 152),  # [K27] 19 days (3 and 10 May off, art. 112); Fri 7 May not short; [F]
    (2027, 6): (21, 167),  # [K27] 21 days (14 Jun off, art. 112); 11 Jun short; [F]
    (2027, 7): (22, 176),  # [K27] 22 days; [F]
    (2027, 8): (22, 176),  # [K27] 22 days; [F]
    (2027, 9): (22, 176),  # [K27] 22 days; [F]
    (2027, 10): (21, 168),  # [K27] 21 days; [F]
    (2027, 11): (20, 159),  # [K27] 20 days (4-5 Nov off, 5 Nov from Sat 2 Jan [D27]); [F]
    (2027, 12): (22, 176),  # [K27] 22 days (31 Dec off, from Sun 3 Jan [D27]); [F]
}

# Year -> (working days, hour norm): [D25] [Q26] [K27]; 1972 h = 8 x 247 - 4 each year.
ANNUAL_NORMS: dict[int, tuple[int, int]] = {2025: (247, 1972), 2026: (247, 1972), 2027: (247, 1972)}

# Weekdays made days off, and the official working Saturdays, per the decrees and art. 112.
DAYS_OFF = [
    dt.date(2025, 5, 2),  # [D25] from Sat 4 Jan
    dt.date(2025, 5, 8),  # [D25] from Sun 23 Feb
    dt.date(2025, 6, 13),  # [D25] from Sat 8 Mar
    dt.date(2025, 11, 3),  # [D25] from Sat 1 Nov
    dt.date(2025, 12, 31),  # [D25] from Sun 5 Jan
    dt.date(2026, 1, 9),  # [D26] from Sat 3 Jan
    dt.date(2026, 3, 9),  # art. 112: 8 Mar is a Sunday
    dt.date(2026, 5, 11),  # art. 112: 9 May is a Saturday
    dt.date(2026, 12, 31),  # [D26] from Sun 4 Jan
    dt.date(2027, 2, 22),  # [D27] from Sat 20 Feb
    dt.date(2027, 5, 3),  # art. 112: 1 May is a Saturday
    dt.date(2027, 5, 10),  # art. 112: 9 May is a Sunday
    dt.date(2027, 6, 14),  # art. 112: 12 Jun is a Saturday
    dt.date(2027, 11, 5),  # [D27] from Sat 2 Jan
    dt.date(2027, 12, 31),  # [D27] from Sun 3 Jan
]
WORKING_SATURDAYS = [dt.date(2025, 11, 1), dt.date(2027, 2, 20)]  # [D25] [D27]

# Working days a naive "day before a python-holidays entry" rule would wrongly shorten (they
# precede a transferred day off, not a holiday), or that precede a weekend before a holiday.
FULL_DAYS = [
    dt.date(2025, 5, 7),  # before 8 May 2025, a transferred day off
    dt.date(2025, 12, 30),  # before 31 Dec 2025, a transferred day off
    dt.date(2026, 2, 20),  # Friday; 23 Feb 2026 is a Monday [D26]
    dt.date(2026, 3, 6),  # Friday; 8 Mar 2026 is a Sunday [D26]
    dt.date(2026, 12, 30),  # before 31 Dec 2026, a transferred day off [K26]
    dt.date(2027, 3, 5),  # Friday; 8 Mar 2027 is a Monday [K27]
    dt.date(2027, 5, 7),  # Friday; 9 May 2027 is a Sunday [K27]
    dt.date(2027, 11, 2),  # the day before the shortened 3 Nov [K27]
    dt.date(2027, 12, 30),  # before 31 Dec 2027, a transferred day off [K27]
]


def _days(year: int, month: int) -> list[dt.date]:
    last = std_calendar.monthrange(year, month)[1]
    return [dt.date(year, month, day) for day in range(1, last + 1)]


@pytest.fixture(scope="module")
def calendars_yaml() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(CALENDARS_YAML.read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="module")
def moscow(calendars_yaml: dict[str, Any]) -> BusinessCalendar:
    spec = CalendarSpec.model_validate(calendars_yaml["calendars"]["moscow"])
    return compile_calendar("moscow", spec)


# -- the table itself -----------------------------------------------------------------------


def test_table_norms_follow_the_art_95_formula() -> None:
    for (year, month), (days, hours) in MONTHLY_NORMS.items():
        short = sum(1 for day in SHORT_DAYS[year] if day.month == month)
        assert hours == 8 * days - short, (year, month)
    for year, (days, hours) in ANNUAL_NORMS.items():
        months = [norm for (y, _), norm in MONTHLY_NORMS.items() if y == year]
        assert len(months) == 12
        assert sum(d for d, _ in months) == days
        assert sum(h for _, h in months) == hours


def test_yaml_lists_exactly_the_shortened_days(calendars_yaml: dict[str, Any]) -> None:
    dates = calendars_yaml["calendars"]["moscow"]["dates"]
    listed = {dt.date.fromisoformat(str(day)): hours for day, hours in dates.items()}
    expected = {day for days in SHORT_DAYS.values() for day in days}
    assert set(listed) == expected
    assert all(hours == SHORT_DAY_HOURS for hours in listed.values())


# -- the compiled calendar against the table ------------------------------------------------


@pytest.mark.parametrize(("year", "month"), sorted(MONTHLY_NORMS))
def test_monthly_norm(moscow: BusinessCalendar, year: int, month: int) -> None:
    seconds = [moscow.working_seconds_on(day) for day in _days(year, month)]
    days, hours = MONTHLY_NORMS[(year, month)]
    assert sum(1 for s in seconds if s > 0) == days
    assert sum(seconds) / HOUR == hours


@pytest.mark.parametrize("year", sorted(ANNUAL_NORMS))
def test_annual_norm(moscow: BusinessCalendar, year: int) -> None:
    seconds = [moscow.working_seconds_on(day) for m in range(1, 13) for day in _days(year, m)]
    days, hours = ANNUAL_NORMS[year]
    assert sum(1 for s in seconds if s > 0) == days
    assert sum(seconds) / HOUR == hours


@pytest.mark.parametrize("year", sorted(SHORT_DAYS))
def test_shortened_days_are_exactly_the_official_ones(moscow: BusinessCalendar, year: int) -> None:
    year_days = [day for m in range(1, 13) for day in _days(year, m)]
    short = [day for day in year_days if moscow.working_seconds_on(day) == 7 * HOUR]
    assert short == list(SHORT_DAYS[year])
    other = {moscow.working_seconds_on(day) for day in year_days if day not in SHORT_DAYS[year]}
    assert other == {0, 8 * HOUR}


@pytest.mark.parametrize("day", WORKING_SATURDAYS, ids=str)
def test_saturday_made_working(moscow: BusinessCalendar, day: dt.date) -> None:
    assert day.weekday() == 5
    assert moscow.is_working_day(day)
    assert moscow.working_seconds_on(day) == 7 * HOUR  # also pre-holiday (Order 588n item 1)


@pytest.mark.parametrize("day", DAYS_OFF, ids=str)
def test_weekday_made_day_off(moscow: BusinessCalendar, day: dt.date) -> None:
    assert day.weekday() < 5
    assert not moscow.is_working_day(day)
    assert moscow.working_seconds_on(day) == 0


@pytest.mark.parametrize("day", FULL_DAYS, ids=str)
def test_not_shortened(moscow: BusinessCalendar, day: dt.date) -> None:
    assert moscow.working_seconds_on(day) == 8 * HOUR


def test_covered_until_includes_2027(moscow: BusinessCalendar) -> None:
    assert moscow.covered_until is not None
    assert moscow.covered_until >= dt.date(2027, 12, 31)


@pytest.mark.parametrize("name", ["moscow", "moscow-24x7", "berlin"])
def test_every_shipped_calendar_compiles(calendars_yaml: dict[str, Any], name: str) -> None:
    spec = CalendarSpec.model_validate(calendars_yaml["calendars"][name])
    assert compile_calendar(name, spec).name == name
