"""Zammad: trigger webhooks in, REST API reads and attribute/tag writes out.

Files, the same in every helpdesk folder: ``options.py`` (the instance's ``options``),
``payload.py`` (webhook payload models), ``receiver.py`` (signature check and parsing),
``client.py`` (the adapter: read, apply, changed_since), ``setup.py`` (``bitrix-sla setup
zammad``) and ``README.md`` (what a Zammad admin configures). Zammad-only helpers:
``rest.py`` (session and error classification), ``text.py`` (JSON values → snapshot values)
and ``desired.py`` (the attributes, webhook and triggers setup wants).
"""

from __future__ import annotations

from connector.helpdesks.zammad.client import ZammadAdapter
from connector.helpdesks.zammad.options import ZammadOptions, load_options
from connector.helpdesks.zammad.receiver import ZammadReceiver
from connector.helpdesks.zammad.rest import ZammadApi
from connector.settings import InstanceSettings

__all__ = ["ZammadAdapter", "ZammadApi", "ZammadOptions", "ZammadReceiver", "build", "load_options"]


def api_for(instance: InstanceSettings, options: ZammadOptions) -> ZammadApi:
    """A REST session for ``instance`` (its token, timeout and TLS setting)."""
    token = instance.token.get_secret_value() if instance.token is not None else ""
    return ZammadApi(
        instance.name,
        instance.url,
        token,
        options,
        timeout=instance.timeout_seconds,
        verify_tls=instance.verify_tls,
    )


def build(instance: InstanceSettings) -> tuple[ZammadAdapter, ZammadReceiver]:
    """The adapter and webhook receiver of one configured Zammad instance.

    Raises:
        ConfigError: the options are invalid, or the token or webhook secret is missing.
    """
    options = load_options(instance)
    adapter = ZammadAdapter(instance.name, api_for(instance, options), options)
    return adapter, ZammadReceiver(instance.name, options, instance.webhook_secret)
