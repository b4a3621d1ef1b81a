"""One exception root for the connector, split by what the caller should do about it."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path


class ConnectorError(Exception):
    """Something went wrong in the Bitrix SLA connector."""


class TransientError(ConnectorError):
    """A failure that may go away by itself: retry later (timeouts, 5xx, 429, lock waits)."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(ConnectorError):
    """A failure that retrying will not fix (bad data, 4xx): record it and stop."""


class StoreUnavailableError(ConnectorError):
    """The job store cannot be opened: the database is unreachable or refuses us, or its file
    cannot be created. The message names the database with any password hidden."""


class BackupError(ConnectorError):
    """A backup or restore of the SQLite job store could not be made; the message names the
    file and the reason. Nothing was changed: no backup file is left behind, and the database
    is as it was."""


class BackupStopped(BackupError):
    """A backup abandoned between two steps because it was asked to stop (shutdown)."""


class RequestError(ConnectorError):
    """An incoming HTTP request is refused; ``status`` is the answer, the message says why."""

    status = 400
    reason = "bad_request"


class AuthError(RequestError):
    """The request is not authenticated (no or a wrong signature, token or password)."""

    status = 401
    reason = "unauthenticated"


class PayloadError(RequestError):
    """The body is not what this helpdesk sends: not JSON, wrong shape, missing ticket id."""

    status = 422
    reason = "invalid_payload"


#: The file of an issue found in the settings by code that does not know where they came from
#: (a helpdesk's options); :meth:`ConfigError.from_settings_in` names the real source.
SETTINGS_FILE = "settings"


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a mapping or settings file."""

    file: str
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}: {self.path}" if self.path else self.file
        return f"{where}: {self.message}"


class ConfigError(ConnectorError):
    """The configuration is invalid; the service refuses to start until it is fixed."""

    def __init__(self, issues: list[ConfigIssue], *, directory: Path | None = None) -> None:
        self.issues = issues
        self.directory = directory
        lines = "\n".join(f"  {issue}" for issue in issues)
        where = f" in {directory}" if directory is not None else ""
        super().__init__(f"{len(issues)} configuration error(s){where}:\n{lines}")

    def from_settings_in(self, source: str) -> ConfigError:
        """The same issues, those of :data:`SETTINGS_FILE` named by ``source`` instead (the
        settings file's path, or ``environment``)."""
        return ConfigError(
            [replace(i, file=source) if i.file == SETTINGS_FILE else i for i in self.issues],
            directory=self.directory,
        )
