"""Multi-row INSERTs built with SQLAlchemy Core and run straight on the driver's cursor.

The webhook path runs two statements per group-commit batch. Through ``Connection.execute``
each costs far more Python than the database needs for it: the compiled-cache lookup, an
execution context, parameter processing in generic loops, a result wrapper and the events
around all of them. Under load that Python is the ingest path's main cost, and it runs while
the process holds SQLite's one write lock, so every other process waits for it as well.

A :class:`RowsStatement` keeps the one code path: the statement is built with Core (dialect
``insert`` with ``ON CONFLICT`` and ``RETURNING``, identical for SQLite and PostgreSQL) and
compiled by the engine's own dialect, once per row count; at run time it only lays out the
parameters in the compiled order, converts them with the columns' own bind processors (the
same ``UtcDateTime`` conversion ``Connection.execute`` applies) and calls the DBAPI cursor of the
caller's SQLAlchemy connection, inside the caller's SQLAlchemy transaction. Driver errors come
out wrapped as SQLAlchemy's ``DBAPIError`` like every other database error.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from sqlalchemy import Column, bindparam
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.elements import BindParameter

#: builds the statement for a list of rows, each row a mapping of column name to bind parameter
Builder = Callable[[list[dict[str, BindParameter[Any]]]], Any]


class _Compiled(NamedTuple):
    text: str
    #: the driver's positional order as indexes into the row-by-row values; None if the same
    order: tuple[int, ...] | None
    #: the parameters' names for a driver that takes them by name; None for one by position
    names: tuple[str, ...] | None


class RowsStatement:
    """One multi-row statement for ``columns``, compiled per row count for ``dialect``."""

    def __init__(self, build: Builder, columns: Sequence[Column[Any]], dialect: Dialect) -> None:
        self._build = build
        self._dialect = dialect
        self._columns = list(columns)
        self._names = [column.name for column in self._columns]
        #: (column index, bind processor) of the columns whose values the driver gets converted
        self._converted = [
            (index, process)
            for index, column in enumerate(self._columns)
            if (process := column.type.dialect_impl(dialect).bind_processor(dialect)) is not None
        ]
        self._compiled: dict[int, _Compiled] = {}

    def sql(self, count: int) -> _Compiled:
        """The statement for ``count`` rows: its SQL text and where each parameter comes from."""
        found = self._compiled.get(count)
        if found is None:
            rows = [
                {c.name: bindparam(f"{c.name}_{n}", type_=c.type) for c in self._columns}
                for n in range(count)
            ]
            compiled = self._build(rows).compile(dialect=self._dialect)
            slots = {
                f"{name}_{n}": n * len(self._names) + index
                for n in range(count)
                for index, name in enumerate(self._names)
            }
            if compiled.positional:
                names = None
                order: tuple[int, ...] | None = tuple(
                    slots[name] for name in compiled.positiontup or ()
                )
                if order == tuple(range(len(slots))):
                    order = None  # the driver takes them row by row already
            else:
                names, order = tuple(slots), None
            found = _Compiled(str(compiled), order, names)
            self._compiled[count] = found
        return found

    def parameters(self, rows: list[dict[str, Any]]) -> list[Any] | dict[str, Any]:
        """The driver's parameters for ``rows``, each value converted by its column's bind
        processor; a value object shared by several rows (a batch's one timestamp) is converted
        once."""
        compiled = self.sql(len(rows))
        names = self._names
        values = [row[name] for row in rows for name in names]  # row by row, column order
        width = len(names)
        for column, process in self._converted:
            done: dict[int, Any] = {}  # id(value) -> converted; the rows keep the values alive
            for slot in range(column, len(values), width):
                value = values[slot]
                if value is not None:
                    key = id(value)
                    if key not in done:
                        done[key] = process(value)
                    values[slot] = done[key]
        if compiled.order is not None:
            values = [values[slot] for slot in compiled.order]
        return values if compiled.names is None else dict(zip(compiled.names, values, strict=True))

    def execute(self, connection: Connection, rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        """Run the statement for ``rows`` in ``connection``'s transaction; the returned rows."""
        sql = self.sql(len(rows)).text
        parameters = self.parameters(rows)
        cursor = connection.connection.cursor()
        try:
            cursor.execute(sql, parameters)
            return [tuple(row) for row in cursor.fetchall()]
        except self._dialect.loaded_dbapi.Error as exc:
            raise DBAPIError.instance(
                sql, parameters, exc, self._dialect.loaded_dbapi.Error, hide_parameters=True
            ) from exc
        finally:
            cursor.close()
