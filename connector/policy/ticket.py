"""The helpdesk-neutral view of a ticket that every adapter produces and the policy reads.

Zammad and Znuny describe the same things differently (customer vs. CustomerUser, group vs.
queue, tags vs. a multiselect dynamic field); adapters translate into this model so that the
policy never sees a helpdesk's raw payload.
"""

from __future__ import annotations

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

FieldValue = str | int | float | bool | list[str] | None


class Party(BaseModel):
    """A customer (person) or an organization as the helpdesk knows it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str | None = None
    name: str | None = None
    email: str | None = None
    fields: dict[str, FieldValue] = Field(default_factory=dict)

    @property
    def email_domain(self) -> str | None:
        """The lower-cased domain of the e-mail address, if there is one."""
        if self.email and "@" in self.email:
            return self.email.rsplit("@", 1)[1].strip().lower()
        return None


class TicketSnapshot(BaseModel):
    """What the worker read from the helpdesk: the truth the decision is made on."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    helpdesk: str = Field(default="", description="adapter kind, e.g. zammad or znuny")
    instance: str = Field(default="", description="configured helpdesk instance name")
    id: str
    number: str | None = None
    created_at: AwareDatetime
    subject: str = ""
    body: str = Field(default="", description="text of the first customer article")
    customer: Party | None = None
    organization: Party | None = None
    group: str | None = Field(default=None, description="Zammad group or Znuny queue")
    priority: str | None = None
    state: str | None = None
    fields: dict[str, FieldValue] = Field(
        default_factory=dict, description="ticket attributes / dynamic fields by name"
    )
    tags: tuple[str, ...] = ()
    managed_fields: dict[str, str | None] = Field(
        default_factory=dict,
        description="current values of the fields the connector writes (sla_due_at, …)",
    )


def field_text(value: FieldValue) -> list[str]:
    """A field value as the list of strings it holds (multiselects hold several)."""
    if value is None:
        return []
    if isinstance(value, list):
        return [str(item) for item in value]
    if isinstance(value, bool):
        return ["true" if value else "false"]
    return [str(value)]
