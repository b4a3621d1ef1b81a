"""``run()`` as a real process: prints its URL and tokens, serves seeded data, stops on SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from connector.sandbox.fake_helpdesk import wait_until
from connector.sandbox.zammad import ADMIN_TOKEN, INTEGRATION_TOKEN, ZammadSandbox, seed
from connector.sandbox.zammad.demo import DEMO_SIGNATURE_TOKEN
from tests.sandbox.zammad import QUICK, Api, Sink, assert_signed


@pytest.fixture
def sink() -> Iterator[Sink]:
    receiver = Sink()
    yield receiver
    receiver.close()


@pytest.mark.parametrize(
    "command",
    [["-m", "connector.sandbox.zammad"], ["-m", "connector.cli", "sandbox", "zammad"]],
    ids=["module", "bitrix-sla"],
)
def test_run_prints_the_url_serves_and_stops_on_sigterm(sink: Sink, command: list[str]) -> None:
    command = [sys.executable, *command, "--webhook-url", sink.url]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            first = process.stdout.readline().strip()
            assert first.startswith("listening on http://127.0.0.1:")
            base_url = first.removeprefix("listening on ")
            rest = [process.stdout.readline().strip() for _ in range(3)]
            assert rest[0].startswith(f"admin token: {ADMIN_TOKEN}")
            assert rest[1].startswith(f"integration token: {INTEGRATION_TOKEN}")
            assert DEMO_SIGNATURE_TOKEN in rest[2]
            with Api(base_url) as bot, Api(base_url, ADMIN_TOKEN) as admin:
                found = bot("GET", "/api/v1/tickets/search", params={"query": "state.name:new"})
                assert found.json()["tickets_count"] == 4
                bot("PUT", "/api/v1/tickets/1", json={"title": "quiet: written by the bot"})
                admin("PUT", "/api/v1/tickets/1", json={"priority": "1 low"})
            wait_until(lambda: len(sink.received) == 1)
            got = sink.received[0]
            assert_signed(got, DEMO_SIGNATURE_TOKEN)
            assert json.loads(got.body)["ticket"]["priority"]["name"] == "1 low"
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=10) == 0
        finally:
            if process.poll() is None:
                process.kill()


def test_seed_leaves_the_sla_attributes_to_setup() -> None:
    with ZammadSandbox(retry_schedule=QUICK) as zammad:
        assert seed(zammad) == {}
        names = {row["name"] for row in zammad.store.objects.listing() if row["editable"]}
        assert names == {"bitrix_license_type"}
        api = Api(zammad.base_url, ADMIN_TOKEN)
        licenses = {
            api("GET", f"/api/v1/organizations/{org_id}").json()["bitrix_license_type"]
            for org_id in (1, 2, 3, 4)
        }
        assert licenses == {"partner", "commercial", "enterprise", "noncommercial"}
        groups = [group["name"] for group in api("GET", "/api/v1/groups").json()]
        assert groups == ["Users", "Support", "VIP"]
        assert api("GET", "/api/v1/webhooks").json() == []
        api.close()
