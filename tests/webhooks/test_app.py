"""The app factory and the webhook route: durable ingest, dedup, refusals that store nothing."""

from __future__ import annotations

import json
import logging
import shutil
import socket
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from pydantic import SecretStr
from werkzeug.serving import make_server

from connector.errors import ConfigError
from connector.pipeline.db import sqlite_path
from connector.service import Service
from connector.settings import Settings
from webhooks.app import create_app
from webhooks.responses import current_service

from .conftest import (
    ADMIN_TOKEN,
    INSTANCE,
    KIND,
    MAPPINGS,
    URL,
    WEBHOOK_SECRET,
    assert_problem,
    body_for,
    make_settings,
    post_event,
    row_counts,
)

NOTHING = {"events": 0, "jobs": 0}


# -- the factory -----------------------------------------------------------------------------------


def test_config_injection(make_app: Callable[..., Flask], tmp_path: Path) -> None:
    """Two apps built from different settings behave differently (flaskr's test_config)."""
    small = make_app(settings=make_settings(tmp_path / "a", max_body_bytes=1024))
    large = make_app(settings=make_settings(tmp_path / "b", max_body_bytes=4096, admin_token=None))
    padded = body_for("7")[:-1] + b', "note": "' + b"x" * 2000 + b'"}'

    assert_problem(post_event(small.test_client(), body=padded), 413, "body_too_large")
    assert post_event(large.test_client(), body=padded).status_code == 202

    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    assert small.test_client().get("/admin/jobs", headers=auth).status_code == 200
    assert_problem(large.test_client().get("/admin/jobs", headers=auth), 404, "not_found")
    assert current_service(small).settings.max_body_bytes == 1024
    assert small.config["MAX_CONTENT_LENGTH"] == 1024


def test_settings_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, make_app: Callable[..., Flask]
) -> None:
    config = tmp_path / "settings.yaml"
    config.write_text(
        "instances:\n"
        "  - {name: env, kind: fake, url: 'http://127.0.0.1:9',\n"
        "     token_env: FAKE_API_TOKEN, webhook_secret_env: FAKE_HOOK_SECRET}\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("BITRIX_SLA_CONFIG", str(config))
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'env.sqlite'}")
    monkeypatch.setenv("BITRIX_SLA_MAPPINGS", str(MAPPINGS))
    monkeypatch.setenv("FAKE_API_TOKEN", "api")
    monkeypatch.setenv("FAKE_HOOK_SECRET", "from-env")
    client = make_app().test_client()

    response = post_event(client, url="/webhooks/fake/env", token="from-env")

    assert response.status_code == 202
    assert (tmp_path / "env.sqlite").is_file()


def test_bad_mappings_refuse_to_start(tmp_path: Path) -> None:
    broken = tmp_path / "mappings"
    shutil.copytree(MAPPINGS, broken)
    (broken / "levels.yaml").write_text("levels: not-a-table\n", encoding="utf-8")

    with pytest.raises(ConfigError):
        create_app(settings=make_settings(tmp_path, mappings_dir=broken))


def test_service_or_settings_not_both(service: Service, settings: Settings) -> None:
    with pytest.raises(TypeError):
        create_app(service, settings=settings)


# -- accepted webhooks -----------------------------------------------------------------------------


def test_valid_webhook_is_stored_then_answered(client: FlaskClient, service: Service) -> None:
    response = post_event(client, "42", delivery="d-1")

    assert response.status_code == 202
    assert response.get_json() == {"status": "accepted"}
    job_id = int(response.headers["X-Bitrix-SLA-Job"])
    assert row_counts(service) == {"events": 1, "jobs": 1}
    job = service.store.get(job_id)
    assert job is not None
    assert (job.status, job.ticket_id, job.kind, job.instance) == ("queued", "42", "fake", "main")


def test_redelivery_is_acknowledged_without_a_new_job(
    client: FlaskClient, service: Service
) -> None:
    first = post_event(client, "42", delivery="same")
    again = post_event(client, "42", delivery="same")

    assert first.status_code == again.status_code == 202
    assert "X-Bitrix-SLA-Job" not in again.headers
    assert row_counts(service) == {"events": 1, "jobs": 1}


def test_burst_for_one_ticket_coalesces(client: FlaskClient, service: Service) -> None:
    answers = {post_event(client, "7").headers["X-Bitrix-SLA-Job"] for _ in range(20)}

    assert len(answers) == 1
    assert row_counts(service) == {"events": 20, "jobs": 1}
    (job,) = service.store.list_jobs("queued")
    assert job.events == 20


def test_integer_ticket_id_is_accepted(client: FlaskClient, service: Service) -> None:
    assert post_event(client, 9).status_code == 202
    assert service.store.list_jobs("queued")[0].ticket_id == "9"


# -- refusals store nothing ------------------------------------------------------------------------


def test_oversized_body(client: FlaskClient, service: Service, settings: Settings) -> None:
    body = body_for("1")[:-1] + b', "pad": "' + b"x" * settings.max_body_bytes + b'"}'

    data = assert_problem(post_event(client, body=body), 413, "body_too_large")

    assert str(settings.max_body_bytes) in data["detail"]
    assert row_counts(service) == NOTHING


