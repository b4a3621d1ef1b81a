"""What every adapter's ``load_options`` does with ``instances[].options`` before its own rules.

Each helpdesk validates its instance's free-form ``options`` mapping against its own model
(``zammad/options.py``, ``znuny/options.py``), but the way problems are *reported* is the same
for all of them: one :class:`~connector.errors.ConfigIssue` of the ``settings`` file per
problem, named by its full key path (``instances.<name>.options.<key>``), so that
``bitrix-sla check-config`` points the operator at the exact key to fix. The helpers here keep
that reporting, and the resolution of secrets given in options, in one place.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, SecretStr, ValidationError

from connector.errors import SETTINGS_FILE, ConfigError, ConfigIssue
from connector.secrets import SecretError, resolve_secret

__all__ = ["HTTP_URL", "option_issue", "option_secret", "settings_error", "validate_options"]

#: An ``http(s)://host…`` URL: what a helpdesk or the connector can be reached at.
HTTP_URL = re.compile(r"^https?://[^/\s]+")

_Model = TypeVar("_Model", bound=BaseModel)


def settings_error(path: str, message: str) -> ConfigError:
    """A :class:`ConfigError` with one issue of the settings file at ``path``, to raise."""
    return ConfigError([ConfigIssue(SETTINGS_FILE, path, message)])


def option_secret(
    data: dict[str, Any], key: str, environ: Mapping[str, str], where: str
) -> SecretStr | None:
    """Resolve the secret option ``key`` (inline, ``key_env`` or ``key_file``) of ``data``.

    Args:
        data: the raw options, changed in place (the variants are removed).
        key: the option's name.
        environ: where ``key_env`` is looked up.
        where: the options' key path, e.g. ``instances.main.options``.

    Raises:
        ConfigError: naming ``<where>.<key>`` (or ``<key>_env`` / ``<key>_file``).
    """
    try:
        return resolve_secret(data, key, environ)
    except SecretError as exc:
        raise settings_error(f"{where}.{exc.key}", str(exc)) from None


def validate_options(
    model: type[_Model], data: Mapping[str, Any], where: str, *, key_in_message: bool = False
) -> _Model:
    """``data`` validated as ``model``, or a :class:`ConfigError` naming every bad key.

    Args:
        model: the adapter's options model.
        data: the options, secrets already resolved.
        where: the options' key path, e.g. ``instances.main.options``.
        key_in_message: see :func:`option_issue`.

    Raises:
        ConfigError: one issue per validation error.
    """
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        issues = [
            option_issue(where, error["loc"], error["msg"], key_in_message=key_in_message)
            for error in exc.errors()
        ]
        raise ConfigError(issues) from None


def option_issue(
    where: str, loc: tuple[int | str, ...], message: str, *, key_in_message: bool = False
) -> ConfigIssue:
    """A config issue at ``where.<loc>``, without pydantic's ``Value error, `` prefix.

    A model-level validator has no ``loc``; with ``key_in_message`` its ``"key: reason"``
    message is read as naming the key, which then moves into the path (Zammad reports its
    cross-field checks this way; Znuny keeps the key in the message text).
    """
    text = message.removeprefix("Value error, ")
    path = [where, *(str(part) for part in loc)]
    named = re.match(r"^([a-z_]+): (.+)$", text, re.DOTALL)
    if key_in_message and not loc and named:
        path.append(named.group(1))
        text = named.group(2)
    return ConfigIssue(SETTINGS_FILE, ".".join(path), text)
