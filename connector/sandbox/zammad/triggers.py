"""Triggers and webhooks of the fake Zammad: definitions, and firing them per transaction.

How Zammad runs action triggers (facts §3, admin docs ``manage/trigger/how-do-they-work.rst``):

* on every ticket create and every update transaction — by any actor, the REST API and the
  integration user included — never on tag changes (§3.5);
* active ``activator: action`` triggers only (``time`` triggers are stored, never run here), in
  **alphabetical order by name**, each at most once per transaction; their own actions do not
  re-run triggers (``ticket_trigger_recursive`` is false by default);
* ``execution_condition_mode: always`` fires whenever the current ticket matches;
  ``selective`` additionally needs, on an update, a new article or a change of an attribute the
  condition names. A selective trigger that names nothing else fires on every update,
  including the integration user's (the "beware" in §3). Which names do not count is
  :attr:`Automation.selective_ignores`, by default ``ticket.action`` and
  ``ticket.updated_by_id`` (*inference*: the facts doc does not say whether the "who" guard of
  loop-avoidance option 2 counts; the #5841 reporter's trigger with exactly that guard fires on
  every update, even twice after a create, which a tracked ``updated_by_id`` would prevent).
* ``perform: {"notification.webhook": {"webhook_id": N}}`` enqueues a delivery whose id
  (``X-Zammad-Delivery``, the ActiveJob id) is fixed now; the payload is built later, at send
  time. Other perform actions are stored but not executed.

Webhook records have the §1.1 fields; secrets (``signature_token``, ``basic_auth_password``,
``bearer_token``) always read back as ``**********``, and sending that mask back keeps the
stored secret. The endpoint must be an http(s) URL with a host (``validate_endpoint``).
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from connector.sandbox.zammad.conditions import Context, leaves, matches, validate
from connector.sandbox.zammad.errors import invalid
from connector.sandbox.zammad.state import Row, Store
from connector.sandbox.zammad.tickets import Transaction
from connector.sandbox.zammad.times import with_iso_times

MASK = "**********"
SECRETS = ("signature_token", "basic_auth_password", "bearer_token")
HTTP_METHODS = ("post", "put", "patch", "delete")
_TRIGGER_KEYS = ("name", "condition", "perform", "activator", "execution_condition_mode")
_TRIGGER_KEYS_MORE = ("active", "note", "disable_notification", "localization", "timezone")
_WEBHOOK_KEYS = (
    "name",
    "endpoint",
    "http_method",
    "ssl_verify",
    "basic_auth_username",
    "note",
    "customized_payload",
    "custom_payload",
    "pre_defined_webhook_type",
    "preferences",
    "active",
    *SECRETS,
)


@dataclass(frozen=True)
class Job:
    """One webhook delivery, as enqueued by a trigger (the payload is rendered at send time).

    Attributes:
        delivery_id: the ``X-Zammad-Delivery`` UUID, the same for every retry.
        webhook_id: the webhook to call.
        trigger_id: the trigger that fired (its current name is ``X-Zammad-Trigger``).
        ticket_id: the ticket of the transaction.
        article_id: the article of the transaction, if any.
    """

    delivery_id: str
    webhook_id: int
    trigger_id: int
    ticket_id: int
    article_id: int | None


@dataclass(frozen=True)
class Firing:
    """A trigger that fired, in firing order."""

    ticket_id: int
    trigger_id: int
    trigger: str
    action: str
    delivery_id: str | None


class Automation:
    """Trigger and webhook records, and :meth:`dispatch` for each ticket transaction.

    Args:
        store: the sandbox's tables.
        enqueue: receives each webhook :class:`Job` (called under the store lock).
    """

    def __init__(self, store: Store, enqueue: Callable[[Job], None]) -> None:
        self._store = store
        self._enqueue = enqueue
        self._fired: list[Firing] = []
        self.selective_ignores: set[str] = {"ticket.action", "ticket.updated_by_id"}

    # --- triggers -------------------------------------------------------------------------

    def create_trigger(self, params: Mapping[str, Any], actor_id: int) -> Row:
        """Validate and store a trigger (``POST /api/v1/triggers``)."""
        values: Row = {
            "activator": "action",
            "execution_condition_mode": "selective",
            "active": True,
            "note": "",
            "disable_notification": True,
            "localization": None,
            "timezone": None,
        }
        values.update(_pick(params, _TRIGGER_KEYS + _TRIGGER_KEYS_MORE))
        with self._store.lock:
            self._check_trigger(values, None)
            return self._store.insert("Trigger", values, actor_id)

    def update_trigger(self, trigger_id: object, params: Mapping[str, Any], actor_id: int) -> Row:
        """Change a trigger (``PUT /api/v1/triggers/:id``)."""
        with self._store.lock:
            row = self._store.get("Trigger", trigger_id)
            values = {**row, **_pick(params, _TRIGGER_KEYS + _TRIGGER_KEYS_MORE)}
            self._check_trigger(values, row["id"])
            row.update(values, updated_by_id=actor_id, updated_at=self._store.now())
            return row

    @staticmethod
    def show(row: Row) -> Row:
        """A trigger's JSON (times in Zammad's format)."""
        return with_iso_times(row)

    def fired(self) -> list[Firing]:
        """Every trigger that fired so far, oldest first."""
        with self._store.lock:
            return list(self._fired)

    def _check_trigger(self, values: Row, own_id: int | None) -> None:
        self._check_name("Trigger", values, own_id)
        if values.get("activator") not in ("action", "time"):
            raise invalid("Activator is not included in the list")
        if values.get("execution_condition_mode") not in ("selective", "always"):
            raise invalid("Execution condition mode is not included in the list")
        validate(values.get("condition"))
        if not isinstance(values.get("perform"), Mapping) or not values["perform"]:
            raise invalid("Perform can't be blank")

    # --- webhooks -------------------------------------------------------------------------

    def create_webhook(self, params: Mapping[str, Any], actor_id: int) -> Row:
        """Validate and store a webhook (``POST /api/v1/webhooks``)."""
        values: Row = {
            "http_method": "post",
            "ssl_verify": True,
            "customized_payload": False,
            "custom_payload": None,
            "pre_defined_webhook_type": None,
            "preferences": {},
            "active": True,
            "note": "",
            "basic_auth_username": None,
            **dict.fromkeys(SECRETS),
        }
        values.update(_pick(params, _WEBHOOK_KEYS))
        with self._store.lock:
            self._check_webhook(values, None)
            return self._store.insert("Webhook", values, actor_id)

    def update_webhook(self, webhook_id: object, params: Mapping[str, Any], actor_id: int) -> Row:
        """Change a webhook; a secret sent back as the mask keeps its stored value."""
        with self._store.lock:
            row = self._store.get("Webhook", webhook_id)
            changes = _pick(params, _WEBHOOK_KEYS)
            for secret in SECRETS:
                if changes.get(secret) == MASK:
                    del changes[secret]
            values = {**row, **changes}
            self._check_webhook(values, row["id"])
            row.update(values, updated_by_id=actor_id, updated_at=self._store.now())
            return row

    @staticmethod
    def show_webhook(row: Row) -> Row:
        """A webhook's JSON: secrets masked as ``**********``."""
        shown = Automation.show(row)
        for secret in SECRETS:
            if shown.get(secret):
                shown[secret] = MASK
        return shown

    def _check_webhook(self, values: Row, own_id: int | None) -> None:
        self._check_name("Webhook", values, own_id)
        endpoint = urlsplit(str(values.get("endpoint") or ""))
        if endpoint.scheme not in ("http", "https") or not endpoint.hostname:
            raise invalid("Endpoint is invalid: an http or https URL with a host is required")
        values["http_method"] = str(values.get("http_method") or "post").lower()
        if values["http_method"] not in HTTP_METHODS:
            raise invalid("Http method is not included in the list")
        if values.get("customized_payload"):
            try:
                json.loads(str(values.get("custom_payload") or ""))
            except ValueError:
                raise invalid("Custom payload is not valid JSON") from None

    def _check_name(self, table: str, values: Row, own_id: int | None) -> None:
        name = str(values.get("name") or "").strip()
        if not name:
            raise invalid("Name can't be blank")
        other = self._store.by_name(table, name)
        if other is not None and other["id"] != own_id:
            raise invalid("Name has already been taken")

    def delete(self, table: str, row_id: object) -> None:
        """Remove a ``Trigger`` or ``Webhook``; queued deliveries of it are then discarded."""
        with self._store.lock:
            row = self._store.get(table, row_id)
            del self._store.tables[table][row["id"]]

    # --- firing ---------------------------------------------------------------------------

    def dispatch(self, txn: Transaction) -> None:
        """Run the action triggers for one transaction (the caller holds the store lock)."""
        store = self._store
        ticket = store.tables["Ticket"][txn.ticket_id]
        article = store.tables["TicketArticle"].get(txn.article_id) if txn.article_id else None
        ctx = Context(
            action=txn.action,
            ticket=ticket,
            tags=list(store.tags.get(txn.ticket_id, [])),
            changes=txn.changes,
            user_id=txn.user_id,
            article=article,
            customer=store.tables["User"].get(ticket["customer_id"]),
            organization=store.tables["Organization"].get(ticket["organization_id"]),
        )
        triggers = sorted(
            (t for t in store.tables["Trigger"].values() if t["active"]),
            key=lambda trigger: (str(trigger["name"]), trigger["id"]),
        )
        for trigger in triggers:
            if trigger["activator"] != "action" or not self._selected(trigger, txn):
                continue
            if not matches(trigger["condition"], ctx):
                continue
            webhook = (trigger["perform"].get("notification.webhook") or {}).get("webhook_id")
            delivery_id = str(uuid.uuid4()) if str(webhook or "").isdigit() else None
            self._fired.append(
                Firing(txn.ticket_id, trigger["id"], trigger["name"], txn.action, delivery_id)
            )
            if delivery_id is not None:
                job = Job(
                    delivery_id, int(str(webhook)), trigger["id"], txn.ticket_id, txn.article_id
                )
                self._enqueue(job)

    def _selected(self, trigger: Row, txn: Transaction) -> bool:
        """The selective-mode gate: on an update, did anything the condition names change?"""
        if trigger["execution_condition_mode"] != "selective" or txn.action != "update":
            return True
        if txn.article_id is not None:
            return True
        tracked = [n for n, _ in leaves(trigger["condition"]) if n not in self.selective_ignores]
        if not tracked:
            return True
        return any(n.startswith("ticket.") and n[7:] in txn.changes for n in tracked)


def _pick(params: Mapping[str, Any], keys: tuple[str, ...]) -> Row:
    return {key: copy.deepcopy(params[key]) for key in keys if key in params}
