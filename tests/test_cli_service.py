"""Service commands: db upgrade, jobs list/show/replay, backfill, serve and web end to end."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from connector.cli import main
from connector.helpdesks.base import IncomingEvent
from connector.pipeline.store import JobStore, RunRecord
from connector.sandbox.fake_helpdesk import FakeHelpdesk, wait_until
from tests.cli import run
from tests.processes import Tail, bitrix_sla, free_port, reap, spawn

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "cli-api-token"
HOOK = "cli-webhook-secret"


@pytest.fixture
def helpdesk() -> Iterator[FakeHelpdesk]:
    server = FakeHelpdesk(TOKEN)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def config(tmp_path: Path, helpdesk: FakeHelpdesk) -> Path:
    path = tmp_path / "settings.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "database_url": f"sqlite:///{tmp_path / 'db.sqlite'}",
                "mappings_dir": str(ROOT / "mappings"),
                "settle_seconds": 0,
                "instances": [
                    {
                        "name": "main",
                        "kind": "fake",
                        "url": helpdesk.base_url,
                        "token": TOKEN,
                        "webhook_secret": HOOK,
                    }
                ],
            }
        ),
        encoding="utf-8",
    )
    return path


def _url(config: Path) -> str:
    return str(yaml.safe_load(config.read_text())["database_url"])


def test_db_upgrade_is_idempotent(config: Path) -> None:
    from connector.pipeline.db import LATEST

    code, text = run("db", "upgrade", "--config", str(config))
    assert code == 0 and f"applied {list(range(1, LATEST + 1))}" in text
    code, text = run("db", "upgrade", "--config", str(config))
    assert code == 0 and "nothing to apply" in text and f"schema version {LATEST}" in text


def test_jobs_list_show_and_replay(config: Path) -> None:
    store = JobStore.open(_url(config))
    store.ingest("fake", "main", IncomingEvent(ticket_id="9", delivery_id="x"), b"{}")
    job = store.claim("w", 30)
    assert job is not None
    now = store.now()
    reason = "GET /api/tickets/9 -> 404 NOT FOUND: ticket 9 not found"
    failed = RunRecord(worker="w", started_at=now, finished_at=now, outcome="failed", error=reason)
    store.fail(job, "w", reason, permanent=True, record=failed)
    store.close()

    code, text = run("jobs", "list", "--status", "dead", "--config", str(config))
    assert code == 0
    assert re.search(rf"^\s+{job.id}\s+dead\s+fake/main/9\s+1 ", text, re.MULTILINE), text
    assert "404 NOT FOUND" in text
    code, text = run("jobs", "show", str(job.id), "--config", str(config))
    shown = json.loads(text)
    assert shown["job"]["status"] == "dead"
    assert shown["runs"][0]["error"] == reason
    assert run("jobs", "replay", str(job.id), "--config", str(config))[0] == 0
    assert run("jobs", "replay", str(job.id), "--config", str(config))[0] == 1  # not dead now
    code, text = run("jobs", "list", "--status", "queued", "--config", str(config))
    assert f"{job.id}  queued" in text
    assert run("jobs", "replay", "--all-dead", "--config", str(config)) == (
        0,
        "replayed 0 dead job(s)\n",
    )


def test_jobs_show_unknown(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("jobs", "show", "4242", "--config", str(config))[0] == 1
    assert "no job 4242" in capsys.readouterr().err


def test_backfill_queues_every_open_ticket(config: Path, helpdesk: FakeHelpdesk) -> None:
    for n in range(120):
        helpdesk.create_ticket(subject=f"t{n}", state="closed" if n % 10 == 0 else "open")
    code, text = run("backfill", "--config", str(config))
    assert (code, text) == (0, "queued 108 open ticket(s)\n")
    store = JobStore.open(_url(config))
    assert store.counts()["queued"] == 108
    assert {job.reason for job in store.list_jobs("queued", limit=500)} == {"backfill"}
    store.close()


def test_backfill_names_what_is_missing(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("backfill", "--instance", "nope", "--config", str(config))[0] == 2
    assert capsys.readouterr().err == (
        "bitrix-sla backfill: no instance 'nope' is configured (configured: main)\n"
    )
    bare = tmp_path / "no-instances.yaml"
    bare.write_text(f"database_url: {_url(config)}\n", encoding="utf-8")
    assert run("backfill", "--config", str(bare))[0] == 2
    assert capsys.readouterr().err == (
        "bitrix-sla backfill: no helpdesk instances are configured; list them under "
        "'instances:' in the settings file\n"
    )
    # arguments are checked before the database is touched
    with pytest.raises(SystemExit) as exit_:
        run("backfill", "--since", "yesterday", "--config", str(config))
    assert exit_.value.code == 2
    assert "--since: 'yesterday' is not an ISO 8601 date or time" in capsys.readouterr().err
    assert not Path(_url(config).removeprefix("sqlite:///")).exists()


def test_events_list_show_and_replay(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = JobStore.open(_url(config))
    try:
        before = store.now() - dt.timedelta(seconds=1)
        bodies = [b'{"ticket": {"id": 7}, "note": "\xd0\xbf\xd1\x80\xd0\xb8"}', b"not json", b"{}"]
        for ticket, delivery, body in zip(("7", "8", "7"), ("d1", "d2", "d3"), bodies, strict=True):
            event = IncomingEvent(ticket_id=ticket, delivery_id=delivery, event="ticket.updated")
            store.ingest("fake", "main", event, body)
        while (job := store.claim("w", 30)) is not None:  # both tickets done: nothing queued
            now = store.now()
            store.finish(
                job, "w", RunRecord(worker="w", started_at=now, finished_at=now, outcome="applied")
            )
        ids = [event.id for event in store.list_events()]
    finally:
        store.close()

    code, text = run("events", "list", "--config", str(config))
    assert code == 0
    rows = text.splitlines()[1:]
    assert [row.split()[0] for row in rows] == [str(i) for i in ids]  # newest first
    assert "fake/main/7" in rows[0] and "ticket.updated" in rows[0] and "d3" in rows[0]
    code, text = run("events", "list", "--ticket", "8", "--config", str(config))
    assert [row.split()[-1] for row in text.splitlines()[1:]] == ["d2"]

    code, text = run("events", "show", str(ids[-1]), "--config", str(config))
    shown = json.loads(text)
    assert shown["body"] == {"ticket": {"id": 7}, "note": "при"}  # parsed, as received
    assert shown["event"]["delivery_id"] == "d1"
    assert json.loads(run("events", "show", str(ids[1]), "--config", str(config))[1])["body"] == (
        "not json"
    )
    assert run("events", "show", "999999", "--config", str(config))[0] == 1
    assert "no event 999999" in capsys.readouterr().err

    since = before.isoformat()
    code, text = run("events", "replay", "--since", since, "--config", str(config))
    assert (code, text) == (0, "queued 2 ticket(s) that had webhooks in the window\n")
    store = JobStore.open(_url(config))
    try:
        queued = store.list_jobs("queued")
    finally:
        store.close()
    assert sorted((job.ticket_id, job.reason) for job in queued) == [
        ("7", "replay"),
        ("8", "replay"),
    ]
    later = (before + dt.timedelta(hours=1)).isoformat()
    assert run("events", "replay", "--since", later, "--config", str(config))[1] == (
        "queued 0 ticket(s) that had webhooks in the window\n"
    )
    assert (
        run("events", "replay", "--since", later, "--until", since, "--config", str(config))[0] == 2
    )


def test_bad_settings_are_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("lease_seconds: -1\ninstances: [{name: Main, kind: fake, url: x}]\n")
    assert run("jobs", "list", "--config", str(bad))[0] == 1
    err = capsys.readouterr().err
    assert "lease_seconds: Input should be greater than 0" in err
    assert "instances[0]" in err


@pytest.fixture
def refusing_port() -> Iterator[int]:
    """A loopback port bound but not listening: every connection to it is refused."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield held.getsockname()[1]


