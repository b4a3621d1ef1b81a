"""The rows and values the job store hands out and takes in, as frozen pydantic models.

With them the constants they are read with: the job statuses, the epoch (where a periodic task
none of whose runs has succeeded starts from), the largest id either engine stores, and the key
that names a ticket's job.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

Status = Literal["queued", "running", "done", "dead"]
STATUSES: tuple[Status, ...] = ("queued", "running", "done", "dead")


class Job(BaseModel):
    """A row of the ``jobs`` table."""

    model_config = ConfigDict(frozen=True)

    id: int
    key: str
    kind: str
    instance: str
    ticket_id: str
    status: Status
    reason: str
    events: int
    attempts: int
    run_at: dt.datetime
    lease_until: dt.datetime | None
    locked_by: str | None
    #: the token of the claim a running job is under (see :meth:`JobStore.claim`)
    claim: str | None = None
    last_error: str | None
    outcome: str | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None


class StoredEvent(BaseModel):
    """A row of the ``events`` table without its body, which ``body_length`` measures (in
    characters)."""

    model_config = ConfigDict(frozen=True)

    id: int
    received_at: dt.datetime
    kind: str
    instance: str
    ticket_id: str
    delivery_id: str
    event: str
    body_length: int


class RunRecord(BaseModel):
    """What one run of a job did, for the ``decisions`` audit table."""

    model_config = ConfigDict(frozen=True)

    worker: str
    started_at: dt.datetime
    finished_at: dt.datetime
    outcome: str  # applied | unchanged | failed | dead
    decision: dict[str, Any] | None = None
    plan: dict[str, Any] | None = None
    calls: list[dict[str, Any]] = []
    error: str | None = None


class IngestResult(BaseModel):
    """The outcome of storing one webhook."""

    model_config = ConfigDict(frozen=True)

    duplicate: bool
    job_id: int | None


EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
#: the largest id either engine stores (a signed 64-bit integer); a larger one names no row
MAX_ID = 2**63 - 1


def _may_exist(row_id: int) -> bool:
    """Whether ``row_id`` could name a row: the drivers refuse to bind one outside 64 bits."""
    return 0 < row_id <= MAX_ID


class Tick(BaseModel):
    """This replica's run of a periodic task: the tick's time, and where the run starts from.

    ``since`` is the time of the last tick whose run succeeded (:meth:`JobStore.tick_succeeded`),
    the epoch if none has: a run that failed or was cut short is done again from there.
    """

    model_config = ConfigDict(frozen=True)

    name: str
    at: dt.datetime
    since: dt.datetime


def job_key(kind: str, instance: str, ticket_id: str) -> str:
    return f"{kind}:{instance}:{ticket_id}"
