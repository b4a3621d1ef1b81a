"""Errors the fake Zammad answers with, shaped like Zammad's ``handles_errors.rb`` (facts §4.2).

Every error body is ``{"error": ..., "error_human": ...}``. Zammad derives ``error_human`` from
the exception ("Validation failed: X" → "X"); when there is no human text and the caller is not
an admin, it hides the message behind ``"Error ID <6 chars>: Please contact your
administrator."`` (the real text is only in Zammad's log). :class:`ApiError` with
``human=None`` reproduces that.
"""

from __future__ import annotations


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
