"""Paging Znuny's TicketSearch by time windows, so a sweep never loses tickets to ``Limit``.

How TicketSearch behaves (``Kernel/GenericInterface/Operation/Ticket/TicketSearch.pm``,
``Kernel/System/Ticket/TicketSearch.pm``):

* It returns at most ``Limit`` ticket ids (the operation's default is 500), sorted by
  ``SortBy``/``OrderBy`` (default ``Age``/``Down``: newest *created* first), and has no offset
  or page parameter. Cutting a result at ``Limit`` and waiting for "the next sweep" loses the
  tickets cut off for good, because the next sweep starts where this one started.
* ``TicketChangeTimeNewerDate`` / ``TicketChangeTimeOlderDate`` select tickets with a ticket
  *history* entry at or after / at or before a ``YYYY-MM-DD HH:MM:SS`` wall-clock time in
  ``OTRSTimeZone`` (one-second resolution, both ends inclusive). Every change adds a history
  entry, a new article too (which leaves the ticket's ``Changed`` alone).

So the range ``[since, ∞)`` is searched in windows of wall-clock seconds: a window whose answer
is full (``limit`` ids) is split in two and both halves are searched, the earlier first. The
windows always partition the range, so no ticket falls between two of them, and every split
makes a window smaller (or moves an open end further out), so the search ends. ``limit`` or
more tickets within one second cannot be split any further, and a server that keeps filling
windows far outside any plausible time (a clock years off, a TicketSearch that ignores the
time bounds) is not searched for ever: both end in :class:`PagingError`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator

#: one window: wall-clock bounds (naive, in OTRSTimeZone, inclusive); None is open-ended
Window = tuple[dt.datetime | None, dt.datetime | None]
#: searches one window; returns at most ``limit`` ticket ids
Search = Callable[[dt.datetime | None, dt.datetime | None], list[str]]
SECOND = dt.timedelta(seconds=1)
#: how far beyond our clock an open-ended window may still be split (Znuny's clock may run
#: ahead, but not by a year)
AHEAD = dt.timedelta(days=366)
#: no ticket history is older than this
EARLIEST = dt.datetime(1970, 1, 1)


class PagingError(Exception):
    """TicketSearch cannot be paged any further; the message says why and what to do."""


def windowed(
    search: Search, since: dt.datetime | None, limit: int, now: Callable[[], dt.datetime]
) -> Iterator[str]:
    """Every id ``search`` finds in ``[since, ∞)``, each once, window after window.

    Args:
        search: one TicketSearch of a window.
        since: the first wall-clock second searched; None searches all history.
        limit: the ``Limit`` ``search`` sends; an answer this long may have been cut.
        now: the current wall-clock time, where an open-ended window is cut first.

    Raises:
        PagingError: a one-second window came back full, or windows kept coming back full
            far outside plausible times.
    """
    windows: list[Window] = [(since, None)]
    seen: set[str] = set()
    while windows:
        low, high = windows.pop()
        found = search(low, high)
        fresh = [ticket_id for ticket_id in found if ticket_id not in seen]
        seen.update(fresh)
        yield from fresh  # found ids are real hits even when the window has more
        if len(found) < limit:
            continue
        pivot = split_point(low, high, now())
        if pivot is None:
            raise PagingError(_why(low, high, limit))
        windows.append((pivot + SECOND, high))  # searched after the earlier half
        windows.append((low, pivot))


def _why(low: dt.datetime | None, high: dt.datetime | None, limit: int) -> str:
    if low is not None and high is not None:
        return (
            f"{limit} or more open tickets have a history entry within the second "
            f"{low:%Y-%m-%d %H:%M:%S}, and no search window can be smaller than a second; "
            "raise search_limit above the number of tickets that change within one second"
        )
    end = f"after {low:%Y-%m-%d %H:%M:%S}" if low is not None else f"before {EARLIEST:%Y}"
    return (
        f"TicketSearch still returns {limit} tickets for history {end}; check Znuny's clock "
        "and that its TicketSearch honours TicketChangeTimeNewerDate/OlderDate"
    )


def split_point(
    low: dt.datetime | None, high: dt.datetime | None, now: dt.datetime
) -> dt.datetime | None:
    """Where to split a full window into ``[low, pivot]`` and ``[pivot + 1 s, high]``.

    A closed window is halved. An open end is cut at the current time first, then ever further
    away (the distance doubles each time), so a Znuny clock ahead of ours or years of history
    still end in closed windows. None when the window cannot be split: a single second, or an
    open end already beyond :data:`AHEAD` of ``now`` or before :data:`EARLIEST`.
    """
    if low is not None and high is not None:
        seconds = int((high - low).total_seconds())
        return None if seconds < 1 else low + dt.timedelta(seconds=seconds // 2)
    if low is None and high is None:
        return now
    if high is None:
        assert low is not None
        if low - now > AHEAD:
            return None
        return now if now > low else low + (low - now) + dt.timedelta(minutes=1)
    if high < EARLIEST:
        return None
    return high - (max(now - high, dt.timedelta(0)) + dt.timedelta(days=1))
