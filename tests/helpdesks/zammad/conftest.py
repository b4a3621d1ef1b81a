"""Shared helpers for the Zammad tests: fixture files, signing, instance settings.

Fixtures in ``tests/fixtures/zammad/<event>.json`` are ``{"headers": {...}, "body": {...}}``
as Zammad's ``TriggerWebhookJob`` sends them (facts §1.1, §2.1, §9.1). The body is turned into
bytes the way Rails' ``to_json`` writes it — compact, UTF-8, with ``<``, ``>`` and ``&``
escaped as ``\\u003c``, ``\\u003e``, ``\\u0026`` — and then signed, so a receiver that
re-serialised the parsed JSON instead of checking the raw bytes would fail these tests.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from connector.helpdesks.signatures import sign
from connector.sandbox.zammad import INTEGRATION_TOKEN, ZammadSandbox
from connector.settings import InstanceSettings
from tests.clock import Clock

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = ROOT / "tests" / "fixtures" / "zammad"
MAPPINGS = ROOT / "mappings"
SECRET = "zammad-hmac-token-5f1e"
API_TOKEN = INTEGRATION_TOKEN  # the sandbox's integration user (an agent, not an admin)


def rails_json(data: object) -> bytes:
    """``data`` serialised like Rails' ``to_json``."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(char, escaped)
    return text.encode("utf-8")


def fixture(name: str) -> dict[str, Any]:
    """The parsed fixture file ``<name>.json``."""
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    return data


def signed(name: str, secret: str = SECRET) -> tuple[dict[str, str], bytes]:
    """Headers (with ``X-Hub-Signature``) and raw body of fixture ``name``."""
    data = fixture(name)
    body = rails_json(data["body"])
    headers = dict(data["headers"])
    headers["X-Hub-Signature"] = sign(secret, body, "sha1")
    return headers, body


def zammad_instance(
    url: str = "http://127.0.0.1:9", name: str = "main", **options: Any
) -> InstanceSettings:
    """A ``kind: zammad`` instance with the test token and webhook secret."""
    return InstanceSettings(
        name=name,
        kind="zammad",
        url=url,
        token=SecretStr(API_TOKEN),
        webhook_secret=SecretStr(SECRET),
        timeout_seconds=5,
        options=options,
    )


# --- the sandbox -------------------------------------------------------------------------------

LICENSE_TYPES = {
    t: t.capitalize() for t in ("partner", "commercial", "enterprise", "noncommercial")
}
DUE_OPTION = {"future": True, "past": True, "diff": None, "null": True}
OVERRIDES = {
    "emergency": "Emergency",
    "not_emergency": "Not an emergency",
    "consulting": "Consulting",
}


def customer_attributes(zammad: ZammadSandbox) -> None:
    """What the tier rules read: organization license type, customer license key."""
    zammad.add_attribute(
        "Organization",
        "bitrix_license_type",
        "select",
        {"options": LICENSE_TYPES, "default": "", "null": True},
    )
    zammad.add_attribute(
        "User", "bitrix_license_key", "input", {"type": "text", "maxlength": 64, "null": True}
    )


def managed_attributes(zammad: ZammadSandbox, *, past: bool = True) -> None:
    """The three managed ticket attributes and the agents' ``sla_override``, migrated."""
    zammad.add_attribute("Ticket", "bitrix_sla_due_at", "datetime", {**DUE_OPTION, "past": past})
    zammad.add_attribute(
        "Ticket", "bitrix_sla_tier", "select", {"options": LICENSE_TYPES, "default": ""}
    )
    levels = ("partner-standard", "partner-operational", "vip", "consulting", "noncommercial")
    zammad.add_attribute(
        "Ticket", "bitrix_sla_level", "select", {"options": {lv: lv for lv in levels}}
    )
    override_attribute(zammad)


def override_attribute(zammad: ZammadSandbox) -> None:
    zammad.add_attribute(
        "Ticket", "sla_override", "select", {"options": OVERRIDES, "default": "", "null": True}
    )


@pytest.fixture
def clock() -> Clock:
    return Clock(dt.datetime(2026, 3, 2, 7, 0, tzinfo=dt.UTC))  # a Monday, 10:00 MSK


@pytest.fixture
def zammad(clock: Clock) -> Iterator[ZammadSandbox]:
    with ZammadSandbox(retry_schedule=(0.05, 0.1, 0.2, 0.4), clock=clock) as server:
        yield server
