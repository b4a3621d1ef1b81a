"""Secrets named indirectly in configuration: inline, ``<key>_env`` or ``<key>_file``.

The service settings (``database_url``, ``admin_token``, an instance's ``token`` and
``webhook_secret``) and the adapters' ``options`` (Zammad's webhook credentials, Znuny's agent
password) all accept a secret the same three ways, so that a deployment can keep it out of the
settings file: give the value inline, name an environment variable (``<key>_env``) or name a
mounted file (``<key>_file``, e.g. a Kubernetes secret). One rule for all of them lives here,
so the three ways and their error messages cannot drift apart between callers.

Resolved values are held as ``SecretStr``: they never show up in reprs, logs or messages;
only the *names* of variables and files do.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import SecretStr

__all__ = ["SecretError", "resolve_secret"]


class SecretError(ValueError):
    """A secret cannot be resolved; ``key`` is the offending key, the message says why.

    ``key`` is ``<key>`` when more than one variant is given, ``<key>_env`` or ``<key>_file``
    when the named variable or file is unusable: the caller prefixes it with where the data
    sits (``instances.main.options``) to name the exact key the operator must fix.
    """

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def resolve_secret(data: dict[str, Any], key: str, environ: Mapping[str, str]) -> SecretStr | None:
    """``key`` given inline, as ``key_env`` or as ``key_file``; removes all three from ``data``.

    The variants are popped so that the remaining ``data`` validates against a model that knows
    only ``key`` itself. A file's content is stripped (mounted secrets usually end in a newline).

    Args:
        data: the raw mapping, changed in place.
        key: the secret's name, e.g. ``password``.
        environ: where ``key_env`` is looked up (``os.environ`` in production).

    Returns:
        The secret, or None when none of the three is given.

    Raises:
        SecretError: more than one variant is given, the inline value is not a string (YAML
            made a number, a boolean or a list of it), the variable is not set or the file
            cannot be read.
    """
    inline = data.pop(key, None)
    env_name = data.pop(f"{key}_env", None)
    file_name = data.pop(f"{key}_file", None)
    given = [value for value in (inline, env_name, file_name) if value is not None]
    if len(given) > 1:
        raise SecretError(key, f"give one of {key}, {key}_env, {key}_file")
    if env_name is not None:
        if str(env_name) not in environ:
            raise SecretError(f"{key}_env", f"environment variable {env_name} is not set")
        return SecretStr(environ[str(env_name)])
    if file_name is not None:
        try:
            return SecretStr(Path(str(file_name)).read_text(encoding="utf-8").strip())
        except OSError as exc:
            raise SecretError(f"{key}_file", f"cannot read {file_name}: {exc.strerror}") from None
    if inline is None or isinstance(inline, SecretStr):
        return inline
    if not isinstance(inline, str):
        # YAML reads an unquoted 01234567 as the number 342391, yes as True, [a] as a list:
        # turned into text, they would be another secret than the one written
        raise SecretError(key, "must be a string; quote it")
    return SecretStr(inline)
