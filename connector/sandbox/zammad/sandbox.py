"""``ZammadSandbox``: the fake Zammad with a Python API for the data tests and the demo need.

The Python API stands for people in Zammad's web UI: an admin creating organizations,
attributes, webhooks and triggers; a customer writing in (``create_ticket`` creates the ticket
as the customer, with their e-mail as first article, like the e-mail channel); an agent editing
a ticket (``update_ticket``, ``add_article`` — update transactions that run the triggers).
Values are checked, but an attribute that does not exist is an error here, not dropped as the
REST API drops it. Every method returns the JSON the REST API would show.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connector.sandbox.zammad import views
from connector.sandbox.zammad.server import SandboxServer


class ZammadSandbox(SandboxServer):
    """A fake Zammad on a real socket, with a data API for tests and the demo.

    The constructor, lifecycle, faults and observation methods are those of
    :class:`~connector.sandbox.zammad.server.SandboxServer`.

    Example::

        with ZammadSandbox(retry_schedule=(0.05,) * 4) as zammad:
            zammad.add_attribute("Organization", "bitrix_license_type", "select",
                                 {"options": {"partner": "Partner"}, "default": "", "null": True})
            org = zammad.add_organization("Studio", bitrix_license_type="partner")
            ana = zammad.add_customer("ana@studio.example", organization=org["id"])
            ticket = zammad.create_ticket("Site down", customer=ana["id"], body="500 everywhere")
    """

    # --- people and groups -------------------------------------------------------------------

    def add_organization(self, name: str, **attributes: Any) -> dict[str, Any]:
        """Create an organization; ``attributes`` are migrated Organization attributes."""
        row = self.store.add_organization(name, attributes=attributes)
        return self.view("Organization", row["id"])

    def add_customer(
        self,
        email: str,
        *,
        firstname: str = "",
        lastname: str = "",
        organization: int | str | None = None,
        **attributes: Any,
    ) -> dict[str, Any]:
        """Create a customer (login = e-mail) in ``organization`` (id or name)."""
        row = self.store.add_user(
            email,
            email=email,
            firstname=firstname,
            lastname=lastname,
            organization_id=self._organization_id(organization),
            attributes=attributes,
        )
        return self.view("User", row["id"])

    def add_agent(
        self, login: str, *, firstname: str = "", lastname: str = "", admin: bool = False
    ) -> dict[str, Any]:
        """Create an agent (with ``admin``: also an admin)."""
        roles = ("Admin", "Agent") if admin else ("Agent",)
        row = self.store.add_user(login, firstname=firstname, lastname=lastname, roles=roles)
        return self.view("User", row["id"])

    def add_group(self, name: str) -> dict[str, Any]:
        """Create a group (e.g. ``Support``, ``VIP``)."""
        return self.view("Group", self.store.add_group(name)["id"])

    # --- object manager ----------------------------------------------------------------------

    def add_attribute(
        self,
        obj: str,
        name: str,
        data_type: str,
        data_option: Mapping[str, Any],
        *,
        display: str | None = None,
        screens: Mapping[str, Any] | None = None,
        migrate: bool = True,
    ) -> dict[str, Any]:
        """Create a custom attribute like the admin UI; ``migrate`` also runs the migrations."""
        params = {
            "object": obj,
            "name": name,
            "data_type": data_type,
            "data_option": dict(data_option),
            "display": display or name,
            "screens": dict(screens or {}),
        }
        with self.store.lock:
            row = self.store.objects.create(params, self.admin_user_id)
            if migrate:
                self.store.execute_migrations()
            return self.store.objects.show(row)

    def execute_migrations(self) -> None:
        """Make pending attributes usable (``…_execute_migrations`` + restart)."""
        self.store.execute_migrations()

    # --- tickets ----------------------------------------------------------------------------

    def create_ticket(
        self,
        title: str,
        *,
        customer: int | str,
        body: str = "Hello, something does not work.",
        group: str = "Users",
        priority: str | None = None,
        state: str = "new",
        owner: int | str | None = None,
        sender: str = "Customer",
        article_type: str = "email",
        content_type: str = "text/html",
        by: int | str | None = None,
        **attributes: Any,
    ) -> dict[str, Any]:
        """Create a ticket with its first article → ``create`` triggers.

        Args:
            title: the ticket title.
            customer: the customer (id, login or e-mail).
            body: the first article's body.
            group: the group's name.
            priority: a priority name; None: the default (``2 normal``).
            state: a state name.
            owner: an agent (id or login); None: unassigned (user 1, ``-``).
            sender: ``Customer`` or ``Agent`` (of the first article).
            article_type: ``email``, ``phone``, ``web`` or ``note``.
            content_type: of the first article (``text/html`` like e-mail, or ``text/plain``).
            by: the acting user; default the customer (sender Customer) or the admin.
            **attributes: migrated Ticket custom attributes.
        """
        customer_id = self.user_id(customer)
        actor = self.user_id(by) if by is not None else None
        if actor is None:
            actor = customer_id if sender == "Customer" else self.admin_user_id
        params: dict[str, Any] = {
            "title": title,
            "customer_id": customer_id,
            "group": group,
            "state": state,
            "article": {
                "body": body,
                "sender": sender,
                "type": article_type,
                "content_type": content_type,
            },
            **attributes,
        }
        if priority is not None:
            params["priority"] = priority
        if owner is not None:
            params["owner_id"] = self.user_id(owner)
        row = self.tickets.create(params, actor, api=False)
        return self.view("Ticket", row["id"], expand=True)

    def update_ticket(
        self, ticket_id: int, *, by: int | str | None = None, **changes: Any
    ) -> dict[str, Any]:
        """Edit a ticket like an agent (default: the admin) → ``update`` triggers if it changed.

        ``changes`` use the REST names: ``priority="3 high"``, ``group="VIP"``,
        ``customer_id=7``, ``title=...``, custom attributes.
        """
        actor = self.user_id(by) if by is not None else self.admin_user_id
        self.tickets.update(ticket_id, changes, actor, api=False)
        return self.view("Ticket", ticket_id, expand=True)

    def add_article(
        self,
        ticket_id: int,
        body: str,
        *,
        sender: str = "Customer",
        article_type: str = "email",
        internal: bool = False,
        content_type: str = "text/html",
        by: int | str | None = None,
    ) -> dict[str, Any]:
        """Add an article (default: a customer e-mail) → an update transaction."""
        with self.store.lock:
            ticket = self.store.get("Ticket", ticket_id)
            actor_ref = (
                by
                if by is not None
                else (ticket["customer_id"] if sender == "Customer" else self.admin_user_id)
            )
            article = {
                "body": body,
                "sender": sender,
                "type": article_type,
                "internal": internal,
                "content_type": content_type,
            }
            self.tickets.update(ticket_id, {"article": article}, self.user_id(actor_ref), api=False)
            return self.view("Ticket", ticket_id, expand=True)

    def ticket(self, ticket_id: int, *, expand: bool = False) -> dict[str, Any]:
        """The ticket as ``GET /api/v1/tickets/:id[?expand=true]`` shows it."""
        return self.view("Ticket", ticket_id, expand=expand)

    def articles(self, ticket_id: int) -> list[dict[str, Any]]:
        """The ticket's articles, oldest first."""
        with self.store.lock:
            rows = self.store.tables["TicketArticle"].values()
            return [views.article(self.store, r) for r in rows if r["ticket_id"] == ticket_id]

    def tags(self, ticket_id: int) -> list[str]:
        """The ticket's tags, in the order they were added."""
        with self.store.lock:
            self.store.get("Ticket", ticket_id)
            return list(self.store.tags.get(ticket_id, []))

    def add_tag(self, ticket_id: int, tag: str) -> None:
        """Tag a ticket like an agent (no trigger runs)."""
        self.tickets.tag_add(ticket_id, tag)

    def remove_tag(self, ticket_id: int, tag: str) -> None:
        """Untag a ticket like an agent (no trigger runs)."""
        self.tickets.tag_remove(ticket_id, tag)

    def delete_ticket(self, ticket_id: int) -> None:
        """Delete a ticket (its queued webhook jobs are then discarded)."""
        with self.store.lock:
            self.store.get("Ticket", ticket_id)
            del self.store.tables["Ticket"][ticket_id]

    # --- webhooks and triggers --------------------------------------------------------------

    def add_webhook(self, name: str, endpoint: str, **fields: Any) -> dict[str, Any]:
        """Create a webhook (fields as in ``POST /api/v1/webhooks``); secrets come back masked."""
        params = {"name": name, "endpoint": endpoint, **fields}
        row = self.automation.create_webhook(params, self.admin_user_id)
        return self.automation.show_webhook(row)

    def add_trigger(
        self,
        name: str,
        condition: Mapping[str, Any],
        *,
        webhook_id: int | None = None,
        perform: Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """Create a trigger; ``webhook_id`` is a shortcut for the webhook ``perform``."""
        action = dict(perform or {})
        if webhook_id is not None:
            action["notification.webhook"] = {"webhook_id": webhook_id}
        params = {"name": name, "condition": dict(condition), "perform": action, **fields}
        return self.automation.show(self.automation.create_trigger(params, self.admin_user_id))

    def _organization_id(self, organization: int | str | None) -> int | None:
        if organization is None or isinstance(organization, int):
            return organization
        found = self.store.by_name("Organization", organization)
        if found is None:
            raise KeyError(f"no organization named {organization!r}")
        return int(found["id"])
