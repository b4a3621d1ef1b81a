"""Read-only admin API: list jobs by status, show one job with its runs.

For operators chasing a ticket whose SLA fields look wrong: which jobs are dead, why, what the
last runs decided and which calls they made. Changes (replaying dead jobs) stay in the CLI,
which needs shell access, so a leaked admin token can read but not act.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request
from pydantic_core import to_jsonable_python

from connector.pipeline.store import STATUSES, Status
from webhooks.auth import CHALLENGE, admin_allowed
from webhooks.responses import current_service, problem

bp = Blueprint("admin", __name__, url_prefix="/admin")

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


@bp.before_request
def _authorize() -> Response | None:
    """401 for a missing or wrong bearer token.

    The app registers this blueprint only with an admin token configured; the 404 here is a
    backstop for an app built around it otherwise.
    """
    expected = current_service().settings.admin_token
    if expected is None:
        return problem(404, "not_found", "the admin API is off: no admin token is configured")
    if not admin_allowed(expected, request.headers.get("Authorization")):
        return problem(
            401,
            "unauthenticated",
            "send Authorization: Bearer <admin token>",
            {"WWW-Authenticate": CHALLENGE},
        )
    return None


def _status_param() -> Status | Response | None:
    raw = request.args.get("status")
    if raw is None:
        return None
    if raw not in STATUSES:
        return problem(
            400, "bad_request", f"parameter 'status' must be one of {', '.join(STATUSES)}"
        )
    return raw


def _limit_param() -> int | Response:
    raw = request.args.get("limit")
    if raw is None:
        return DEFAULT_LIMIT
    bad = problem(400, "bad_request", f"parameter 'limit' must be an integer from 1 to {MAX_LIMIT}")
    if not (raw.isascii() and raw.isdigit()):
        return bad
    limit = int(raw)
    return limit if 1 <= limit <= MAX_LIMIT else bad


@bp.get("/jobs")
def list_jobs() -> Response:
    """Newest jobs first, optionally of one status: ``?status=dead&limit=50``."""
    status = _status_param()
    if isinstance(status, Response):
        return status
    limit = _limit_param()
    if isinstance(limit, Response):
        return limit
    jobs = current_service().store.list_jobs(status, limit)
    return jsonify(
        {
            "status": status,
            "limit": limit,
            "count": len(jobs),
            "jobs": [job.model_dump(mode="json") for job in jobs],
        }
    )


@bp.get("/jobs/<int:job_id>")
def show_job(job_id: int) -> Response:
    """One job and the audit rows of its runs, oldest first."""
    store = current_service().store
    job = store.get(job_id)
    if job is None:
        return problem(404, "not_found", f"no job {job_id}")
    runs: Any = to_jsonable_python(store.runs(job_id))
    return jsonify({"job": job.model_dump(mode="json"), "runs": runs})
