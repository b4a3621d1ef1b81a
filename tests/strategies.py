"""Hypothesis strategies shared by the property tests of untrusted input: webhook bodies,
settings files and mapping files."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any, TypeVar

from hypothesis import strategies as st

_D = TypeVar("_D", dict[str, Any], list[Any])

#: JSON scalars including the ones Python's parser accepts beyond the standard (NaN, Infinity)
#: and strings with control characters (NUL among them, which PostgreSQL refuses in text)
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(["", " ", "0", "-1", "42", "1e3", "\x00", "4\x002", "x" * 300])
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=16,
)


def paths(value: object, prefix: tuple[object, ...] = ()) -> Iterator[tuple[object, ...]]:
    """Every path to a value inside a JSON document, the root excluded."""
    children: list[tuple[object, object]] = []
    if isinstance(value, dict):
        children = list(value.items())
    elif isinstance(value, list):
        children = list(enumerate(value))
    for key, child in children:
        yield (*prefix, key)
        yield from paths(child, (*prefix, key))


@st.composite
def one_change(draw: st.DrawFn, document: _D) -> _D:
    """``document`` with one value somewhere inside replaced by arbitrary JSON, or removed."""
    changed = copy.deepcopy(document)
    path = draw(st.sampled_from(sorted(paths(changed), key=repr)))
    parent: Any = changed
    for key in path[:-1]:
        parent = parent[key]
    if draw(st.booleans()) and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = draw(json_values)
    return changed
