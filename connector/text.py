"""Text that both job-store engines can keep.

Two kinds of character reach us from outside but cannot be stored: NUL, which PostgreSQL
refuses in a text column (SQLite keeps it), and a lone UTF-16 surrogate (a JSON escape such as
``"\\ud800"`` decodes to one), which no UTF-8 encoder writes, so both drivers raise. Values the
edge stores as keys (ticket id, delivery id, event name) are refused with a 422 when they hold
either; free text the worker records (error messages, the audit's decision and calls) keeps
what it can and shows U+FFFD in place of the rest.
"""

from __future__ import annotations

import re
from typing import TypeVar

UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
REPLACEMENT = "\ufffd"

_T = TypeVar("_T")


def check_storable(value: str) -> str:
    """``value`` unchanged, or a ValueError naming the character no engine can store."""
    found = UNSTORABLE.search(value)
    if found is None:
        return value
    if found.group() == "\x00":
        raise ValueError("must not contain a NUL character")
    raise ValueError("must not contain a lone surrogate (not valid Unicode text)")


def storable(value: _T) -> _T:
    """``value`` with every NUL and lone surrogate replaced by U+FFFD, in strings and in the
    keys and items of dicts and lists (JSON documents), recursively; anything else as is."""
    if isinstance(value, str):
        return UNSTORABLE.sub(REPLACEMENT, value)  # type: ignore[return-value]
    if isinstance(value, dict):
        return {storable(key): storable(item) for key, item in value.items()}  # type: ignore[return-value]
    if isinstance(value, list):
        return [storable(item) for item in value]  # type: ignore[return-value]
    if isinstance(value, tuple):
        return tuple(storable(item) for item in value)  # type: ignore[return-value]
    return value
