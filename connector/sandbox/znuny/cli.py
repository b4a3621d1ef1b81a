"""``bitrix-sla sandbox znuny`` and ``python -m connector.sandbox.znuny``: a demo Znuny.

The demo has what a freshly installed Znuny has (the "Welcome to Znuny!" ticket 1, the stock
queues and dynamic fields) plus data to try the connector with: a ``VIP`` queue, one customer
company per license tier (attribute ``bitrix_license_type``), customer users and a few
tickets. The connector's own dynamic fields are deliberately **not** created, so
``bitrix-sla setup znuny`` has something to report. With a webhook URL, a web service whose
invoker calls that URL is configured after seeding (``user:password@`` in the URL becomes
BasicAuth), so only changes made from then on are sent.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO
from urllib.parse import urlsplit

from connector.sandbox.listener import stop_on_signals
from connector.sandbox.znuny.documents import webservice_yaml
from connector.sandbox.znuny.server import ZnunySandbox

#: (CustomerID, company name, license type or None, customer user login, first, last, email)
COMPANIES = (
    ("webstudio", "Web Studio Partner LLC", "partner", "pavel", "Pavel", "Partner"),
    ("acme-enterprise", "ACME Enterprise", "enterprise", "erin", "Erin", "Enterprise"),
    ("shop-commercial", "ООО Магазин", "commercial", "ivan", "Иван", "Петров"),
    ("school-5", "School No. 5", "noncommercial", "nina", "Nina", "Teacher"),
    ("demo-user", "Demo Trial Co", "demo", "dan", "Dan", "Demo"),
    ("unmapped", "Unmapped Ltd", None, "uma", "Uma", "Unmapped"),
)
#: (title, body, customer user, queue, priority)
TICKETS = (
    (
        "Сайт не открывается",
        "Публичная часть сайта полностью не работает, ошибка 500 на всех страницах.",
        "ivan",
        "Support",
        "4 high",
    ),
    (
        "Ошибка при обновлении модуля",
        "После обновления главного модуля не открывается административный раздел.",
        "erin",
        "VIP",
        "3 normal",
    ),
    (
        "Question about the REST API",
        "How do I list infoblock elements?",
        "pavel",
        "Support",
        "3 normal",
    ),
    (
        "Как установить демо-версию?",
        "Подскажите, как установить демо-версию.",
        "dan",
        "Raw",
        "3 normal",
    ),
)


def seed(sandbox: ZnunySandbox) -> None:
    """Fill a new sandbox with the demo data described in the module docstring."""
    sandbox.create_ticket(
        title="Welcome to Znuny!",
        customer_user="info@znuny.org",
        body="Welcome to Znuny! Thank you for installing Znuny.",
    )
    for queue in ("Support", "VIP", "Consulting"):
        sandbox.add_queue(queue)
    for customer_id, name, license_type, login, first, last in COMPANIES:
        extra = {"bitrix_license_type": license_type} if license_type else {}
        sandbox.add_customer_company(customer_id, name, **extra)
        sandbox.add_customer_user(
            login,
            email=f"{login}@{customer_id}.example",
            customer_id=customer_id,
            first_name=first,
            last_name=last,
        )
    for title, body, customer, queue, priority in TICKETS:
        sandbox.create_ticket(
            title=title, body=body, customer_user=customer, queue=queue, priority=priority
        )


def run(
    host: str,
    port: int,
    *,
    out: TextIO,
    webhook_url: str | None,
    webservice_file: str | Path | None = None,
) -> int:
    """Serve a seeded sandbox until SIGTERM/SIGINT; returns 0.

    Args:
        host: the address to listen on.
        port: the port (0: any free port).
        out: where the base URL (``listening on http://HOST:PORT/...``) and the agent
            credentials are printed.
        webhook_url: where the demo web service's invoker sends events; None: no requester.
        webservice_file: a web-service YAML to load instead (e.g. the connector's own).
    """
    sandbox = ZnunySandbox()
    seed(sandbox)
    if webservice_file is not None:
        sandbox.configure_webservice(Path(webservice_file).read_text(encoding="utf-8"))
    elif webhook_url:
        sandbox.configure_webservice(webservice_yaml(webhook_url))
    with stop_on_signals() as stop:
        try:
            base = sandbox.start(port, host=host)
            print(f"listening on {base}", file=out)
            for agent in sandbox.directory.agents.values():
                print(
                    f"agent {agent.login} password {agent.password} (UserID {agent.user_id})",
                    file=out,
                )
            if webhook_url and webservice_file is None:
                parts = urlsplit(webhook_url)
                where = f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}{parts.path}"
                print(f"invoker SLAWebhook -> {where}", file=out)  # without credentials
            out.flush()
            while not stop.wait(0.5):
                pass
        finally:
            sandbox.stop()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m connector.sandbox.znuny [--host H] [--port P] [--webhook-url URL]``."""
    parser = argparse.ArgumentParser(description="a fake Znuny GenericInterface")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--webhook-url", help="where the invoker sends ticket events")
    parser.add_argument("--webservice-yaml", help="a web-service YAML to load instead")
    args = parser.parse_args(argv)
    return run(
        args.host,
        args.port,
        out=sys.stdout,
        webhook_url=args.webhook_url,
        webservice_file=args.webservice_yaml,
    )
