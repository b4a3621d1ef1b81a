"""``run()`` as the operator starts it: a subprocess serving a seeded Znuny until SIGTERM."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from connector.sandbox.fake_helpdesk import wait_until
from tests.processes import reap
from tests.sandbox.znuny import Sink

ROOT_DIR = Path(__file__).resolve().parents[3]


@pytest.fixture
def sink() -> Iterator[Sink]:
    endpoint = Sink()
    yield endpoint
    endpoint.close()


def start(*command: str, lines: int = 3) -> tuple[subprocess.Popen[str], str, list[str]]:
    process = subprocess.Popen(
        [sys.executable, *command, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT_DIR,
    )
    assert process.stdout is not None
    printed = [process.stdout.readline() for _ in range(lines)]
    match = re.match(r"listening on (http://127\.0\.0\.1:\d+/\S+)$", printed[0].strip())
    assert match, "".join(printed) + (process.stderr.read() if process.stderr else "")
    return process, match.group(1), printed[1:]


def stop(process: subprocess.Popen[str]) -> int:
    try:
        process.send_signal(signal.SIGTERM)
        return process.wait(timeout=20)
    finally:
        reap(process)


def test_module_serves_seeded_data_until_sigterm() -> None:
    process, base, credentials = start("-m", "connector.sandbox.znuny")
    try:
        assert base.endswith("/znuny/nph-genericinterface.pl/Webservice/GenericTicketConnectorREST")
        assert credentials == [
            "agent root@localhost password root (UserID 1)\n",
            "agent slabot password slabot (UserID 2)\n",
        ]
        auth = {"UserLogin": "slabot", "Password": "slabot"}
        welcome = requests.get(f"{base}/Ticket/1", params={**auth, "DynamicFields": "1"}, timeout=5)
        ticket = welcome.json()["Ticket"][0]
        assert ticket["Title"] == "Welcome to Znuny!"
        names = {field["Name"] for field in ticket["DynamicField"]}
        assert not {"SLADueDate", "SupportTier"} & names  # the connector's fields are not there
        vip = requests.get(f"{base}/Ticket", params={**auth, "Queues": "VIP"}, timeout=5).json()
        (vip_id,) = vip["TicketID"]
        found = requests.get(f"{base}/Ticket/{vip_id}", params=auth, timeout=5).json()
        assert found["Ticket"][0]["CustomerID"] == "acme-enterprise"
    finally:
        assert stop(process) == 0


def test_cli_command_sends_webhooks_to_the_given_url(sink: Sink) -> None:
    url = sink.url.replace("http://", "http://hook:secret@")
    command = ("-m", "connector.cli", "sandbox", "znuny", "--webhook-url", url)
    process, base, lines = start(*command, lines=4)
    try:
        assert lines[-1].startswith("invoker SLAWebhook -> http://127.0.0.1:")
        assert "secret" not in "".join(lines)
        auth = {"UserLogin": "root@localhost", "Password": "root"}
        requests.patch(
            f"{base}/Ticket/2", json={**auth, "Ticket": {"Priority": "5 very high"}}, timeout=5
        )
        wait_until(lambda: sink.received, timeout=10)
        request = sink.received[0]
        assert request.event == "TicketPriorityUpdate"
        assert request.headers["Authorization"] == "Basic aG9vazpzZWNyZXQ="
        assert request.body["Ticket"]["CustomerUser"]["bitrix_license_type"] == "commercial"
    finally:
        assert stop(process) == 0