@pytest.mark.parametrize(
    "argv", [("jobs", "list"), ("db", "upgrade"), ("worker",), ("serve",), ("web",)]
)
def test_an_unreachable_database_is_one_clear_line(
    argv: tuple[str, ...],
    refusing_port: int,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = f"postgresql+psycopg://sla:s3cret@127.0.0.1:{refusing_port}/sla"
    monkeypatch.setenv("DATABASE_URL", url)
    assert run(*argv)[0] == 1
    err = capsys.readouterr().err
    assert err.startswith(
        f"bitrix-sla: cannot open the job store at "
        f"postgresql+psycopg://sla:***@127.0.0.1:{refusing_port}/sla: "
    ), err
    assert "refused" in err and "s3cret" not in err and "Traceback" not in err
    assert err.count("\n") == 1, err


def test_a_sqlite_path_under_a_file_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "data").write_text("not a directory")
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'data' / 'sla.db'}")
    for argv in (("jobs", "list"), ("db", "upgrade")):
        assert run(*argv)[0] == 1
        err = capsys.readouterr().err
        assert err == (
            f"bitrix-sla: cannot open the job store at sqlite:///{tmp_path / 'data' / 'sla.db'}: "
            f"not a directory: {tmp_path / 'data'}\n"
        )
    assert (tmp_path / "data").read_text() == "not a directory"


