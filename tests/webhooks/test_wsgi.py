"""The gunicorn entry point builds the app from the environment and freezes its boot heap."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import gc, json
before = gc.get_freeze_count()
import webhooks.wsgi as entry
client = entry.app.test_client()
answer = client.post(
    "/webhooks/fake/main",
    data=b'{"ticket_id": "7"}',
    headers={"Content-Type": "application/json", "X-Fake-Token": "probe-secret"},
)
print(json.dumps({
    "before": before,
    "frozen": gc.get_freeze_count(),
    "enabled": gc.isenabled(),
    "status": answer.status_code,
}))
"""


def test_the_entry_point_freezes_what_booting_built_and_still_serves(tmp_path: Path) -> None:
    config = tmp_path / "settings.yaml"
    config.write_text(
        "instances:\n"
        "  - name: main\n"
        "    kind: fake\n"
        "    url: http://127.0.0.1:9\n"
        "    token_env: PROBE_API_TOKEN\n"
        "    webhook_secret_env: PROBE_HOOK_SECRET\n"
    )
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}",
        "BITRIX_SLA_CONFIG": str(config),
        "BITRIX_SLA_MAPPINGS": str(ROOT / "mappings"),
        "PROBE_API_TOKEN": "probe-token",
        "PROBE_HOOK_SECRET": "probe-secret",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["before"] == 0
    # the service's modules, schemas and mappings: tens of thousands of objects
    assert seen["frozen"] > 20_000
    assert seen["enabled"] is True  # later objects are still collected
    assert seen["status"] == 202
