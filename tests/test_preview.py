"""``bitrix-sla preview``: the worker's read → decide → diff on live tickets, without writing.

Against the fake helpdesk on a real socket; the job store's file must not even be created.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from connector.helpdesks.registry import build_all, close_adapters
from connector.mappings import load_mappings
from connector.preview import preview
from connector.sandbox.fake_helpdesk import FakeHelpdesk
from connector.sandbox.fake_tickets import SAMPLE_TICKETS
from connector.settings import load_settings
from tests.cli import run

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "preview-api-token"


@pytest.fixture
def helpdesk() -> Iterator[FakeHelpdesk]:
    server = FakeHelpdesk(TOKEN)
    server.start()
    for ticket in SAMPLE_TICKETS:  # two open ones and a closed one
        server.create_ticket(**ticket)
    yield server
    server.stop()


@pytest.fixture
def config(tmp_path: Path, helpdesk: FakeHelpdesk) -> Path:
    path = tmp_path / "settings.yaml"
    instance = {
        "name": "main",
        "kind": "fake",
        "url": helpdesk.base_url,
        "token": TOKEN,
        "webhook_secret": "unused",
    }
    settings = {
        "database_url": f"sqlite:///{tmp_path / 'never.sqlite'}",
        "mappings_dir": str(ROOT / "mappings"),
        "instances": [instance],
    }
    path.write_text(yaml.safe_dump(settings), encoding="utf-8")
    return path


def bring_up_to_date(config: Path) -> None:
    """Write what the preview says the worker would write, through the adapter's own apply."""
    settings = load_settings(file=config)
    policy = load_mappings(settings.mappings_dir).policy
    built = build_all(settings)
    try:
        (adapter, _) = built[("fake", "main")]
        for item in preview(adapter, policy, dt.datetime.now(dt.UTC)):
            assert item.plan is not None
            adapter.apply(item.plan)
    finally:
        close_adapters(built)


def test_open_tickets_that_would_change_then_none_once_written(
    config: Path, helpdesk: FakeHelpdesk, tmp_path: Path
) -> None:
    code, text = run("preview", "--config", str(config))
    assert code == 0, text
    lines = text.splitlines()
    assert lines[-1] == "fake/main: 2 ticket(s) read, 2 would change, 0 unreadable"
    assert lines[0].startswith("ticket 1: due - -> ")
    assert "level - -> " in lines[0]
    assert "+sla:urgency:emergency" in lines[0]
    assert helpdesk.writes() == []  # read only
    assert not (tmp_path / "never.sqlite").exists()  # and no job store

    bring_up_to_date(config)
    code, text = run("preview", "--config", str(config))
    assert (code, text) == (0, "fake/main: 2 ticket(s) read, 0 would change, 0 unreadable\n")

    # an agent's override changes the decision: the preview names exactly that change
    helpdesk.update_ticket("2", fields={"sla_override": "consulting"})
    code, text = run("preview", "--config", str(config))
    assert code == 0
    (change, summary) = text.splitlines()
    assert change.startswith("ticket 2: ")
    assert "level noncommercial -> consulting" in change
    assert summary.endswith("1 would change, 0 unreadable")


def test_candidate_mappings_show_what_they_would_move(
    config: Path, helpdesk: FakeHelpdesk, tmp_path: Path
) -> None:
    bring_up_to_date(config)
    candidate = tmp_path / "candidate"
    shutil.copytree(ROOT / "mappings", candidate)
    levels = candidate / "levels.yaml"
    text = levels.read_text(encoding="utf-8")
    document = yaml.safe_load(text)
    hours = document["levels"]["noncommercial"]["hours"]
    document["levels"]["noncommercial"]["hours"] = hours / 3
    levels.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")

    code, text = run("preview", "--config", str(config), "--mappings", str(candidate))

    assert code == 0, text
    *changes, summary = text.splitlines()
    assert summary == "fake/main: 2 ticket(s) read, 2 would change, 0 unreadable"
    for line in changes:  # only the due time moves, earlier
        _, _, what = line.partition(": ")
        assert what.startswith("due ")
        before, after = what.removeprefix("due ").split(" -> ")
        assert after < before
    assert run("preview", "--config", str(config))[1].endswith("0 would change, 0 unreadable\n")


def test_one_ticket_in_full_and_an_unreadable_one(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, text = run("preview", "--config", str(config), "--ticket", "1", "--ticket", "404")
    assert code == 1  # one ticket could not be read
    assert text.startswith("ticket 1\n  tier      ")
    assert "why:\n" in text
    assert "would write:\n  due - -> " in text
    assert "ticket 404: unreadable: " in text
    assert "404" in text.split("ticket 404: unreadable: ")[1]
    assert text.endswith("fake/main: 2 ticket(s) read, 1 would change, 1 unreadable\n")


def test_json_lines_include_unchanged_tickets(config: Path, helpdesk: FakeHelpdesk) -> None:
    bring_up_to_date(config)
    helpdesk.create_ticket(subject="Новый вопрос", body="Как настроить кеширование?")
    code, text = run("preview", "--config", str(config), "--json")
    assert code == 0
    items = [json.loads(line) for line in text.splitlines()]
    assert [(item["ticket_id"], item["changes"]) for item in items] == [
        ("1", False),
        ("2", False),
        ("4", True),
    ]
    assert items[2]["plan"]["fields"]["sla_level"] == items[2]["decision"]["level"]
    assert items[0]["current"]["sla_level"] == items[0]["decision"]["level"]


def test_a_helpdesk_that_fails_is_reported(
    config: Path, helpdesk: FakeHelpdesk, capsys: pytest.CaptureFixture[str]
) -> None:
    helpdesk.faults.fail_for(30, status=404)  # permanent: no in-job retries to wait for
    code, text = run("preview", "--config", str(config))
    assert code == 1
    assert text == "fake/main: 0 ticket(s) read, 0 would change, 1 unreadable\n"
    assert "bitrix-sla preview: fake/main: " in capsys.readouterr().err


def test_usage_errors_name_the_problem(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("preview", "--config", str(config), "--instance", "nope")[0] == 2
    assert "no instance 'nope' is configured (main)" in capsys.readouterr().err
    argv = ("preview", "--config", str(config), "--ticket", "1", "--since", "2026-01-01")
    assert run(*argv)[0] == 2
    assert "give --ticket or --since, not both" in capsys.readouterr().err
    bare = tmp_path / "bare.yaml"
    bare.write_text(f"database_url: sqlite:///{tmp_path / 'x.sqlite'}\n", encoding="utf-8")
    assert run("preview", "--config", str(bare))[0] == 2
    assert "no helpdesk instances are configured" in capsys.readouterr().err
    assert not (tmp_path / "never.sqlite").exists()
