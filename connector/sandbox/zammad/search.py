"""Ticket search of the fake Zammad: the part of Elasticsearch's query string an adapter uses.

Zammad passes ``query`` to Elasticsearch's ``query_string`` (facts §4.4, e.g.
``state.name:open AND organization.name:"ACME"``). Supported here:

* ``field:value``, ``field:"quoted value"``, ``field:(a OR b OR "c d")``, wildcards ``*``/``?``;
* ranges ``field:>=value`` (``>``, ``<``, ``<=``) and ``field:[a TO b]`` / ``{a TO b}`` with
  ``*`` for an open end; times as ISO 8601 (unescaped, quoted or with ``\\:`` escapes — real
  Elasticsearch wants the reserved ``:`` escaped or quoted) or ``now``, ``now-15m``, ``now-1d``;
* ``AND``/``&&``, ``OR``/``||``, ``NOT``/``!``, parentheses; terms without an operator are
  AND-ed; a bare word searches every text value (title, number, articles, customer, …);
* fields: ticket columns and custom attributes, ``tags``, ``state``/``state.name``,
  ``group(.name)``, ``priority(.name)``, ``organization.<attr>``, ``customer.<attr>``,
  ``owner.<attr>``, ``article.<attr>`` (any article). Text fields (title, note, article texts)
  match word-wise, others exactly (case-insensitive).

Times are indexed in whole milliseconds, as Zammad shows them (facts §2.1) and as
Elasticsearch stores dates: a client that reads ``"updated_at": "…40.377Z"`` and asks for
``updated_at:<=…40.377Z`` finds that ticket, whatever finer digits the sandbox's clock had.

Paging (facts §4.4): ``limit``/``per_page`` (default 50, at most 200) and ``page`` (offset
paging, so a ticket updated between two pages shifts the ones after it); ``sort_by`` and
``order_by`` (``asc``/``desc``), first column only. Default order: ``updated_at`` descending
(*inference*: not in the facts doc). Ties by id — Elasticsearch does not define an order among
equal values, so a client must not rely on this one.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import re
from collections.abc import Callable
from typing import Any

from connector.sandbox.zammad.errors import ApiError
from connector.sandbox.zammad.state import Row, Store
from connector.sandbox.zammad.times import parse_time

Doc = dict[str, list[Any]]
Node = Callable[[Doc], bool]
_TEXT_FIELDS = frozenset({"title", "note", "article.body", "article.subject", "article.from"})
_REFERENCES = {
    "state": "TicketState",
    "group": "Group",
    "priority": "TicketPriority",
    "organization": "Organization",
    "customer": "User",
    "owner": "User",
    "created_by": "User",
    "updated_by": "User",
}
_NOW = re.compile(r"^now(?:([+-])(\d+)([smhdw]))?$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def document(store: Store, ticket: Row) -> Doc:
    """Every searchable field of a ticket → its values."""
    doc: Doc = {key: [_indexed(value)] for key, value in ticket.items() if value is not None}
    for name in store.objects.columns("Ticket"):
        doc.setdefault(name, [])
    doc["tags"] = list(store.tags.get(ticket["id"], []))
    for name, table in _REFERENCES.items():
        row = store.tables[table].get(ticket[f"{name}_id"])
        if row is None:
            continue
        for key, value in row.items():
            if value is not None:
                doc[f"{name}.{key}"] = [_indexed(value)]
        if "name" in row:
            doc[name] = [row["name"]]
        elif table == "User":
            doc[name] = [row["login"]]
    for article in store.tables["TicketArticle"].values():
        if article["ticket_id"] == ticket["id"]:
            for key, value in article.items():
                doc.setdefault(f"article.{key}", []).append(_indexed(value))
    return doc


def parse(query: str, now: dt.datetime) -> Node:
    """The query as a predicate over :func:`document` s; 422 if it cannot be parsed.

    Args:
        query: the ``query`` parameter.
        now: the sandbox's time, for ``now-1d`` style values.
    """
    if not query.strip() or query.strip() == "*":
        return lambda doc: True
    return _Parser(query, now).parse()


def order(tickets: list[Row], sort_by: str | None, order_by: str | None) -> list[Row]:
    """``tickets`` sorted by ``sort_by`` (default ``updated_at``) ``order_by`` (default desc)."""
    column = (sort_by or "updated_at").split(",")[0].strip()
    descending = (order_by or "desc").split(",")[0].strip().lower() != "asc"

    def key(row: Row) -> tuple[bool, str, Any, int]:
        value = _indexed(row.get(column))
        return (
            value is not None,
            type(value).__name__,
            value if value is not None else 0,
            row["id"],
        )

    return sorted(tickets, key=key, reverse=descending)


def _indexed(value: object) -> Any:
    """A stored value as the search index holds it: times cut to whole milliseconds."""
    if isinstance(value, dt.datetime):
        return value.replace(microsecond=value.microsecond // 1000 * 1000)
    return value


class _Parser:
    def __init__(self, text: str, now: dt.datetime) -> None:
        self.text, self.pos, self.now = text, 0, now

    def parse(self) -> Node:
        node = self._or()
        self._space()
        if self.pos < len(self.text):
            self._fail(f"unexpected {self.text[self.pos :]!r}")
        return node

    def _fail(self, why: str) -> None:
        message = f"Invalid search query: {why}"
        raise ApiError(422, message, message)

    def _space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def _take(self, *words: str) -> bool:
        self._space()
        for word in words:
            end = self.pos + len(word)
            if self.text.startswith(word, self.pos) and (
                not word.isalpha() or end >= len(self.text) or self.text[end] in " \t\n("
            ):
                self.pos = end
                return True
        return False

    def _or(self) -> Node:
        nodes = [self._and()]
        while self._take("OR", "||"):
            nodes.append(self._and())
        return nodes[0] if len(nodes) == 1 else lambda doc: any(n(doc) for n in nodes)

    def _and(self) -> Node:
        nodes = [self._unary()]
        while True:
            self._space()
            if self.pos >= len(self.text) or self.text[self.pos] == ")":
                break
            if self._peek("OR", "||"):
                break
            self._take("AND", "&&")
            nodes.append(self._unary())
        return nodes[0] if len(nodes) == 1 else lambda doc: all(n(doc) for n in nodes)

    def _peek(self, *words: str) -> bool:
        saved = self.pos
        found = self._take(*words)
        self.pos = saved
        return found

    def _unary(self) -> Node:
        if self._take("NOT", "!"):
            inner = self._unary()
            return lambda doc: not inner(doc)
        self._space()
        if self.text.startswith("(", self.pos):
            self.pos += 1
            node = self._or()
            if not self._take(")"):
                self._fail("missing )")
            return node
        return self._term()

    def _term(self) -> Node:
        self._space()
        if self.pos >= len(self.text):
            self._fail("a term is missing")
        if self.text[self.pos] == '"':
            phrase = self._quoted()
            return lambda doc: _free(doc, phrase)
        word = self._word(stop=":")
        if not self.text.startswith(":", self.pos):
            return lambda doc: _free(doc, word)
        self.pos += 1
        return self._field(word)

    def _field(self, name: str) -> Node:
        text = self.text
        if text.startswith("(", self.pos):
            self.pos += 1
            values: list[str] = []
            while not self._take(")"):
                if self.pos >= len(text):
                    self._fail("missing )")
                if not self._take("OR", "||", "AND", "&&"):
                    self._space()
                    values.append(
                        self._quoted() if text.startswith('"', self.pos) else self._word()
                    )
            return lambda doc: any(_compare(doc, name, "=", v, self.now) for v in values)
        if text[self.pos : self.pos + 1] in ("[", "{"):
            closing = "]" if text[self.pos] == "[" else "}"
            end = text.find(closing, self.pos)
            if end < 0:
                self._fail(f"missing {closing}")
            low, _, high = text[self.pos + 1 : end].partition(" TO ")
            inclusive, self.pos = closing == "]", end + 1
            ops = (">=", "<=") if inclusive else (">", "<")
            bounds = [
                (op, v.strip()) for op, v in zip(ops, (low, high), strict=True) if v.strip() != "*"
            ]
            return lambda doc: all(_compare(doc, name, op, v, self.now) for op, v in bounds)
        operator = "="
        for candidate in (">=", "<=", ">", "<"):
            if text.startswith(candidate, self.pos):
                operator, self.pos = candidate, self.pos + len(candidate)
                break
        value = self._quoted() if text.startswith('"', self.pos) else self._word()
        return lambda doc: _compare(doc, name, operator, value, self.now)

    def _quoted(self) -> str:
        end = self.pos + 1
        while end < len(self.text) and self.text[end] != '"':
            end += 2 if self.text[end] == "\\" else 1
        if end >= len(self.text):
            self._fail("unterminated quote")
        value = self.text[self.pos + 1 : end]
        self.pos = end + 1
        return re.sub(r"\\(.)", r"\1", value)

    def _word(self, stop: str = "") -> str:
        start = self.pos
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char == "\\":
                self.pos += 2
                continue
            if char.isspace() or char in "()" or char in stop:
                break
            self.pos += 1
        if self.pos == start:
            self._fail(f"a value is missing at position {start}")
        return re.sub(r"\\(.)", r"\1", self.text[start : self.pos])


def _free(doc: Doc, term: str) -> bool:
    wanted = term.lower()
    wild = any(char in wanted for char in "*?")
    for values in doc.values():
        for value in values:
            if isinstance(value, str | int) and not isinstance(value, bool):
                text = str(value).lower()
                if fnmatch.fnmatchcase(text, wanted) if wild else wanted in text:
                    return True
    return False


def _compare(doc: Doc, field: str, operator: str, raw: str, now: dt.datetime) -> bool:
    return any(_one(field, value, operator, raw, now) for value in doc.get(field, []))


def _one(field: str, value: object, operator: str, raw: str, now: dt.datetime) -> bool:
    if isinstance(value, list):
        return any(_one(field, item, operator, raw, now) for item in value)
    left: Any
    right: Any
    if isinstance(value, dt.datetime):
        left, right = value, _time(raw, now)
        if operator == "=" and len(raw) == 10:
            return bool(value.date() == right.date())
    elif isinstance(value, int | float) and not isinstance(value, bool):
        try:
            left, right = float(value), float(raw)
        except ValueError:
            return False
    else:
        left, right = str(value).lower(), raw.lower()
        if operator == "=":
            if any(char in right for char in "*?"):
                return fnmatch.fnmatchcase(left, right)
            if field in _TEXT_FIELDS or field.endswith(".body"):
                return all(word in left for word in right.split())
            return bool(left == right)
    if operator == "=":
        return bool(left == right)
    return bool(
        {">=": left >= right, "<=": left <= right, ">": left > right, "<": left < right}[operator]
    )


def _time(raw: str, now: dt.datetime) -> dt.datetime:
    match = _NOW.match(raw.strip())
    if match:
        if match.group(1):
            delta = dt.timedelta(**{_UNITS[match.group(3)]: int(match.group(2))})
            return now - delta if match.group(1) == "-" else now + delta
        return now
    try:
        return parse_time(raw)
    except ValueError:
        message = f"Invalid search query: {raw!r} is not a time"
        raise ApiError(422, message, message) from None