def test_a_bad_instance_is_named_in_its_file_before_the_database_is_touched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    database = tmp_path / "data" / "db.sqlite"
    bad = tmp_path / "bad.yaml"
    instance = {"name": "main", "kind": "fake", "url": "http://127.0.0.1:9", "token": "t"}
    bad.write_text(
        yaml.safe_dump({"database_url": f"sqlite:///{database}", "instances": [instance]}),
        encoding="utf-8",
    )
    for command in ("worker", "serve", "backfill"):
        assert run(command, "--config", str(bad))[0] == 1
        assert capsys.readouterr().err == (
            "bitrix-sla: 1 configuration error(s):\n"
            f"  {bad}: instances.main.webhook_secret: required for this kind\n"
        ), command
    assert not database.parent.exists()


def post_webhook(
    base: str, ticket: object, *, token: str = HOOK, event: str = "ticket.created"
) -> requests.Response:
    """One webhook from the fake helpdesk to the connector at ``base``, a fresh delivery id."""
    return requests.post(
        f"{base}/webhooks/fake/main",
        json={"ticket_id": ticket, "event": event},
        headers={"X-Fake-Token": token, "X-Fake-Delivery": str(uuid.uuid4())},
        timeout=5,
    )


def test_serve_end_to_end_and_graceful_stop(config: Path, helpdesk: FakeHelpdesk) -> None:
    ticket = helpdesk.create_ticket(
        subject="Сайт не открывается",
        body="Публичная часть сайта полностью не работает, ошибка 500 на всех страницах.",
        organization={"id": "1", "name": "Shop", "fields": {"bitrix_license_type": "commercial"}},
    )["id"]
    with bitrix_sla("serve", "--config", str(config), "--port", "0") as (process, base):
        assert requests.get(f"{base}/readyz", timeout=5).status_code == 200
        answer = post_webhook(base, ticket)
        assert answer.status_code == 202, answer.text
        # the fields are written first, then the tags: wait for both
        wait_until(lambda: "sla:urgency:emergency" in helpdesk.ticket(ticket)["tags"], timeout=20)
        written = helpdesk.ticket(ticket)
        assert written["fields"]["sla_level"] == "commercial-operational"
        assert "sla:urgency:emergency" in written["tags"]
        refused = post_webhook(base, ticket, token="wrong", event="ticket.updated")
        assert refused.status_code == 401
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        assert process.stderr is not None
        err = process.stderr.read()
    # the log says what matters in plain text: the refusal, not a line per request
    assert "refused a webhook for fake/main: unauthenticated (401)" in err, err
    assert "POST /webhooks" not in err and "GET /readyz" not in err, err
    assert "\x1b[" not in err, err  # no terminal colours in a file or the journal


def test_sighup_reloads_the_mappings_and_keeps_them_when_invalid(
    tmp_path: Path, config: Path, helpdesk: FakeHelpdesk
) -> None:
    mappings = tmp_path / "mappings"
    shutil.copytree(ROOT / "mappings", mappings)
    settings = yaml.safe_load(config.read_text())
    config.write_text(yaml.safe_dump({**settings, "mappings_dir": str(mappings)}))
    levels = mappings / "levels.yaml"
    shipped = levels.read_text()

    def level_of_a_new_partner_ticket(base: str) -> str:
        ticket = helpdesk.create_ticket(
            subject="Вопрос по API D7",
            body="Как получить элементы инфоблока через ORM?",
            organization={
                "id": "o1",
                "name": "Студия",
                "fields": {"bitrix_license_type": "partner"},
            },
        )["id"]
        answer = post_webhook(base, ticket)
        assert answer.status_code == 202, answer.text
        wait_until(lambda: helpdesk.ticket(ticket)["fields"].get("sla_level"), timeout=20)
        return str(helpdesk.ticket(ticket)["fields"]["sla_level"])

    with bitrix_sla("serve", "--config", str(config), "--port", "0") as (process, base):
        assert process.stderr is not None
        err = Tail(process.stderr)
        assert level_of_a_new_partner_ticket(base) == "partner-standard"
        # a broken file: every error logged, the service goes on with the mappings it has
        levels.write_text(shipped.replace("hours: 5\n", "hours: -5\n", 1))
        process.send_signal(signal.SIGHUP)
        wait_until(lambda: err.count("mappings not reloaded"), timeout=20)
        assert level_of_a_new_partner_ticket(base) == "partner-standard"
        # fixed, and a partner's standard request now gets the enterprise level
        levels.write_text(shipped.replace("standard: partner-standard", "standard: vip", 1))
        process.send_signal(signal.SIGHUP)
        wait_until(lambda: err.count("mappings reloaded from"), timeout=20)
        assert level_of_a_new_partner_ticket(base) == "vip"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    assert (
        "levels.yaml: levels.partner-standard.hours: Input should be greater than 0" in err.text()
    )


