"""``jobs list`` and ``events list``: ``--limit`` within what the engines bind (64 bits)."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.cli import main
from connector.helpdesks.base import IncomingEvent
from connector.pipeline.store import MAX_ID, JobStore
from tests.cli import run


@pytest.mark.parametrize("command", ["jobs", "events"])
@pytest.mark.parametrize("limit", [str(MAX_ID + 1), str(2**64), "1" + "0" * 40, "0", "-3", "x"])
def test_a_limit_past_64_bits_exits_2_naming_the_option(
    command: str, limit: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Past 64 bits the driver refused to bind it: a traceback (OverflowError on SQLite,
    DataError on PostgreSQL) instead of a usage error."""
    with pytest.raises(SystemExit) as exit_:
        main([command, "list", "--limit", limit])
    assert exit_.value.code == 2
    error = capsys.readouterr().err
    assert f"--limit: {limit!r} is not a count: use 1 or more, up to {MAX_ID}" in error
    assert "Traceback" not in error


def test_the_largest_limit_lists_everything(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = JobStore.open(database_url)
    try:
        for ticket in ("1", "2"):
            store.ingest("fake", "a", IncomingEvent(ticket_id=ticket, delivery_id=ticket), b"{}")
        # the store binds at most 64 bits, whoever asks for more
        assert len(store.list_jobs(None, 2**64)) == 2
        assert len(store.list_events(limit=2**64)) == 2
    finally:
        store.close()
    monkeypatch.chdir(tmp_path)  # no settings file but the environment's
    monkeypatch.setenv("DATABASE_URL", database_url)
    code, text = run("jobs", "list", "--limit", str(MAX_ID))
    assert code == 0 and len(text.splitlines()) == 3  # a header and two jobs
    code, text = run("events", "list", "--limit", str(MAX_ID))
    assert code == 0 and len(text.splitlines()) == 3
