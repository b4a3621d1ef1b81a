"""The edge's cross-process gate for SQLite writes."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from pydantic import SecretStr

from webhooks.write_gate import SUFFIX, WriteGate

from .conftest import make_settings


def test_gate_sits_beside_the_sqlite_file(tmp_path: Path) -> None:
    gate = WriteGate.for_settings(make_settings(tmp_path))

    assert gate.path == tmp_path / f"db.sqlite{SUFFIX}"


def test_no_gate_for_postgresql(tmp_path: Path) -> None:
    url = SecretStr("postgresql+psycopg://u@127.0.0.1/db")
    gate = WriteGate.for_settings(make_settings(tmp_path, database_url=url))

    assert gate.path is None
    with gate.hold():
        pass


def test_two_openings_exclude_each_other(tmp_path: Path) -> None:
    """flock locks belong to an open file, so two gates stand for two gunicorn workers."""
    first, second = WriteGate(tmp_path / "lock"), WriteGate(tmp_path / "lock")
    entered = threading.Event()

    def contender() -> None:
        with second.hold():
            entered.set()

    try:
        with first.hold():
            thread = threading.Thread(target=contender)
            thread.start()
            time.sleep(0.2)
            assert not entered.is_set()
        thread.join(5)
        assert entered.is_set()
    finally:
        first.close()
        second.close()
