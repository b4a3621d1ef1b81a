"""Bitrix SLA Connector: enforces the 1C-Bitrix support policy on helpdesk tickets."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("bitrix-sla-connector")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"
