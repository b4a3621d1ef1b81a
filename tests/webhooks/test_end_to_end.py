"""The edge with an in-process worker against the fake helpdesk on a real socket."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from pydantic import SecretStr

from connector.pipeline.worker import Worker
from connector.sandbox.fake_helpdesk import FakeHelpdesk, wait_until
from connector.service import Service
from connector.settings import InstanceSettings

from .conftest import INSTANCE, KIND, WEBHOOK_SECRET, make_settings, post_event

API_TOKEN = "e2e-api-token"


@pytest.fixture
def helpdesk() -> Iterator[FakeHelpdesk]:
    with FakeHelpdesk(API_TOKEN) as server:
        yield server


def test_stored_webhook_wakes_the_worker(
    helpdesk: FakeHelpdesk, make_app: Callable[..., Flask], tmp_path: Path
) -> None:
    """The job runs at once after the 2xx, not at the worker's next poll (set to a minute)."""
    instance = InstanceSettings(
        name=INSTANCE,
        kind=KIND,
        url=helpdesk.base_url,
        token=SecretStr(API_TOKEN),
        webhook_secret=SecretStr(WEBHOOK_SECRET),
    )
    service = Service.from_settings(make_settings(tmp_path, instances=(instance,)))
    worker: Worker = service.worker(concurrency=2, periodic=False)
    worker.poll_seconds = 60.0
    client = make_app(service, worker=worker).test_client()
    ticket = helpdesk.create_ticket(subject="Сайт не открывается", body="Ошибка 500 на сайте")
    worker.start()
    try:
        time.sleep(0.5)  # every slot has found the queue empty and sleeps its minute
        response = post_event(client, ticket["id"])
        assert response.status_code == 202
        job_id = int(response.headers["X-Bitrix-SLA-Job"])

        def finished() -> bool:
            job = service.store.get(job_id)
            return job is not None and job.status in ("done", "dead")

        wait_until(finished, timeout=10)
    finally:
        worker.stop(grace_seconds=5)
    job = service.store.get(job_id)
    assert job is not None
    assert (job.status, job.outcome) == ("done", "applied"), job.last_error
    assert helpdesk.writes(ticket["id"])
