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
from typing import Any

from sqlalchemy import Column, bindparam
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.elements import BindParameter

#: builds the statement for a list of rows, each row a mapping of column name to bind parameter
Builder = Callable[[list[dict[str, BindParameter[Any]]]], Any]


class RowsStatement:
    """One multi-row statement for ``columns``, compiled per row count for ``dialect``."""

    def __init__(self, build: Builder, columns: Sequence[Column[Any]], dialect: Dialect) -> None:
        self._build = build
        self._dialect = dialect
        self._columns = list(columns)
        self._processors = [
            (column.name, column.type.bind_processor(dialect)) for column in columns
        ]
        self._compiled: dict[int, tuple[str, tuple[str, ...] | None]] = {}

    def sql(self, count: int) -> tuple[str, tuple[str, ...] | None]:
        """The SQL text for ``count`` rows, and its parameter names in order (positional)."""
        found = self._compiled.get(count)
        if found is None:
            rows = [
                {c.name: bindparam(f"{c.name}_{n}", type_=c.type) for c in self._columns}
                for n in range(count)
            ]
            compiled = self._build(rows).compile(dialect=self._dialect)
            order = tuple(compiled.positiontup or ()) if compiled.positional else None
            found = self._compiled[count] = (str(compiled), order)
        return found

    def execute(self, connection: Connection, rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        """Run the statement for ``rows`` in ``connection``'s transaction; the returned rows."""
        sql, order = self.sql(len(rows))
        values: dict[str, Any] = {}
        for n, row in enumerate(rows):
            for name, process in self._processors:
                value = row[name]
                values[f"{name}_{n}"] = value if process is None else process(value)
        parameters: Any = values if order is None else [values[name] for name in order]
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
