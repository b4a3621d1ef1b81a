"""``bitrix-sla demo``: the whole connector against a sandbox Zammad, on loopback, in seconds.

It does what an admin and a support team would do, for real: a fake Zammad (real HTTP, signed
webhooks, triggers) gets the connector's attributes, webhook and triggers from ``setup zammad``;
``serve`` (web edge and worker, the embedded SQLite default, the shipped mappings) runs in this
process; customers of every license tier open tickets in Russian and English; an agent moves one
ticket to consulting. When every write-back has landed, a table shows what each ticket got.
"""

from __future__ import annotations

import datetime as dt
import io
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from pydantic import SecretStr

from connector.mappings import default_mappings_dir
from connector.settings import InstanceSettings, Settings

LICENSE_TYPES = {
    "partner": "Partner",
    "commercial": "Commercial",
    "enterprise": "Enterprise",
    "noncommercial": "Non-commercial",
}
OVERRIDES = {"emergency": "Emergency confirmed", "not_emergency": "Not an emergency",
             "consulting": "Move to consulting"}  # fmt: skip
CUSTOMERS = (
    # organization, license type, e-mail, first name, last name
    ("Веб-студия «Пиксель»", "partner", "olga@pixel.example", "Ольга", "Смирнова"),
    ("ООО «Ромашка»", "commercial", "ivan@romashka.example", "Иван", "Петров"),
    ("Acme Trading Ltd", "commercial", "john@acme.example", "John", "Miller"),
    ("АО «Гигант»", "enterprise", "cto@gigant.example", "Сергей", "Волков"),
    ("Фонд «Открытый код»", "noncommercial", "anna@opencode.example", "Анна", "Кузнецова"),
)


@dataclass(frozen=True)
class DemoTicket:
    title: str
    body: str
    customer: str
    group: str = "Support"


TICKETS = (
    DemoTicket(
        "Сайт не открывается, ошибка 500",
        "После ночного сбоя на хостинге публичная часть сайта полностью не работает: на всех "
        "страницах ошибка 500. Ничего не меняли.",
        "ivan@romashka.example",
    ),
    DemoTicket(
        "Как включить композитный сайт?",
        "Подскажите, как настроить композитный режим и кеширование компонентов каталога.",
        "ivan@romashka.example",
    ),
    DemoTicket(
        "Не могу войти в админку",
        "После обновления модулей белый экран в административной части, войти невозможно.",
        "olga@pixel.example",
    ),
    DemoTicket(
        "D7 ORM: getList ведёт себя не как в документации",
        "Метод getList с runtime-полями возвращает не те данные, что описаны в документации.",
        "olga@pixel.example",
    ),
    DemoTicket(
        "Разработка компонента корзины",
        "Нужно разработать компонент корзины по нашему техническому заданию.",
        "olga@pixel.example",
    ),
    DemoTicket(
        "Catalog import is very slow after the update",
        "Since the last update the 1C catalog exchange takes hours. How can we tune it?",
        "cto@gigant.example",
        group="VIP",
    ),
    DemoTicket(
        "Payment system integration",
        "Please write an integration script for our local payment system.",
        "john@acme.example",
    ),
    DemoTicket(
        "Перенос сайта на хостинг",
        "Как перенести сайт на новый хостинг? Как сделать резервную копию?",
        "anna@opencode.example",
    ),
    DemoTicket(
        "Site is completely down",
        "Our public site shows a blank page everywhere since this morning.",
        "anna@opencode.example",
    ),
    DemoTicket(
        "Вопрос по архитектуре интернет-магазина",
        "Как лучше спроектировать интеграцию магазина с нашей ERP? Нужна общая консультация.",
        "john@acme.example",
    ),
)
OVERRIDDEN = 9  # the agent moves the last ticket to consulting


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait(condition: Callable[[], bool], deadline: float) -> bool:
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def _seed(zammad: Any) -> None:
    """What a support team's Zammad already has before the connector: groups, customers, the
    organization's license type kept by sales, and the agents' override select."""
    for group in ("Support", "VIP"):
        zammad.add_group(group)
    options = {"options": LICENSE_TYPES, "default": "", "null": True}
    zammad.add_attribute("Organization", "bitrix_license_type", "select", options)
    override = {"options": OVERRIDES, "default": "", "null": True}
    zammad.add_attribute("Ticket", "sla_override", "select", override, display="SLA override")
    for organization, license_type, email, first, last in CUSTOMERS:
        created = zammad.add_organization(organization, bitrix_license_type=license_type)
        zammad.add_customer(email, firstname=first, lastname=last, organization=created["id"])


