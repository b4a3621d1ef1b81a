"""Helpdesk kinds → adapter factories: a registry instead of if-chains."""

from __future__ import annotations

from collections.abc import Callable

from connector.errors import ConfigError, ConfigIssue
from connector.helpdesks.base import HelpdeskAdapter, WebhookReceiver
from connector.settings import InstanceSettings

Pair = tuple[HelpdeskAdapter, WebhookReceiver]


def _secret(instance: InstanceSettings, name: str) -> str:
    value = getattr(instance, name)
    if value is None:
        raise ConfigError(
            [ConfigIssue("settings", f"instances.{instance.name}.{name}", "required for this kind")]
        )
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
                    "settings",
                    f"instances.{instance.name}.kind",
                    f"unknown helpdesk kind {instance.kind!r}; known: {sorted(ADAPTERS)}",
                )
            ]
        )
    return factory(instance)
