"""The ``bitrix-sla`` commands, run in-process and once through the installed console script."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli import run

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "ticket-commercial-emergency.json"


def test_check_config_ok() -> None:
    code, text = run("check-config", "--mappings", str(ROOT / "mappings"))
    assert code == 0
    assert text.splitlines()[-1] == "OK"


def test_check_config_lists_every_error(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "mappings", tmp_path / "m")
    levels = tmp_path / "m" / "levels.yaml"
    levels.write_text(levels.read_text().replace("hours: 2\n", "hours: 0\n"), encoding="utf-8")
    tiers = tmp_path / "m" / "tiers.yaml"
    tiers.write_text(tiers.read_text().replace("default_tier: noncommercial", "default_tier: x"))
    code, text = run("check-config", "--mappings", str(tmp_path / "m"))
    assert code == 1
    assert "levels.yaml: levels.vip.hours: Input should be greater than 0" in text
    assert text.splitlines()[-1] == "1 error(s)"


def test_check_config_checks_the_settings_and_instances_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The settings file, each instance's options and the mappings, with every error named by
    file and key path; neither the database nor the helpdesks are contacted."""
    database = tmp_path / "data" / "sla.db"
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{database}")
    monkeypatch.setenv("ZAMMAD_TOKEN", "api-token")
    monkeypatch.delenv("BITRIX_SLA_MAPPINGS", raising=False)
    zammad = {
        "name": "main",
        "kind": "zammad",
        "url": "http://127.0.0.1:9",
        "token_env": "ZAMMAD_TOKEN",
        "webhook_secret_env": "ZAMMAD_TOKEN",
    }
    good = tmp_path / "good.yaml"
    good.write_text(
        json.dumps({"mappings_dir": str(ROOT / "mappings"), "instances": [zammad]}),
        encoding="utf-8",
    )
    code, text = run("check-config", "--config", str(good))
    assert code == 0, text
    assert text.splitlines()[0] == f"settings from {good}: 1 helpdesk instance(s): zammad/main"
    assert text.splitlines()[-1] == "OK"

    shutil.copytree(ROOT / "mappings", tmp_path / "m")
    levels = tmp_path / "m" / "levels.yaml"
    levels.write_text(levels.read_text().replace("hours: 2\n", "hours: 0\n"), encoding="utf-8")
    bad = tmp_path / "bad.yaml"
    broken = {**zammad, "options": {"integration_user_id": 0}}
    znuny = {"name": "old", "kind": "znuny", "url": "http://127.0.0.1:9", "token_env": "NOPE"}
    bad.write_text(
        json.dumps({"mappings_dir": str(tmp_path / "m"), "instances": [broken]}), encoding="utf-8"
    )
    code, text = run("check-config", "--config", str(bad))
    assert code == 1
    lines = text.splitlines()
    assert (
        f"{bad}: instances.main.options.integration_user_id: Input should be greater than 0"
        in lines
    )
    assert "levels.yaml: levels.vip.hours: Input should be greater than 0" in text
    assert lines[-1] == f"{len(lines) - 1} error(s)"
    # a secret that is not there is named too (settings errors stop before the instances)
    bad.write_text(json.dumps({"instances": [znuny]}), encoding="utf-8")
    code, text = run("check-config", "--config", str(bad))
    assert code == 1
    assert f"{bad}: instances[0].token_env: environment variable NOPE is not set" in text
    assert not database.exists() and not database.parent.exists()


