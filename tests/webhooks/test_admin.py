"""The read-only admin API: off without a token, bearer-authenticated, validated parameters."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from pydantic import SecretStr

from connector.pipeline.db import sqlite_path
from connector.pipeline.store import RunRecord
from connector.service import Service
from connector.settings import Settings
from webhooks.auth import admin_allowed, bearer_token

from .conftest import ADMIN_TOKEN, assert_problem, make_settings, post_event

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def _dead_job(service: Service, client: FlaskClient, ticket: str) -> int:
    """Store a webhook, then run its job into ``dead`` through the real store API."""
    job_id = int(post_event(client, ticket).headers["X-Bitrix-SLA-Job"])
    job = service.store.claim("test-worker", 30)
    assert job is not None
    assert job.id == job_id
    now = dt.datetime.now(dt.UTC)
    record = RunRecord(
        worker="test-worker", started_at=now, finished_at=now, outcome="failed", error="HTTP 404"
    )
    service.store.fail(job, "test-worker", "HTTP 404", permanent=True, record=record)
    return job_id


@pytest.mark.parametrize("path", ["/admin/jobs", "/admin/jobs/1", "/admin/jobs?status=nope"])
def test_off_without_a_token(make_app: Callable[..., Flask], tmp_path: Path, path: str) -> None:
    client = make_app(settings=make_settings(tmp_path, admin_token=None)).test_client()

    assert_problem(client.get(path, headers=AUTH), 404, "not_found")


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
@pytest.mark.parametrize("path", ["/admin/jobs", "/admin/jobs/1", "/admin", "/admin/nothing"])
def test_off_is_404_for_every_method(
    make_app: Callable[..., Flask], tmp_path: Path, method: str, path: str
) -> None:
    """Off, the admin API is as if it did not exist: POST and DELETE /admin/jobs used to
    answer 405 with an Allow header naming the methods it takes."""
    client = make_app(settings=make_settings(tmp_path, admin_token=None)).test_client()

    response = client.open(path, method=method, headers=AUTH)

    assert response.status_code == 404
    assert "Allow" not in response.headers
    if method != "HEAD":
        assert_problem(response, 404, "not_found")


@pytest.mark.parametrize(
    "authorization",
    [None, "", f"Basic {ADMIN_TOKEN}", "Bearer", "Bearer wrong", f"Bearer {ADMIN_TOKEN}x"],
)
def test_wrong_or_missing_token(client: FlaskClient, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}

    response = client.get("/admin/jobs", headers=headers)

    assert_problem(response, 401, "unauthenticated")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_list_filter_and_show(client: FlaskClient, service: Service) -> None:
    dead = _dead_job(service, client, "100")
    queued = int(post_event(client, "200").headers["X-Bitrix-SLA-Job"])

    listed = client.get("/admin/jobs", headers=AUTH).get_json()
    assert [job["id"] for job in listed["jobs"]] == [queued, dead]  # newest first
    assert (listed["count"], listed["limit"], listed["status"]) == (2, 50, None)

    only_dead = client.get("/admin/jobs?status=dead&limit=10", headers=AUTH).get_json()
    assert [job["id"] for job in only_dead["jobs"]] == [dead]
    assert only_dead["jobs"][0]["last_error"] == "HTTP 404"
    assert client.get("/admin/jobs?limit=1", headers=AUTH).get_json()["count"] == 1

    shown = client.get(f"/admin/jobs/{dead}", headers=AUTH)
    assert shown.status_code == 200
    data = shown.get_json()
    assert data["job"]["status"] == "dead"
    assert data["job"]["ticket_id"] == "100"
    assert [run["outcome"] for run in data["runs"]] == ["dead"]
    assert data["runs"][0]["error"] == "HTTP 404"
    dt.datetime.fromisoformat(data["runs"][0]["started_at"])  # ISO 8601, not an HTTP date


def test_unknown_job(client: FlaskClient) -> None:
    assert_problem(client.get("/admin/jobs/999", headers=AUTH), 404, "not_found")
    # past 64 bits no row can have the id: still a 404, not the driver's OverflowError as a 500
    huge = "/admin/jobs/99999999999999999999999"
    assert_problem(client.get(huge, headers=AUTH), 404, "not_found")


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("status=failed", "status"),
        ("status=", "status"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=-1", "limit"),
        ("limit=ten", "limit"),
        ("limit=%C2%B2", "limit"),  # a superscript two: a digit to str.isdigit, not to int()
    ],
)
def test_bad_parameters(client: FlaskClient, query: str, parameter: str) -> None:
    data = assert_problem(client.get(f"/admin/jobs?{query}", headers=AUTH), 400, "bad_request")

    assert f"'{parameter}'" in data["detail"]


def test_admin_is_read_only(client: FlaskClient) -> None:
    assert_problem(client.post("/admin/jobs", headers=AUTH), 405, "method_not_allowed")


def test_bearer_parsing() -> None:
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer   abc ") == "abc"
    assert bearer_token("Token abc") is None
    assert bearer_token(None) is None
    assert not admin_allowed(SecretStr(""), "Bearer ")
    assert not admin_allowed(SecretStr(""), "Bearer x")
    assert admin_allowed(SecretStr("s3cret"), "Bearer s3cret")
    assert not admin_allowed(SecretStr("s3cret"), "Bearer S3CRET")


def test_database_down_is_503(client: FlaskClient, settings: Settings) -> None:
    path = sqlite_path(settings.database_url.get_secret_value())
    assert path is not None
    with closing(sqlite3.connect(path)) as connection:
        connection.execute("DROP TABLE jobs")
        connection.commit()

    response = client.get("/admin/jobs", headers=AUTH)

    assert_problem(response, 503, "storage_unavailable")
    assert response.headers["Retry-After"] == "5"