def run_demo(out: TextIO, *, timeout: float = 25.0) -> int:
    """Run the demo; print the table; 0 when every ticket got its SLA in time."""
    from werkzeug.serving import make_server

    from connector.helpdesks.zammad.setup import run_setup
    from connector.sandbox.zammad import ZammadSandbox
    from connector.sandbox.zammad.server import ADMIN_TOKEN, INTEGRATION_LOGIN, INTEGRATION_TOKEN
    from connector.service import Service
    from webhooks.app import create_app

    deadline = time.monotonic() + timeout
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bitrix-sla-demo-") as workdir:
        zammad = ZammadSandbox(retry_schedule=(0.2, 0.4, 0.8, 1.6))
        zammad.start(0)
        port = _free_port()
        common: dict[str, Any] = {
            "name": "demo",
            "kind": "zammad",
            "url": zammad.base_url,
            "webhook_secret": SecretStr("demo-webhook-secret"),
            "options": {
                "webhook_base_url": f"http://127.0.0.1:{port}",
                "integration_user_login": INTEGRATION_LOGIN,
            },
        }
        settings = Settings(
            database_url=SecretStr(f"sqlite:///{Path(workdir) / 'demo.db'}"),
            mappings_dir=default_mappings_dir(),
            settle_seconds=0.2,
            instances=(InstanceSettings(token=SecretStr(INTEGRATION_TOKEN), **common),),
        )
        service = None
        server = None
        worker = None
        try:
            _seed(zammad)
            print(f"sandbox Zammad at {zammad.base_url}", file=out)
            log = io.StringIO()
            admin = InstanceSettings(token=SecretStr(ADMIN_TOKEN), **common)
            if run_setup(admin, settings, apply=True, out=log) != 0:
                print(log.getvalue(), file=out)
                return 1
            print("setup zammad: attributes, webhook and triggers created", file=out)
            service = Service.from_settings(settings)
            worker = service.worker(4, periodic=False)
            server = make_server(
                "127.0.0.1", port, create_app(service, worker=worker), threaded=True
            )
            threading.Thread(target=server.serve_forever, name="edge", daemon=True).start()
            worker.start()
            print(f"connector listening on http://127.0.0.1:{port}", file=out)

            due_attribute = "bitrix_sla_due_at"
            ids = [
                int(
                    zammad.create_ticket(t.title, customer=t.customer, body=t.body, group=t.group)[
                        "id"
                    ]
                )
                for t in TICKETS
            ]
            landed = _wait(lambda: all(zammad.ticket(i).get(due_attribute) for i in ids), deadline)
            if landed:
                zammad.update_ticket(ids[OVERRIDDEN], sla_override="consulting")
                landed = _wait(
                    lambda: zammad.ticket(ids[OVERRIDDEN]).get("bitrix_sla_level") == "consulting",
                    deadline,
                )
            _table(zammad, service, ids, out)
            seconds = time.monotonic() - began
            if not landed:
                print(f"not every write-back landed within {timeout:.0f} s", file=out)
                return 1
            print(f"\n{len(ids)} tickets, every SLA written back in {seconds:.1f} s", file=out)
            return 0
        finally:
            if server is not None:
                server.shutdown()
            if worker is not None:
                worker.stop(5)
            if service is not None:
                service.store.close()
            zammad.stop()


def _table(zammad: Any, service: Any, ids: list[int], out: TextIO) -> None:
    policy = service.mappings.policy
    zone = policy.calendars[policy.levels.calendar].zone
    prefix = policy.overrides.tag_prefix
    rows = [("ticket", "customer", "tier", "level", f"due ({zone.key})", "tags")]
    for ticket_id in ids:
        ticket = zammad.ticket(ticket_id, expand=True)
        due = ticket.get("bitrix_sla_due_at")
        local = "-"
        if due:
            moment = dt.datetime.fromisoformat(str(due).replace("Z", "+00:00"))
            local = moment.astimezone(zone).strftime("%a %Y-%m-%d %H:%M")
        tags = [
            tag.removeprefix(prefix)
            for tag in sorted(zammad.tags(ticket_id))
            if tag.startswith(prefix) and not tag.startswith((f"{prefix}tier:", f"{prefix}level:"))
        ]
        rows.append(
            (
                f"#{ticket.get('number', ticket_id)}",
                str(ticket.get("organization") or ticket.get("customer") or "-")[:22],
                str(ticket.get("bitrix_sla_tier") or "-"),
                str(ticket.get("bitrix_sla_level") or "-"),
                local,
                " ".join(tags),
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(5)]
    print(file=out)
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row[:5], widths, strict=True)]
        print("  ".join([*cells, row[5]]), file=out)
