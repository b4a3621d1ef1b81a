"""A clock the test moves by hand, for code that takes a ``clock`` callable (the job store, the
sandboxes, the adapters), so times written and compared are predictable."""

from __future__ import annotations

import datetime as dt


class Clock:
    """Returns ``now`` until the test moves it."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> dt.datetime:
        """Move by ``datetime.timedelta(**delta)``; returns the new time."""
        self.now += dt.timedelta(**delta)
        return self.now