def _answers(url: str) -> bool:
    """Whether ``url`` answers 200. gunicorn listens before its workers have booted (slow on a
    fresh checkout, which compiles every module first): meanwhile a request waits unanswered."""
    try:
        return requests.get(url, timeout=5).status_code == 200
    except (requests.ConnectionError, requests.Timeout):
        return False


@pytest.mark.parametrize(("level", "logged"), [(None, True), ("warning", False)])
def test_web_runs_under_gunicorn_and_logs_like_the_other_commands(
    config: Path, tmp_path: Path, level: str | None, logged: bool
) -> None:
    """``web`` (the container command) logs refusals in the common format, at --log-level."""
    port = free_port()
    argv = ["web", "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--workers", "2", "--threads", "2", *(["--log-level", level] if level else [])]
    env = dict(os.environ)
    for inherited in ("PROMETHEUS_MULTIPROC_DIR", "BITRIX_SLA_LOG_LEVEL"):
        env.pop(inherited, None)
    process = spawn(*argv, env=env, stdout=subprocess.DEVNULL)
    try:
        wait_until(lambda: _answers(f"http://127.0.0.1:{port}/readyz"), timeout=60)
        url = f"http://127.0.0.1:{port}/webhooks/fake/main"
        body = {"ticket_id": "1", "event": "ticket.created"}
        delivery = {"X-Fake-Delivery": str(uuid.uuid4())}
        good = requests.post(url, json=body, headers={"X-Fake-Token": HOOK, **delivery}, timeout=5)
        assert good.status_code == 202, good.text
        bad = requests.post(
            url, json=body, headers={"X-Fake-Token": "wrong", **delivery}, timeout=5
        )
        assert bad.status_code == 401, bad.text
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        assert process.stderr is not None
        err = process.stderr.read()
    finally:
        reap(process)
    refused = re.compile(
        r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO webhooks\.routes_ingest: "
        r"refused a webhook for fake/main: unauthenticated \(401\)$",
        re.MULTILINE,
    )
    assert bool(refused.search(err)) is logged, err
    assert "wrong" not in err and HOOK not in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        # 99999 used to wrap around: serve listened on port 34463
        (["serve", "--port", "99999"], "--port: '99999' is not a port number: use 0 to 65535"),
        (["worker", "--metrics-port", "-1"], "--metrics-port: '-1' is not a port number"),
        (["worker", "--concurrency", "-2"], "--concurrency: '-2' is not a number of worker"),
        (["serve", "--concurrency", "65"], "'65' is not a number of worker threads: use 1 to 64"),
        (["web", "--workers", "0"], "--workers: '0' is not a count: use 1 or more"),
        (["web", "--threads", "x"], "--threads: 'x' is not a count"),
        (["serve", "--grace", "-5"], "--grace: '-5' is not a number of seconds"),
        (["serve", "--grace", "inf"], "--grace: 'inf' is not a number of seconds"),
        (["jobs", "list", "--limit", "0"], "--limit: '0' is not a count: use 1 or more"),
        # past 64 bits the driver refused to bind it, with a traceback
        (
            ["jobs", "show", "99999999999999999999999"],
            "id: '99999999999999999999999' is not a job id: use 1 to 9223372036854775807",
        ),
        (["jobs", "replay", "0"], "id: '0' is not a job id"),
    ],
)
def test_numbers_on_the_command_line_are_checked(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_log_levels_are_checked(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main(["worker", "--log-level", "loud"])
    assert "--log-level: invalid choice: 'LOUD'" in capsys.readouterr().err
    monkeypatch.setenv("BITRIX_SLA_LOG_LEVEL", "loud")
    assert run("worker")[0] == 1
    assert capsys.readouterr().err == (
        "bitrix-sla: 1 configuration error(s):\n"
        "  environment: BITRIX_SLA_LOG_LEVEL: 'LOUD' is not a log level; "
        "use one of DEBUG, INFO, WARNING, ERROR\n"
    )


def test_worker_serves_its_health_and_stops_on_sigterm(config: Path) -> None:
    status = ("--metrics-port", "0", "--metrics-host", "127.0.0.1")
    with bitrix_sla("worker", "--config", str(config), *status) as (process, base):
        answer = requests.get(f"{base}/healthz", timeout=5)
        assert answer.status_code == 200
        assert answer.json()["status"] == "ok"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