@pytest.mark.parametrize(
    ("argv", "last_line"),
    [
        # the README's example: over the New Year holidays
        (["--start", "2026-12-30T16:00:00+03:00", "--hours", "6"], "2027-01-11T13:00:00+03:00"),
        # a start without offset is calendar-local time
        (["--start", "2026-04-30T16:00", "--hours", "1"], "2026-04-30T17:00:00+03:00"),
        # UTC in, Moscow offset out
        (["--start", "2026-11-25T06:00:00Z", "--hours", "1.5"], "2026-11-25T10:30:00+03:00"),
        # the cap wins when it is earlier
        (
            ["--start", "2026-11-03T10:00:00+03:00", "--hours", "24", "--cap-days", "3"],
            "2026-11-06T10:00:00+03:00",
        ),
        # another calendar of the same file
        (
            ["--start", "2026-11-25T23:30:00+03:00", "--hours", "1", "--calendar", "moscow-24x7"],
            "2026-11-26T00:30:00+03:00",
        ),
    ],
)
def test_due(argv: list[str], last_line: str) -> None:
    code, text = run("due", "--calendars", str(ROOT / "mappings" / "calendars.yaml"), *argv)
    assert code == 0
    assert text.splitlines()[-1] == last_line


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--start", "tomorrow", "--hours", "1"], "not an ISO 8601 date-time"),
        (["--start", "2026-11-25T10:00", "--hours", "-1"], "0 or more, not -1"),
        (["--start", "2026-11-25T10:00", "--hours", "inf"], "0 or more, not inf"),
        (["--start", "2026-11-25T10:00", "--hours", "nan"], "0 or more, not nan"),
        (["--start", "2026-11-25T10:00", "--hours", "1e9"], "falls after the year 9999"),
        (
            ["--start", "2026-11-25T10:00", "--hours", "1", "--cap-days", "10000000"],
            "falls after the year 9999",
        ),
        (
            ["--start", "2026-11-25T10:00", "--hours", "1", "--calendar", "mars"],
            "no calendar 'mars'",
        ),
    ],
)
def test_due_rejects_bad_input(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = run("due", *argv)
    assert code == 2
    assert message in capsys.readouterr().err


def test_classify_jsonl(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(
        "\n".join(
            [
                json.dumps(
                    {
                        "id": "a",
                        "subject": "Сайт не открывается",
                        "body": "Ошибка 500 на всех страницах",
                    }
                ),
                json.dumps({"subject": "How do I enable composite cache?", "body": ""}),
                "not json",
                json.dumps({"id": "c", "subject": 5}),
            ]
        ),
        encoding="utf-8",
    )
    code, text = run("classify", "--jsonl", str(source))
    assert code == 1  # two bad lines
    rows = [json.loads(line) for line in text.splitlines()]
    assert [row["id"] for row in rows] == ["a", 2]
    assert set(rows[0]) == {"id", "topic", "scope", "urgency", "out_reasons", "evidence"}
    assert rows[0]["urgency"] == "emergency"
    errors = capsys.readouterr().err
    assert f"{source}:3:" in errors
    assert f"{source}:4: 'subject' and 'body' must be strings" in errors


def test_classify_reports_lines_that_are_not_utf8(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A line saved as Windows-1251 stopped the whole run with a traceback (from a file) or was
    classified as mojibake (from stdin). Now it is reported like any bad line."""
    good = json.dumps({"subject": "Сайт не открывается"}, ensure_ascii=False).encode()
    bad = json.dumps({"subject": "Сайт не открывается"}, ensure_ascii=False).encode("cp1251")
    data = b"\n".join([bad, good]) + b"\n"
    source = tmp_path / "in.jsonl"
    source.write_bytes(data)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    for name in (str(source), "-"):
        code, text = run("classify", "--jsonl", name)
        assert code == 1
        (row,) = [json.loads(line) for line in text.splitlines()]
        assert (row["id"], row["urgency"]) == (2, "emergency")
        assert capsys.readouterr().err == (
            f"{name}:1: not UTF-8 (byte 0xd1 at offset 13); save it as UTF-8\n"
        )
    assert run("classify", "--jsonl", str(tmp_path / "missing.jsonl"))[0] == 2
    assert "--jsonl: cannot read " in capsys.readouterr().err


def test_explain_text_and_json() -> None:
    code, text = run("explain", "--ticket", str(EXAMPLE), "--now", "2026-11-27T18:00:00+03:00")
    assert code == 0
    assert "level     commercial-operational" in text
    assert "due       2026-11-30T11:20:00+03:00" in text
    code, text = run(
        "explain", "--ticket", str(EXAMPLE), "--now", "2026-11-27T18:00:00+03:00", "--json"
    )
    decision = json.loads(text)
    assert decision["due_at"] == "2026-11-30T08:20:00Z"
    assert decision["level"] == "commercial-operational"
    assert "sla:tier:commercial" in decision["tags"]


def test_explain_rejects_a_bad_ticket(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "t.json"
    bad.write_text(json.dumps({"id": "1", "created_at": "2026-11-27T16:20:00"}), encoding="utf-8")
    code, _ = run("explain", "--ticket", str(bad))
    assert code == 2
    assert "created_at: Input should have timezone info" in capsys.readouterr().err
    bad.write_bytes(EXAMPLE.read_text(encoding="utf-8").encode("cp1251", errors="replace"))
    assert run("explain", "--ticket", str(bad))[0] == 2
    assert "not UTF-8 (byte 0x" in capsys.readouterr().err


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "bitrix-sla"
    assert script.is_file(), "pip install -e . should install the bitrix-sla script"
    done = subprocess.run(
        [script, "check-config", "--mappings", str(ROOT / "mappings")],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "OK"


def test_ctrl_c_ends_a_command_with_one_line_and_status_130() -> None:
    """Interrupted mid-work (here ``classify`` reading stdin), a command says so in one line
    instead of a traceback, and exits with the shell's status for SIGINT."""
    script = Path(sys.executable).parent / "bitrix-sla"
    with subprocess.Popen(
        [script, "classify", "--jsonl", "-", "--mappings", str(ROOT / "mappings")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    ) as process:
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write('{"subject": "сайт не открывается"}\n')
        process.stdin.flush()
        assert json.loads(process.stdout.readline())["id"] == 1  # busy in its loop now
        process.send_signal(signal.SIGINT)
        _, errors = process.communicate(timeout=60)
    assert process.returncode == 130
    assert errors.strip().splitlines() == ["bitrix-sla classify: interrupted"]
