"""Errors the fake Zammad answers with, shaped like Zammad's ``handles_errors.rb`` (facts §4.2).

Every error body is ``{"error": ..., "error_human": ...}``. Zammad derives ``error_human`` from
the exception ("Validation failed: X" → "X"); when there is no human text and the caller is not
an admin, it hides the message behind ``{"error": "Error ID <8 chars>: Please contact your
administrator."}`` — no ``error_human``, the id is ``SecureRandom.urlsafe_base64(6)``, the real
text is only in Zammad's log (``handles_errors.rb#humanize_error``). :class:`ApiError` with
``human=None`` reproduces that. Database errors (``StatementInvalid``: deadlocks, lock-wait
timeouts) are such errors: 422 without human text (:data:`DEADLOCK`).
"""

from __future__ import annotations

#: MySQL's deadlock as Rails reports it; a PostgreSQL lock timeout reads
#: ``PG::LockNotAvailable: ERROR: canceling statement due to lock timeout``.
DEADLOCK = "Mysql2::Error: Deadlock found when trying to get lock; try restarting transaction"


class ApiError(Exception):
    """A request the sandbox refuses; the root of the sandbox's errors.

    Args:
        status: the HTTP status (404, 422, 403, ...).
        error: the ``error`` text.
        human: the ``error_human`` text; None means "no human text" (opaque for non-admins).
    """

    def __init__(self, status: int, error: str, human: str | None) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.human = human


class NotFound(ApiError):
    """``ActiveRecord::RecordNotFound``: 404 with Rails' message."""

    def __init__(self, model: str, row_id: object) -> None:
        message = f"Couldn't find {model} with 'id'={row_id}"
        super().__init__(404, message, message)


class Forbidden(ApiError):
    """A Pundit/permission denial: 403 ``Not authorized`` (facts §4.2)."""

    def __init__(self) -> None:
        super().__init__(403, "Not authorized", "Not authorized")


def invalid(message: str) -> ApiError:
    """A failed model validation: 422, ``error_human`` without the "Validation failed: " prefix."""
    return ApiError(422, f"Validation failed: {message}", message)
