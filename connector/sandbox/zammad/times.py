"""Times as Zammad writes and reads them.

Zammad's JSON shows every time in UTC with milliseconds and ``Z`` (``2020-11-13T14:34:35.282Z``,
facts §2.1 and §9.2), also for datetime custom attributes written without milliseconds (§9.2
returns ``"2025-03-04T12:12:40.000Z"`` after §9.3 wrote ``"2025-03-04T12:12:40Z"``). It accepts
ISO 8601 on input (§0 "Store the due date"); values without an offset are taken as UTC, Zammad's
time zone for stored times.
"""

from __future__ import annotations

import copy
import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

_ISO = re.compile(
    r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?)?$"
)


def iso(moment: dt.datetime | None) -> str | None:
    """``moment`` as ``YYYY-MM-DDTHH:MM:SS.mmmZ`` in UTC; None stays None."""
    if moment is None:
        return None
    utc = moment.astimezone(dt.UTC)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}Z"


def with_iso_times(row: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of a stored record whose ``created_at``/``updated_at`` read as in Zammad's JSON.

    The copy keeps callers from changing the stored row through the JSON they hand out.
    """
    shown = copy.deepcopy(dict(row))
    shown["created_at"], shown["updated_at"] = iso(row["created_at"]), iso(row["updated_at"])
    return shown


def parse_time(value: object) -> dt.datetime:
    """An ISO 8601 date or date-time string as an aware UTC datetime.

    Raises:
        ValueError: ``value`` is not an ISO 8601 string.
    """
    if not isinstance(value, str) or not _ISO.match(value.strip()):
        raise ValueError(f"{value!r} is not an ISO 8601 time")
    text = value.strip().replace("Z", "+00:00")
    if len(text) > 19 and text[-5] in "+-" and text[-3] != ":":  # +0300 -> +03:00
        text = f"{text[:-2]}:{text[-2:]}"
    parsed = dt.datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC)