def test_oversized_chunked_body_is_cut_off(client: FlaskClient, service: Service) -> None:
    """Without Content-Length the cap applies while reading (as servers signal chunked input)."""
    response = client.post(
        URL,
        data=b"x" * (2 * 1024 * 1024),
        headers={"X-Fake-Token": WEBHOOK_SECRET, "Transfer-Encoding": "chunked"},
        content_type="application/json",
        environ_overrides={"wsgi.input_terminated": True},
    )

    assert_problem(response, 413, "body_too_large")
    assert row_counts(service) == NOTHING


@pytest.mark.parametrize(("extra", "status"), [(0, 202), (1, 413)])
def test_chunked_limit_is_exact(
    client: FlaskClient, service: Service, settings: Settings, extra: int, status: int
) -> None:
    """A chunked body of exactly the limit is read whole; one byte more is refused."""
    body = body_for("3")
    body += b" " * (settings.max_body_bytes - len(body) + extra)

    response = client.post(
        URL,
        data=body,
        headers={"X-Fake-Token": WEBHOOK_SECRET, "Transfer-Encoding": "chunked"},
        content_type="application/json",
        environ_overrides={"wsgi.input_terminated": True},
    )

    assert response.status_code == status
    assert row_counts(service)["jobs"] == (1 if status == 202 else 0)


def test_not_json(client: FlaskClient, service: Service) -> None:
    data = assert_problem(post_event(client, body=b"ticket=42"), 422, "invalid_payload")

    assert "JSON" in data["detail"]
    assert row_counts(service) == NOTHING


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (b'["42"]', "object"),
        (b'{"event": "ticket.updated"}', "ticket_id"),
        (b'{"ticket_id": ["42"]}', "ticket_id"),
        (b'{"ticket_id": true}', "ticket_id"),
        (b'{"ticket_id": ""}', "ticket_id"),
    ],
)
def test_wrong_shape_or_types(
    client: FlaskClient, service: Service, body: bytes, named: str
) -> None:
    data = assert_problem(post_event(client, body=body), 422, "invalid_payload")

    assert named in data["detail"]
    assert row_counts(service) == NOTHING


@pytest.mark.parametrize("token", [None, "", "wrong", WEBHOOK_SECRET + "x"])
def test_missing_or_wrong_token(client: FlaskClient, service: Service, token: str | None) -> None:
    assert_problem(post_event(client, token=token), 401, "unauthenticated")
    assert row_counts(service) == NOTHING


def test_token_checked_before_the_payload(client: FlaskClient, service: Service) -> None:
    """An unauthenticated sender learns nothing about what a valid payload looks like."""
    assert_problem(post_event(client, token="wrong", body=b"junk"), 401, "unauthenticated")
    assert row_counts(service) == NOTHING


