"""Shared helpers for the Znuny tests: fixture files and instance settings.

Fixtures in ``tests/fixtures/znuny/`` are invoker bodies ``{"Event": {...}, "Ticket": {...}}``
named after the event, built from the captured real request (``TicketCreate.captured.json``,
kept unchanged with the captured event blocks ``event-blocks.captured.json``).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import SecretStr

from connector.sandbox.znuny import RetryPolicy, ZnunySandbox
from connector.settings import InstanceSettings

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = ROOT / "tests" / "fixtures" / "znuny"
MAPPINGS = ROOT / "mappings"
#: the captured request's credentials: ``Authorization: Basic em51bnktaG9vazpob29rcHc=``
HOOK_USER, HOOK_SECRET = "znuny-hook", "hookpw"
AGENT, AGENT_PASSWORD = "slabot", "slabot-pw-7f3a"


def fixture(name: str) -> dict[str, Any]:
    """The parsed fixture file ``<name>.json``."""
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    return data


def captured() -> dict[str, Any]:
    """The captured real invoker request: ``method``, ``path``, ``headers``, ``body``."""
    return fixture("TicketCreate.captured")


def body_of(name: str) -> bytes:
    """Fixture ``name`` as the bytes Znuny's REST transport would send (JSON, UTF-8)."""
    return json.dumps(fixture(name), ensure_ascii=False).encode("utf-8")


def basic(user: str = HOOK_USER, password: str = HOOK_SECRET) -> dict[str, str]:
    """Headers of an invoker request with BasicAuth, as the captured request has them."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}", "Content-Type": "application/json"}


def znuny_instance(
    url: str = "http://127.0.0.1:9/znuny/nph-genericinterface.pl/Webservice/BitrixSLA",
    name: str = "main",
    webhook_secret: str = HOOK_SECRET,
    **options: Any,
) -> InstanceSettings:
    """A ``kind: znuny`` instance whose webhook credentials are (by default) the captured
    request's."""
    values: dict[str, Any] = {
        "user_login": AGENT,
        "password": AGENT_PASSWORD,
        "webhook_basic_user": HOOK_USER,
        "integration_user_id": 2,
    }
    values.update(options)
    return InstanceSettings(
        name=name,
        kind="znuny",
        url=url,
        webhook_secret=SecretStr(webhook_secret),
        timeout_seconds=5,
        options=values,
    )


def shipped_fields(**changes: Any) -> str:
    """The shipped DF import file (Znuny's ``{DynamicFields: {Name: {...}}}``), unchanged or
    with ``changes``: field name → definition (None removes the field)."""
    from connector.helpdesks.znuny.options import SHIPPED_DYNAMIC_FIELDS

    text = SHIPPED_DYNAMIC_FIELDS.read_text(encoding="utf-8")
    if not changes:
        return text
    document = yaml.safe_load(text)
    for name, definition in changes.items():
        if definition is None:
            del document["DynamicFields"][name]
        else:
            document["DynamicFields"][name] = definition
    return yaml.safe_dump(document, allow_unicode=True, sort_keys=False)


def start_sandbox(fields: str | None = None, **kwargs: Any) -> ZnunySandbox:
    """A started Znuny sandbox with dynamic fields, a VIP queue and three customer companies.

    Agents: ``root@localhost`` (UserID 1) and the integration agent ``slabot`` (UserID 2).

    Args:
        fields: the DF import file to load (sandbox format); default the shipped one.
        kwargs: passed to :class:`ZnunySandbox`.
    """
    values: dict[str, Any] = {
        "webservice": WEBSERVICE,
        "agents": {"root@localhost": "root", AGENT: AGENT_PASSWORD},
        "retry": RetryPolicy(start=0.05, factor=1, max=0.05, count=5, period=60),
    }
    values.update(kwargs)
    sandbox = ZnunySandbox(**values)
    sandbox.start()
    sandbox.import_dynamic_fields(fields if fields is not None else shipped_fields())
    sandbox.add_queue("VIP")
    for company, name in COMPANIES.items():
        sandbox.add_customer_company(company, name)
    for login, company in CUSTOMERS.items():
        sandbox.add_customer_user(
            login, email=f"{login}@{company}.example", customer_id=company, first_name=login
        )
    return sandbox


#: customer companies of the sandbox (CustomerID → name) and their users (login → CustomerID)
COMPANIES = {"studio": "Web Studio (partner)", "shop": "Shop LLC", "home": "Home page"}
CUSTOMERS = {"ivan": "studio", "olga": "shop", "petr": "home"}
WEBSERVICE = "BitrixSLA"
