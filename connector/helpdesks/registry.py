"""Helpdesk kinds → adapter factories: a registry instead of if-chains."""

from __future__ import annotations

from collections.abc import Callable

from connector.errors import SETTINGS_FILE, ConfigError, ConfigIssue
from connector.helpdesks.base import HelpdeskAdapter, WebhookReceiver
from connector.settings import InstanceSettings, Settings

Pair = tuple[HelpdeskAdapter, WebhookReceiver]


def _secret(instance: InstanceSettings, name: str) -> str:
    value = getattr(instance, name)
    if value is None:
        path = f"instances.{instance.name}.{name}"
        raise ConfigError([ConfigIssue(SETTINGS_FILE, path, "required for this kind")])
    return str(value.get_secret_value())


def _fake(instance: InstanceSettings) -> Pair:
    from connector.helpdesks.fake.adapter import FakeAdapter
    from connector.helpdesks.fake.receiver import FakeReceiver

    adapter = FakeAdapter(
        instance.name,
        instance.url,
        _secret(instance, "token"),
        timeout=instance.timeout_seconds,
        verify_tls=instance.verify_tls,
    )
    return adapter, FakeReceiver(instance.name, _secret(instance, "webhook_secret"))


def _zammad(instance: InstanceSettings) -> Pair:
    from connector.helpdesks import zammad

    return zammad.build(instance)


def _znuny(instance: InstanceSettings) -> Pair:
    from connector.helpdesks import znuny

    return znuny.build(instance)


ADAPTERS: dict[str, Callable[[InstanceSettings], Pair]] = {
    "fake": _fake,
    "zammad": _zammad,
    "znuny": _znuny,
}


def build(instance: InstanceSettings) -> Pair:
    """The adapter and webhook receiver for one configured instance."""
    factory = ADAPTERS.get(instance.kind)
    if factory is None:
        raise ConfigError(
            [
                ConfigIssue(
                    SETTINGS_FILE,
                    f"instances.{instance.name}.kind",
                    f"unknown helpdesk kind {instance.kind!r}; known: {sorted(ADAPTERS)}",
                )
            ]
        )
    return factory(instance)


def build_all(settings: Settings) -> dict[tuple[str, str], Pair]:
    """The adapter and receiver of every configured instance, by ``(kind, name)``.

    Nothing is contacted: adapters connect on first use. Raises one :class:`ConfigError` with
    the problems of every instance, each in the file the settings came from.
    """
    built: dict[tuple[str, str], Pair] = {}
    issues: list[ConfigIssue] = []
    for instance in settings.instances:
        try:
            built[(instance.kind, instance.name)] = build(instance)
        except ConfigError as exc:
            issues.extend(exc.from_settings_in(settings.source).issues)
    if issues:
        close_adapters(built)
        raise ConfigError(issues)
    return built


def close_adapters(built: dict[tuple[str, str], Pair]) -> None:
    """Close the HTTP sessions of adapters :func:`build_all` made (those that hold one)."""
    for adapter, _receiver in built.values():
        close = getattr(adapter, "close", None)
        if close is not None:
            close()