@pytest.mark.parametrize("url", ["/webhooks/fake/other", "/webhooks/zammad/main"])
def test_unknown_instance(
    client: FlaskClient, service: Service, url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    data = assert_problem(post_event(client, url=url), 404, "unknown_instance")

    assert url.rsplit("/", 1)[1] in data["detail"]
    assert row_counts(service) == NOTHING
    # the log names the URL the helpdesk used, so a wrong webhook URL is found from the log
    _, _, kind, instance = url.split("/")
    assert f"refused a webhook for {kind!r}/{instance!r}: unknown_instance (404)" in caplog.text


def test_configured_instances_have_static_routes(app: Flask) -> None:
    """A configured instance's URL matches a rule without variables (the cheap match); any
    other webhook URL falls to the generic rule, which answers 404 for it."""
    urls = app.url_map.bind("localhost")
    rule, values = urls.match(URL, method="POST", return_rule=True)
    assert rule.rule == URL
    assert rule.defaults == values == {"kind": KIND, "instance": INSTANCE}
    rule, values = urls.match("/webhooks/fake/other", method="POST", return_rule=True)
    assert rule.rule == "/webhooks/<kind>/<instance>"
    assert values == {"kind": "fake", "instance": "other"}


def test_get_on_the_webhook_route(client: FlaskClient, service: Service) -> None:
    response = client.get(URL)

    assert_problem(response, 405, "method_not_allowed")
    assert "POST" in response.headers["Allow"]
    assert row_counts(service) == NOTHING


@pytest.mark.parametrize("path", [URL, "/webhooks/fake/other", "/healthz", "/admin/jobs"])
def test_options_is_a_json_405(client: FlaskClient, service: Service, path: str) -> None:
    """OPTIONS answered 200 with an empty text/html body (Flask's automatic answer), the one
    non-JSON answer of the edge."""
    response = client.options(path)

    assert_problem(response, 405, "method_not_allowed")
    assert "OPTIONS" not in response.headers["Allow"]
    assert row_counts(service) == NOTHING


def test_form_posts_are_unsupported(client: FlaskClient, service: Service) -> None:
    response = post_event(client, content_type="application/x-www-form-urlencoded")

    data = assert_problem(response, 415, "unsupported_media_type")
    assert "application/x-www-form-urlencoded" in data["detail"]
    assert row_counts(service) == NOTHING


def test_unknown_path_is_json(client: FlaskClient) -> None:
    assert_problem(client.get("/nowhere"), 404, "not_found")


def test_storage_down_asks_for_a_retry(
    client: FlaskClient, service: Service, settings: Settings
) -> None:
    path = sqlite_path(settings.database_url.get_secret_value())
    assert path is not None
    with closing(sqlite3.connect(path)) as connection:
        connection.execute("DROP TABLE events")
        connection.commit()

    response = post_event(client, "42")

    data = assert_problem(response, 503, "storage_unavailable")
    assert response.headers["Retry-After"] == "5"
    assert "events" not in data["detail"]  # no database internals leak to the sender
    with closing(sqlite3.connect(path)) as connection:
        assert connection.execute("SELECT count(*) FROM jobs").fetchone() == (0,)


def test_unexpected_errors_are_json(app: Flask, caplog: pytest.LogCaptureFixture) -> None:
    def explode() -> str:
        raise RuntimeError("payload " + "-".join(["secret", "ish"]))  # built, not in the source

    app.add_url_rule("/explode", view_func=explode)

    data = assert_problem(app.test_client().get("/explode"), 500, "internal_error")
    assert "secret-ish" not in data["detail"]
    assert "RuntimeError" in caplog.text
    assert "explode" in caplog.text  # the frame is logged
    assert "secret-ish" not in caplog.text


def test_logs_hold_no_bodies_or_secrets(
    client: FlaskClient, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    marker = "body-marker-0xfeed"
    post_event(client, marker)
    post_event(client, marker, token="wrong-" + WEBHOOK_SECRET)
    post_event(client, body=f'{{"ticket_id": ["{marker}"]}}'.encode())
    path = sqlite_path(settings.database_url.get_secret_value())
    assert path is not None
    with closing(sqlite3.connect(path)) as connection:
        connection.execute("DROP TABLE events")
        connection.commit()
    assert post_event(client, marker).status_code == 503

    assert "refused a webhook" in caplog.text
    assert "could not store a webhook" in caplog.text
    for secret in (marker, WEBHOOK_SECRET, "X-Fake-Token"):
        assert secret not in caplog.text


# -- over a real socket ----------------------------------------------------------------------------


@pytest.fixture
def served(app: Flask) -> Iterator[str]:
    """The app behind werkzeug's threaded server on 127.0.0.1 (decodes chunked bodies)."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()
    thread.join()


def test_chunked_bodies_over_a_socket(served: str, service: Service, settings: Settings) -> None:
    def chunks(total: int) -> Iterator[bytes]:
        sent = 0
        while sent < total:
            yield b" " * 1024
            sent += 1024

    headers = {"X-Fake-Token": WEBHOOK_SECRET, "Content-Type": "application/json"}
    with requests.Session() as session:
        small = session.post(
            f"{served}{URL}",
            data=iter([body_for("5"), b"  "]),
            headers={**headers, "X-Fake-Delivery": "chunked-1"},
            timeout=10,
        )
        assert small.status_code == 202
        assert row_counts(service) == {"events": 1, "jobs": 1}
        try:
            large = session.post(
                f"{served}{URL}",
                data=chunks(settings.max_body_bytes * 4),
                headers={**headers, "X-Fake-Delivery": "chunked-2"},
                timeout=10,
            )
        except requests.ConnectionError:
            pass  # the server may close the connection before the client finishes sending
        else:
            assert_problem_http(large, 413, "body_too_large")
    assert row_counts(service) == {"events": 1, "jobs": 1}


def test_a_body_cut_short_is_refused_and_nothing_stored(served: str, service: Service) -> None:
    """A sender that declares more bytes than it sends, then stops sending: 400, not stored."""
    body = body_for("5")
    host, port = served.removeprefix("http://").split(":")
    request = (
        f"POST {URL} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"X-Fake-Token: {WEBHOOK_SECRET}\r\nX-Fake-Delivery: cut-1\r\n"
        f"Content-Length: {len(body) + 10}\r\nConnection: close\r\n\r\n"
    ).encode() + body
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(request)
        connection.shutdown(socket.SHUT_WR)  # no more bytes will come
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.split(b" ", 2)[1] == b"400", head
    assert json.loads(payload)["error"] == "bad_request"
    assert row_counts(service) == {"events": 0, "jobs": 0}


def assert_problem_http(response: requests.Response, status: int, error: str) -> None:
    assert response.status_code == status
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json()["error"] == error


def test_admin_token_is_not_in_settings_repr(settings: Settings) -> None:
    assert ADMIN_TOKEN not in repr(settings)
    assert isinstance(settings.admin_token, SecretStr)


def test_an_overlong_ticket_id_is_refused_and_nothing_stored(
    client: FlaskClient, service: Service
) -> None:
    response = post_event(client, "9" * 65)
    problem = assert_problem(response, 422, "invalid_payload")
    assert "ticket_id" in problem["detail"]
    assert row_counts(service) == NOTHING
