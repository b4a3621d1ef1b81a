"""The sweep's TicketSearch windows: how a full window is split, and that paging always ends."""

from __future__ import annotations

import datetime as dt

import pytest

from connector.helpdesks.znuny.search import (
    AHEAD,
    EARLIEST,
    PagingError,
    Search,
    split_point,
    windowed,
)

NOW = dt.datetime(2026, 11, 28, 7, 0, 0)
T = dt.datetime.fromisoformat


@pytest.mark.parametrize(
    ("low", "high", "pivot"),
    [
        (T("2026-11-28 06:00:00"), T("2026-11-28 06:00:10"), T("2026-11-28 06:00:05")),
        (T("2026-11-28 06:00:00"), T("2026-11-28 06:00:01"), T("2026-11-28 06:00:00")),
        (T("2026-11-28 06:00:00"), T("2026-11-28 06:00:00"), None),  # one second: no split
        (None, None, NOW),
        (T("2026-11-28 06:00:00"), None, NOW),  # an open end is cut at now first
        (T("2026-11-28 07:00:01"), None, T("2026-11-28 07:01:02")),  # Znuny's clock ahead
        (NOW + AHEAD + dt.timedelta(seconds=1), None, None),
        (None, NOW, NOW - dt.timedelta(days=1)),
        (None, T("2026-11-20 07:00:00"), T("2026-11-11 07:00:00")),  # the distance doubles
        (None, EARLIEST - dt.timedelta(seconds=1), None),
    ],
)
def test_split_point(
    low: dt.datetime | None, high: dt.datetime | None, pivot: dt.datetime | None
) -> None:
    assert split_point(low, high, NOW) == pivot
    if pivot is not None:
        assert (low is None or low <= pivot) and (high is None or pivot < high)


Calls = list[tuple[dt.datetime | None, dt.datetime | None]]


def fake_znuny(history: dict[str, dt.datetime], limit: int, calls: Calls) -> Search:
    """A TicketSearch over ``history`` (id -> its one history time) returning ``limit`` ids."""

    def search(low: dt.datetime | None, high: dt.datetime | None) -> list[str]:
        calls.append((low, high))
        hits = [
            ticket
            for ticket, moment in sorted(history.items(), key=lambda item: item[1])
            if (low is None or low <= moment) and (high is None or moment <= high)
        ]
        return hits[:limit]

    return search


def test_every_ticket_is_found_once_whatever_the_limit() -> None:
    history = {str(n): NOW - dt.timedelta(seconds=n * 7 % 50) for n in range(1, 30)}
    history |= {"same-a": NOW - dt.timedelta(hours=3), "same-b": NOW - dt.timedelta(hours=3)}
    for limit in (3, 5, 100):
        calls: Calls = []
        found = list(windowed(fake_znuny(history, limit, calls), None, limit, lambda: NOW))
        assert sorted(found) == sorted(history), limit
        assert len(found) == len(set(found))
        assert len(calls) < 400


def test_a_start_time_leaves_out_older_history() -> None:
    history = {"old": NOW - dt.timedelta(days=2), "a": NOW, "b": NOW, "c": NOW - dt.timedelta(1)}
    found = windowed(fake_znuny(history, 3, []), NOW - dt.timedelta(hours=1), 3, lambda: NOW)
    assert sorted(found) == ["a", "b"]


def test_a_full_second_cannot_be_paged() -> None:
    history = dict.fromkeys("abc", NOW)
    with pytest.raises(PagingError, match=r"3 or more open tickets .* second 2026-11-28 07:00:00"):
        list(windowed(fake_znuny(history, 3, []), None, 3, lambda: NOW))


def test_a_search_that_ignores_the_bounds_ends() -> None:
    calls: Calls = []

    def always_full(low: dt.datetime | None, high: dt.datetime | None) -> list[str]:
        calls.append((low, high))
        return ["x", "y"]

    with pytest.raises(PagingError):
        list(windowed(always_full, None, 2, lambda: NOW))
    assert len(calls) < 100
