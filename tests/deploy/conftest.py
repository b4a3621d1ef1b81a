"""Fixtures for the deployment artefacts: the Helm chart, the Dockerfile and the systemd unit.

The chart is rendered and linted offline by the Helm library that ``helm-python-sdk`` bundles
(``helm_python``: Helm's Go SDK behind a C ABI, no ``helm`` binary, no cluster); rendered
manifests are checked against the Kubernetes OpenAPI schemas by ``kubernetes-validate``.
A tool this machine lacks makes its tests skip with the reason, except under ``CI=true``,
where they fail: CI must not pass by testing nothing.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART_DIR = REPO / "helm" / "bitrix-sla-connector"
RELEASE = "sla"
NAMESPACE = "bitrix-sla"

Manifest = dict[str, Any]

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def unavailable(reason: str) -> NoReturn:
    """Skip with ``reason``; fail instead under ``CI=true``."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (required under CI=true)")
    pytest.skip(reason)


def load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)


@dataclass
class Rendered:
    """One offline render of the chart: its manifests and its NOTES.txt."""

    manifests: list[Manifest]
    notes: str
    templates: dict[str, str] = field(repr=False)

    def of_kind(self, kind: str) -> list[Manifest]:
        return [m for m in self.manifests if m["kind"] == kind]

    def one(self, kind: str, name: str | None = None) -> Manifest:
        """The single ``kind`` (named ``name``, when given); fails when there is not exactly one."""
        found = [m for m in self.of_kind(kind) if name is None or m["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
        return found[0]

    def pod_specs(self) -> dict[str, Manifest]:
        """Every pod spec by ``Kind/name``: Deployment templates and bare Pods."""
        specs = {f"Pod/{m['metadata']['name']}": m["spec"] for m in self.of_kind("Pod")}
        for deployment in self.of_kind("Deployment"):
            specs[f"Deployment/{deployment['metadata']['name']}"] = deployment["spec"]["template"][
                "spec"
            ]
        return specs


class ChartRenderer:
    """Renders the chart with the bundled Helm library, as ``helm template`` would."""

    def __init__(self, helm: ModuleType) -> None:
        self.helm = helm
        self.chart = helm.Chart.load(CHART_DIR)

    def values(self, ci_file: str | Path) -> dict[str, Any]:
        """A ``ci/*-values.yaml`` file parsed by Helm's own values reader (``-f``)."""
        path = Path(ci_file)
        if not path.is_absolute():
            path = CHART_DIR / "ci" / f"{ci_file}-values.yaml"
        parsed: dict[str, Any] = self.helm.values_from_yaml(path.read_text(encoding="utf-8"))
        return parsed

    def render(self, values: dict[str, Any] | None = None) -> Rendered:
        templates: dict[str, str] = self.chart.render(
            values or {}, name=RELEASE, namespace=NAMESPACE, is_install=True
        )
        manifests: list[Manifest] = []
        notes = ""
        for path, text in sorted(templates.items()):
            if path.endswith("NOTES.txt"):
                notes = text
                continue
            manifests.extend(doc for doc in yaml.load_all(text, Loader=_Loader) if doc)
        return Rendered(manifests=manifests, notes=notes, templates=templates)

    def close(self) -> None:
        self.chart.close()


@pytest.fixture(scope="session")
def helm() -> ModuleType:
    """The ``helm_python`` module, or a skip (a failure under CI) saying why it cannot load."""
    try:
        import helm_python
    except Exception as exc:  # ImportError, or HelmLibraryError when libhelm_c cannot load
        unavailable(f"helm-python-sdk's bundled Helm library cannot be loaded here: {exc}")
    return helm_python


@pytest.fixture(scope="session")
def chart(helm: ModuleType) -> Iterator[ChartRenderer]:
    renderer = ChartRenderer(helm)
    yield renderer
    renderer.close()


@pytest.fixture(scope="session")
def kubernetes_validate() -> ModuleType:
    try:
        module = importlib.import_module("kubernetes_validate")  # untyped: used as a module
    except Exception as exc:
        unavailable(f"kubernetes-validate cannot be imported: {exc}")
    return module
