"""Core statements run on the driver's cursor: same values in, SQLAlchemy errors out."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from connector.pipeline import db
from connector.pipeline.driver_sql import RowsStatement

WHEN = dt.datetime(2026, 11, 27, 15, 30, 0, 123456, tzinfo=dt.timezone(dt.timedelta(hours=3)))
COLUMNS = ("received_at", "kind", "instance", "ticket_id", "delivery_id", "event", "body")


def row(delivery: str) -> dict[str, Any]:
    return {
        "received_at": WHEN,
        "kind": "fake",
        "instance": "a",
        "ticket_id": "1",
        "delivery_id": delivery,
        "event": "",
        "body": "{}",
    }


def test_rows_statement_converts_like_core_and_wraps_driver_errors(database_url: str) -> None:
    engine = db.make_engine(database_url)
    db.upgrade(engine)
    statement = RowsStatement(
        lambda rows: insert(db.events).values(rows).returning(db.events.c.delivery_id),
        [db.events.c[name] for name in COLUMNS],
        engine.dialect,
    )
    try:
        with engine.begin() as connection:
            assert statement.execute(connection, [row("d1"), row("d2")]) == [("d1",), ("d2",)]
            connection.execute(insert(db.events).values(row("core")))  # the usual path
        with engine.connect() as connection:
            stored = connection.execute(
                select(db.events.c.delivery_id, db.events.c.received_at).order_by(db.events.c.id)
            ).all()
        # the aware datetime went through UtcDateTime exactly as Connection.execute sends it
        assert [tuple(r) for r in stored] == [(d, WHEN) for d in ("d1", "d2", "core")]
        assert stored[0][1].tzinfo == dt.UTC
        with pytest.raises(IntegrityError) as raised, engine.begin() as connection:
            statement.execute(connection, [row("d3"), row("d1")])  # d1 is stored: no ON CONFLICT
        assert "d3" not in str(raised.value)  # parameters (webhook bodies) stay out of messages
        with engine.connect() as connection:  # the failed statement's transaction rolled back
            count = connection.execute(select(db.events.c.id)).all()
        assert len(count) == 3
        assert statement.sql(2) is statement.sql(2)  # compiled once per row count
    finally:
        engine.dispose()
