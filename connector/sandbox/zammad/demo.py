"""``bitrix-sla sandbox zammad``: a seeded fake Zammad to try the connector against.

The seed is a Zammad as a 1C-Bitrix support team would have it *before* the connector is set
up: groups ``Support`` and ``VIP``, the organization attribute ``bitrix_license_type`` (select:
partner, commercial, enterprise, noncommercial — maintained by sales, so it already exists),
organizations of each license type with customers, and a few open tickets. The ticket
attributes the connector writes do **not** exist yet, so ``bitrix-sla setup zammad --apply``
has work to do. With a webhook URL, a webhook and two triggers (create; update by anyone but
the integration user) are added, created after the seeded tickets so that start-up is quiet.
"""

from __future__ import annotations

from typing import Any, TextIO

from connector.sandbox.listener import stop_on_signals
from connector.sandbox.zammad.sandbox import ZammadSandbox
from connector.sandbox.zammad.server import (
    ADMIN_LOGIN,
    ADMIN_TOKEN,
    INTEGRATION_LOGIN,
    INTEGRATION_TOKEN,
)

DEMO_SIGNATURE_TOKEN = "sandbox-webhook-signature-token"
LICENSE_TYPES = {
    "partner": "Partner",
    "commercial": "Commercial",
    "enterprise": "Enterprise",
    "noncommercial": "Non-commercial",
}
_ORGANIZATIONS = (
    ("Веб-студия «Пиксель»", "partner", "olga@pixel.example", "Ольга", "Смирнова"),
    ("ООО «Ромашка»", "commercial", "ivan@romashka.example", "Иван", "Петров"),
    ("АО «Гигант»", "enterprise", "cto@gigant.example", "Сергей", "Волков"),
    ("Фонд «Открытый код»", "noncommercial", "anna@opencode.example", "Анна", "Кузнецова"),
)
_TICKETS = (
    ("Сайт не открывается", "ivan@romashka.example", "Support", "3 high", "<p>Ошибка 500.</p>"),
    ("Вопрос по D7 ORM", "olga@pixel.example", "Support", "2 normal", "<p>Как выбрать?</p>"),
    ("Обновление ядра", "cto@gigant.example", "VIP", "2 normal", "<p>Помогите с 24.0.</p>"),
    ("Настройка кеша", "anna@opencode.example", "Support", "1 low", "<p>Медленно.</p>"),
)


def seed(zammad: ZammadSandbox, webhook_url: str | None = None) -> dict[str, Any]:
    """Fill ``zammad`` with the demo data; returns the webhook and trigger ids if created."""
    for group in ("Support", "VIP"):
        zammad.add_group(group)
    zammad.add_attribute(
        "Organization",
        "bitrix_license_type",
        "select",
        {"options": LICENSE_TYPES, "default": "", "null": True},
        display="Bitrix license type",
    )
    for name, license_type, email, first, last in _ORGANIZATIONS:
        org = zammad.add_organization(name, bitrix_license_type=license_type)
        zammad.add_customer(email, firstname=first, lastname=last, organization=org["id"])
    for title, customer, group, priority, body in _TICKETS:
        zammad.create_ticket(title, customer=customer, group=group, priority=priority, body=body)
    if not webhook_url:
        return {}
    webhook = zammad.add_webhook(
        "sla-service", webhook_url, signature_token=DEMO_SIGNATURE_TOKEN, ssl_verify=False
    )
    created = zammad.add_trigger(
        "SLA 010 – ticket created → sla-service",
        {"ticket.action": {"operator": "is", "value": "create"}},
        webhook_id=webhook["id"],
    )
    not_us = {"operator": "is not", "pre_condition": "specific"}
    updated = zammad.add_trigger(
        "SLA 020 – ticket updated → sla-service",
        {
            "ticket.action": {"operator": "is", "value": "update"},
            "ticket.updated_by_id": {**not_us, "value": [str(zammad.integration_user_id)]},
        },
        webhook_id=webhook["id"],
    )
    return {"webhook_id": webhook["id"], "trigger_ids": [created["id"], updated["id"]]}


def run(host: str, port: int, *, out: TextIO, webhook_url: str | None = None) -> int:
    """Serve a seeded sandbox on ``host:port`` until SIGTERM/SIGINT; returns 0.

    Prints ``listening on http://HOST:PORT`` (flushed), then the tokens to configure.
    """
    with stop_on_signals() as stop:
        zammad = ZammadSandbox()
        try:
            zammad.start(port, host=host)
            created = seed(zammad, webhook_url)
            print(f"listening on {zammad.base_url}", file=out)
            print(f"admin token: {ADMIN_TOKEN} ({ADMIN_LOGIN})", file=out)
            bot = f"{INTEGRATION_LOGIN}, user id {zammad.integration_user_id}"
            print(f"integration token: {INTEGRATION_TOKEN} ({bot})", file=out)
            if created:
                print(
                    f"webhook -> {webhook_url} (signature token {DEMO_SIGNATURE_TOKEN})", file=out
                )
            out.flush()
            while not stop.wait(0.5):
                pass
        finally:
            zammad.stop()
    return 0
