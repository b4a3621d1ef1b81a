"""The Helm chart: strict lint, offline render of every ci/*-values.yaml, Kubernetes schemas.

Rendering uses Helm's own engine (``helm_python.Chart.render``, what ``helm template`` does);
linting is ``helm lint --strict`` (``helm_python.lint``); every rendered object is validated by
``kubernetes_validate.validate(..., strict=True)`` (unknown fields are errors) for the oldest
Kubernetes the chart supports, 1.33 and the newest schemas the package ships.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
import yaml
from sqlalchemy.engine.url import make_url

from connector.cli import build_parser
from connector.helpdesks.registry import build as registry_build
from connector.helpdesks.zammad.options import load_options as zammad_options
from connector.helpdesks.znuny.options import load_options as znuny_options
from connector.mappings import load_mappings
from connector.settings import Settings, load_settings
from tests.deploy.conftest import (
    CHART_DIR,
    NAMESPACE,
    RELEASE,
    REPO,
    ChartRenderer,
    Manifest,
    Rendered,
    load_yaml,
)

CI_FILES = sorted(p.name.removesuffix("-values.yaml") for p in CHART_DIR.glob("ci/*-values.yaml"))
FULLNAME = f"{RELEASE}-bitrix-sla-connector"
SECRETS_DIR = "/run/secrets/bitrix-sla"
LINT_KUBE_VERSION = "v1.33.0"
# Custom resources have no schema in kubernetes-validate; their shape is asserted below instead.
CUSTOM_RESOURCES = {("monitoring.coreos.com/v1", "ServiceMonitor")}
# The Bitnami PostgreSQL dependency cannot be downloaded here, and `helm lint` reports a
# declared-but-absent dependency as a warning (an error under --strict). That one finding is
# expected while charts/ lacks it; anything else fails.
MISSING_DEPENDENCY = "chart directory is missing these dependencies: postgresql"
INGRESS_NGINX = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}
}
MONITORING = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
EXTERNAL_DATABASE = {"url": "postgresql+psycopg://sla:pw@db.example.com:5432/sla"}
ANYONE = "anyone"  # a NetworkPolicy rule without `from`


def kube_versions(kubernetes_validate: ModuleType) -> list[str]:
    """The chart's minimum Kubernetes (Chart.yaml kubeVersion), 1.33 and the newest shipped."""
    minimum = re.search(r"(\d+\.\d+)", chart_metadata()["kubeVersion"])
    assert minimum is not None
    newest = kubernetes_validate.utils.latest_version()
    return sorted(
        {f"{minimum.group(1)}.0", "1.33.0", newest}, key=lambda v: tuple(map(int, v.split(".")))
    )


def chart_metadata() -> dict[str, Any]:
    metadata: dict[str, Any] = load_yaml((CHART_DIR / "Chart.yaml").read_text(encoding="utf-8"))
    return metadata


def env_of(container: Manifest) -> dict[str, Any]:
    """A container's env as name -> value or valueFrom."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def app_containers(rendered: Rendered) -> dict[str, Manifest]:
    """The connector's containers (server, web, worker) by Deployment name."""
    return {
        d["metadata"]["name"]: d["spec"]["template"]["spec"]["containers"][0]
        for d in rendered.of_kind("Deployment")
    }


def deployment(rendered: Rendered, component: str) -> Manifest:
    found = [
        d
        for d in rendered.of_kind("Deployment")
        if d["metadata"]["labels"]["app.kubernetes.io/component"] == component
    ]
    assert len(found) == 1, f"expected one {component} Deployment, found {len(found)}"
    return found[0]


def with_values(base: dict[str, Any], **paths: Any) -> dict[str, Any]:
    """``base`` with dotted ``paths`` (``web__replicaCount=2`` means web.replicaCount) set."""
    values = copy.deepcopy(base)
    for dotted, value in paths.items():
        *parents, leaf = dotted.split("__")
        node = values
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return values


# -- lint and schemas ------------------------------------------------------------------------


def test_ci_values_cover_the_four_deployment_shapes() -> None:
    assert CI_FILES == ["existing-secrets", "ingress-on", "postgres-scaled", "sqlite-single"]


def test_app_version_is_the_project_version() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    metadata = chart_metadata()
    assert metadata["apiVersion"] == "v2"
    assert metadata["appVersion"] == pyproject["project"]["version"]


def test_postgresql_dependency_is_optional() -> None:
    (dependency,) = chart_metadata()["dependencies"]
    assert dependency["name"] == "postgresql"
    assert dependency["condition"] == "postgresql.enabled"
    assert dependency["repository"].startswith("oci://registry-1.docker.io/bitnamicharts")


@pytest.mark.parametrize("ci_file", CI_FILES)
def test_lint_strict(helm: ModuleType, chart: ChartRenderer, ci_file: str) -> None:
    report = helm.lint(
        CHART_DIR,
        chart.values(ci_file),
        strict=True,
        namespace=NAMESPACE,
        kube_version=LINT_KUBE_VERSION,
    )
    missing = [d["name"] for d in helm.dependency_list(CHART_DIR) if d["status"] == "missing"]
    expected = [MISSING_DEPENDENCY] if missing == ["postgresql"] else []
    findings = [m["error"] for m in report["messages"] if m["severity"] >= 2]
    assert findings == expected, report
    assert report["errors"] == expected, report


def test_lint_checks_the_values_it_is_given(helm: ModuleType) -> None:
    """Lint uses the values (here: the schema catches a typo). Helm's lint mode turns `fail`
    into a log line, so the guards are tested by rendering, below."""
    report = helm.lint(CHART_DIR, {"webb": {"replicaCount": 2}}, strict=True, namespace=NAMESPACE)
    assert any("additional properties 'webb'" in error for error in report["errors"]), report


@pytest.mark.parametrize("ci_file", CI_FILES)
def test_manifests_match_kubernetes_schemas(
    chart: ChartRenderer, kubernetes_validate: ModuleType, ci_file: str
) -> None:
    rendered = chart.render(chart.values(ci_file))
    versions = kube_versions(kubernetes_validate)
    problems: list[str] = []
    checked = 0
    for manifest in rendered.manifests:
        if (manifest["apiVersion"], manifest["kind"]) in CUSTOM_RESOURCES:
            continue
        for version in versions:
            try:
                kubernetes_validate.validate(manifest, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                where = "/".join(str(p) for p in exc.path)
                problems.append(f"{version} {manifest['kind']}: {where}: {exc.message}")
            except kubernetes_validate.SchemaNotFoundError as exc:
                problems.append(exc.message)
            checked += 1
    assert not problems, "\n".join(problems)
    assert checked >= 8 * len(versions)


def test_validator_rejects_unknown_fields(
    chart: ChartRenderer, kubernetes_validate: ModuleType
) -> None:
    """The schema check is live: a misspelt field in a rendered Deployment fails it."""
    manifest = copy.deepcopy(chart.render().of_kind("Deployment")[0])
    manifest["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(manifest, "1.33.0", strict=True)


@pytest.mark.parametrize(
    ("values", "path"),
    [
        ({"webb": {"replicaCount": 2}}, "additional properties 'webb'"),
        ({"web": {"replicas": 2}}, "/web"),
        ({"secrets": {"zammadToken": {"vaule": "x"}}}, "/secrets/zammadToken"),
        ({"config": {"leaseSecond": 5}}, "/config"),
        (
            {
                "instances": [
                    {"name": "main", "kind": "jira", "url": "https://x", "tokenSecret": "t"}
                ]
            },
            "/instances/0/kind",
        ),
        ({"persistence": {"accessModes": ["ReadWriteMany"]}}, "/persistence/accessModes/0"),
    ],
)
def test_schema_rejects_typos_and_bad_values(
    helm: ModuleType, chart: ChartRenderer, values: dict[str, Any], path: str
) -> None:
    with pytest.raises(helm.HelmValuesError, match=re.escape(path)):
        chart.render(values)


def test_schema_closes_every_section() -> None:
    """Unknown keys fail at the top and inside every section the chart owns (draft-07 schema,
    which every Helm 3.x and 4 validates)."""
    schema = json.loads((CHART_DIR / "values.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft7Validator.check_schema(schema)
    assert schema["additionalProperties"] is False
    open_on_purpose = {"global", "postgresql", "secrets"}  # dependency values; named secrets
    for key, section in schema["properties"].items():
        if "properties" in section and key not in open_on_purpose:
            assert section.get("additionalProperties") is False, key
    assert "additionalProperties" in schema["properties"]["secrets"]  # each entry is closed
    values = load_yaml((CHART_DIR / "values.yaml").read_text(encoding="utf-8"))
    jsonschema.Draft7Validator(schema).validate(values)


def test_every_value_is_documented() -> None:
    """Each leaf of values.yaml has a ``## @param`` line, and no @param names a missing key."""
    text = (CHART_DIR / "values.yaml").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\s*## @param (\S+)", text, flags=re.MULTILINE))

    def leaves(node: Any, prefix: str) -> list[str]:
        if isinstance(node, dict) and node and prefix not in documented:
            return [
                leaf
                for key, value in node.items()
                for leaf in leaves(value, f"{prefix}.{key}".lstrip("."))
            ]
        return [prefix]

    keys = leaves(load_yaml(text), "")
    assert sorted(set(keys) - documented) == []
    assert sorted(documented - set(keys)) == []


def test_connector_settings_defaults_are_the_connectors(chart: ChartRenderer) -> None:
    """config.* defaults in values.yaml are the connector's own (no silent drift)."""
    config = chart.chart.values["config"]
    defaults = Settings()
    for key, value in config.items():
        snake = re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()
        assert getattr(defaults, snake) == value, key
    settings_fields = set(Settings.model_fields) - {
        "database_url",
        "database_password",
        "mappings_dir",
        "admin_token",
        "instances",
        "backup_dir",  # backup.* below: the chart names the directory on its volume
        "backup_interval_hours",
        "backup_keep",
    }
    assert {re.sub(r"(?<!^)(?=[A-Z])", "_", k).lower() for k in config} == settings_fields
    backup = chart.chart.values["backup"]
    assert backup["intervalHours"] == defaults.backup_interval_hours
    assert backup["keep"] == defaults.backup_keep
    assert defaults.backup_dir is None
    assert backup["enabled"] is False


# -- what every deployment shape must have ---------------------------------------------------


@pytest.mark.parametrize("ci_file", CI_FILES)
def test_http_containers_have_probes(chart: ChartRenderer, ci_file: str) -> None:
    rendered = chart.render(chart.values(ci_file))
    serving = 0
    for name, container in app_containers(rendered).items():
        ports = {p["name"] for p in container.get("ports", [])}
        if not ports:
            continue
        serving += 1
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert container[probe]["httpGet"]["port"] in ports, (name, probe)
        if "http" in ports:
            assert container["livenessProbe"]["httpGet"]["path"] == "/healthz", name
            assert container["startupProbe"]["httpGet"]["path"] == "/healthz", name
            assert container["readinessProbe"]["httpGet"]["path"] == "/readyz", name
    assert serving == len(rendered.of_kind("Deployment"))


@pytest.mark.parametrize("ci_file", CI_FILES)
def test_every_pod_runs_locked_down(chart: ChartRenderer, ci_file: str) -> None:
    rendered = chart.render(chart.values(ci_file))
    specs = rendered.pod_specs()
    assert len(specs) >= 2
    for where, spec in specs.items():
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True, where
        assert pod["runAsUser"] == 10001, where
        assert pod["fsGroup"] == 10001, where
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, where
        assert spec["automountServiceAccountToken"] is False, where
        empty_dirs = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["runAsNonRoot"] is True, where
            assert context["runAsUser"] == 10001, where
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["capabilities"]["drop"] == ["ALL"], where
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}, where
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert mounts["/tmp"] in empty_dirs, where
            multiproc = env_of(container).get("PROMETHEUS_MULTIPROC_DIR")
            if multiproc is not None:
                assert mounts[multiproc] in empty_dirs, where


@pytest.mark.parametrize("ci_file", CI_FILES)
def test_container_args_are_real_cli_commands(chart: ChartRenderer, ci_file: str) -> None:
    """Every command line the chart runs parses with the connector's own argument parser."""
    parser = build_parser()
    for name, container in app_containers(chart.render(chart.values(ci_file))).items():
        args = container["args"]
        assert "command" not in container, f"{name} must keep the image's bitrix-sla entrypoint"
        try:
            parsed = parser.parse_args(args)
        except SystemExit:
            pytest.fail(f"{name}: bitrix-sla {' '.join(args)} does not parse")
        assert parsed.command in {"serve", "web", "worker"}
        level = chart.values(ci_file).get("logLevel", chart.chart.values["logLevel"])
        assert parsed.log_level == level.upper(), name  # every process logs at the chart's level
        if parsed.command in {"serve", "web"}:
            assert (parsed.host, parsed.port) == ("0.0.0.0", 8080), name


@pytest.mark.parametrize("ci_file", CI_FILES)
def test_settings_file_loads_in_the_connector(
    chart: ChartRenderer, ci_file: str, tmp_path: Path
) -> None:
    """The rendered settings.yaml is accepted by connector.settings, with every secret file that
    it names present in the pods' projected secrets volume."""
    values = chart.values(ci_file)
    rendered = chart.render(values)
    text = rendered.one("ConfigMap", f"{FULLNAME}-settings")["data"]["settings.yaml"]
    for name, container in app_containers(rendered).items():
        env = env_of(container)
        assert env["BITRIX_SLA_CONFIG"] == "/etc/bitrix-sla/settings/settings.yaml", name
        assert env["BITRIX_SLA_MAPPINGS"] == "/etc/bitrix-sla/mappings", name
    spec = rendered.pod_specs()[f"Deployment/{next(iter(app_containers(rendered)))}"]
    projected = {
        item["path"]
        for volume in spec["volumes"]
        if volume["name"] == "helpdesk-secrets"
        for source in volume["projected"]["sources"]
        for item in source["secret"]["items"]
    }
    named = set(re.findall(rf"{SECRETS_DIR}/(\S+)", text))
    assert named == projected
    for file_name in named:
        (tmp_path / file_name).write_text(f"value-of-{file_name}\n", encoding="utf-8")
    settings_file = tmp_path / "settings.yaml"
    settings_file.write_text(text.replace(SECRETS_DIR, str(tmp_path)), encoding="utf-8")
    settings = load_settings(environ={}, file=settings_file)
    assert [(i.kind, i.name) for i in settings.instances] == [
        (i["kind"], i["name"]) for i in values.get("instances", [])
    ]
    for instance, given in zip(settings.instances, values.get("instances", []), strict=True):
        assert instance.token is not None
        assert instance.token.get_secret_value() == f"value-of-{given['tokenSecret']}"


@pytest.mark.parametrize("ci_file", CI_FILES)
def test_standard_labels_and_selectors(chart: ChartRenderer, ci_file: str) -> None:
    rendered = chart.render(chart.values(ci_file))
    for manifest in rendered.manifests:
        labels = manifest["metadata"]["labels"]
        for key in ("name", "instance", "version", "managed-by", "part-of"):
            assert f"app.kubernetes.io/{key}" in labels, (manifest["kind"], key)
        assert labels["app.kubernetes.io/instance"] == RELEASE
    for kind in ("Deployment", "PodDisruptionBudget"):
        for manifest in rendered.of_kind(kind):
            selector = manifest["spec"]["selector"]["matchLabels"]
            targets = [
                d["spec"]["template"]["metadata"]["labels"]
                for d in rendered.of_kind("Deployment")
                if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
            ]
            assert len(targets) == 1, (kind, manifest["metadata"]["name"])
    service = rendered.one("Service", FULLNAME)
    http_pods = [
        d
        for d in rendered.of_kind("Deployment")
        if service["spec"]["selector"].items()
        <= d["spec"]["template"]["metadata"]["labels"].items()
    ]
    assert len(http_pods) == 1
    assert http_pods[0]["spec"]["template"]["spec"]["containers"][0]["args"][0] in {"serve", "web"}


@pytest.mark.parametrize("ci_file", CI_FILES)
def test_helm_test_pod_calls_healthz(chart: ChartRenderer, ci_file: str) -> None:
    rendered = chart.render(chart.values(ci_file))
    pod = rendered.one("Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    script = " ".join(pod["spec"]["containers"][0]["command"])
    service = rendered.one("Service", FULLNAME)
    assert f"http://{FULLNAME}:{service['spec']['ports'][0]['port']}" in script
    assert "/healthz" in script


# -- mappings ----------------------------------------------------------------------------------


def pod_annotations(rendered: Rendered) -> dict[str, dict[str, str]]:
    return {
        d["metadata"]["name"]: d["spec"]["template"]["metadata"]["annotations"]
        for d in rendered.of_kind("Deployment")
    }


def test_bundled_mappings_are_the_repositorys() -> None:
    bundled = {p.name: p.read_bytes() for p in (CHART_DIR / "files" / "mappings").glob("*.yaml")}
    shipped = {p.name: p.read_bytes() for p in (REPO / "mappings").glob("*.yaml")}
    assert bundled == shipped, "copy mappings/*.yaml to helm/bitrix-sla-connector/files/mappings/"
    load_mappings(CHART_DIR / "files" / "mappings")


def test_mappings_configmap_holds_the_files_verbatim(chart: ChartRenderer, tmp_path: Path) -> None:
    data = chart.render().one("ConfigMap", f"{FULLNAME}-mappings")["data"]
    for name, text in data.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    load_mappings(tmp_path)  # what the pods load from the mounted ConfigMap
    bundled = {
        p.name: p.read_text(encoding="utf-8")
        for p in (CHART_DIR / "files" / "mappings").glob("*.yaml")
    }
    assert data == bundled


@pytest.mark.parametrize(
    "text",
    [
        "  # edited by the SLA team\nlevels: {}\n",
        "\n\nlevels: {}\n",
        "levels: {}\n\n\n",
        "levels: {}",
        "levels: {}\r\nlevels_note: x\r\n",
        "levels: {}   \n\t# tab\n",
        "---\nlevels: {}\n...\n",
        "",
    ],
    ids=[
        "indented-first-line",
        "leading-blank-lines",
        "trailing-blank-lines",
        "no-final-newline",
        "crlf",
        "trailing-spaces-and-tab",
        "document-markers",
        "empty",
    ],
)
def test_mappings_files_render_whatever_their_text(chart: ChartRenderer, text: str) -> None:
    """A file given with ``--set-file mappings.files.<name>=...`` reaches the pods byte for byte,
    whatever its first line or its end looks like."""
    rendered = chart.render({"mappings": {"files": {"notes.yaml": text}}})
    assert rendered.one("ConfigMap", f"{FULLNAME}-mappings")["data"]["notes.yaml"] == text


def test_a_mappings_file_with_an_indented_header_still_loads(
    chart: ChartRenderer, tmp_path: Path
) -> None:
    levels = (CHART_DIR / "files" / "mappings" / "levels.yaml").read_text(encoding="utf-8")
    edited = "  # levels, edited by the SLA team\n" + levels
    rendered = chart.render({"mappings": {"files": {"levels.yaml": edited}}})
    data = rendered.one("ConfigMap", f"{FULLNAME}-mappings")["data"]
    assert data["levels.yaml"] == edited
    for name, text in data.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    load_mappings(tmp_path)


@pytest.mark.parametrize("ci_file", ["sqlite-single", "postgres-scaled"])
def test_checksum_rolls_pods_when_a_mapping_changes(chart: ChartRenderer, ci_file: str) -> None:
    values = chart.values(ci_file)
    levels = (CHART_DIR / "files" / "mappings" / "levels.yaml").read_text(encoding="utf-8")
    before = pod_annotations(chart.render(values))
    again = pod_annotations(chart.render(values))
    edited = with_values(
        values, mappings__files={"levels.yaml": levels.replace("hours: 3", "hours: 2", 1)}
    )
    rendered = chart.render(edited)
    after = pod_annotations(rendered)
    assert before == again
    assert before.keys() == after.keys()
    for name in before:
        assert after[name]["checksum/mappings"] != before[name]["checksum/mappings"], name
        assert after[name]["checksum/settings"] == before[name]["checksum/settings"], name
    data = rendered.one("ConfigMap", f"{FULLNAME}-mappings")["data"]
    assert "hours: 2" in data["levels.yaml"]
    assert set(data) == {p.name for p in (CHART_DIR / "files" / "mappings").glob("*.yaml")}


def test_settings_change_rolls_pods_too(chart: ChartRenderer) -> None:
    values = chart.values("postgres-scaled")
    before = pod_annotations(chart.render(values))
    after = pod_annotations(chart.render(with_values(values, config__maxAttempts=20)))
    for name in before:
        assert after[name]["checksum/settings"] != before[name]["checksum/settings"], name


def test_existing_mappings_configmap(chart: ChartRenderer) -> None:
    rendered = chart.render({"mappings": {"existingConfigMap": "our-sla-rules"}})
    assert not [
        m for m in rendered.of_kind("ConfigMap") if m["metadata"]["name"].endswith("-mappings")
    ]
    spec = rendered.pod_specs()[f"Deployment/{FULLNAME}"]
    (volume,) = [v for v in spec["volumes"] if v["name"] == "mappings"]
    assert volume["configMap"]["name"] == "our-sla-rules"


# -- SQLite: one pod, guarded ------------------------------------------------------------------


def test_sqlite_is_one_serve_pod_on_a_volume(chart: ChartRenderer) -> None:
    rendered = chart.render(chart.values("sqlite-single"))
    (server,) = rendered.of_kind("Deployment")
    assert server["spec"]["replicas"] == 1
    assert server["spec"]["strategy"] == {"type": "Recreate"}
    container = server["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][0] == "serve"
    assert env_of(container)["DATABASE_URL"] == "sqlite:////data/bitrix-sla.db"
    pvc = rendered.one("PersistentVolumeClaim")
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
    volumes = {v["name"]: v for v in server["spec"]["template"]["spec"]["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    claim = volumes[mounts["/data"]]["persistentVolumeClaim"]["claimName"]
    assert claim == pvc["metadata"]["name"]
    assert not rendered.of_kind("HorizontalPodAutoscaler")
    assert rendered.one("PodDisruptionBudget")["spec"]["maxUnavailable"] == 1
    # backup.enabled: the server's periodic thread backs up onto the same volume
    text = rendered.one("ConfigMap", f"{FULLNAME}-settings")["data"]["settings.yaml"]
    settings = load_yaml(text)
    assert settings["backup_dir"] == "/data/backups"
    assert (settings["backup_interval_hours"], settings["backup_keep"]) == (24, 5)


@pytest.mark.parametrize(
    ("component", "database"),
    [("server", {}), ("web", EXTERNAL_DATABASE), ("worker", EXTERNAL_DATABASE)],
    ids=["server", "web", "worker"],
)
@pytest.mark.parametrize(
    ("pdb", "budget"),
    [
        ({"maxUnavailable": 0}, {"maxUnavailable": 0}),
        ({"maxUnavailable": "0"}, {"maxUnavailable": 0}),
        ({"maxUnavailable": "25%"}, {"maxUnavailable": "25%"}),
        ({"maxUnavailable": ""}, {"maxUnavailable": 1}),
        ({"minAvailable": 0}, {"minAvailable": 0}),
        ({"minAvailable": 1, "maxUnavailable": 0}, {"minAvailable": 1}),
    ],
    ids=["max-0", "max-0-string", "max-percent", "max-empty", "min-0", "min-wins"],
)
def test_pdb_budget_takes_zero_as_a_value(
    chart: ChartRenderer,
    component: str,
    database: dict[str, Any],
    pdb: dict[str, Any],
    budget: dict[str, Any],
) -> None:
    """0 is a budget, not "unset": ``maxUnavailable: 0`` (no voluntary eviction) stays 0."""
    values: dict[str, Any] = {component: {"pdb": pdb}}
    if database:
        values["externalDatabase"] = database
    (manifest,) = [
        m
        for m in chart.render(values).of_kind("PodDisruptionBudget")
        if m["metadata"]["labels"]["app.kubernetes.io/component"] == component
    ]
    spec = manifest["spec"]
    assert {k: v for k, v in spec.items() if k != "selector"} == budget


def test_backups_are_refused_with_postgresql(helm: ModuleType, chart: ChartRenderer) -> None:
    values = with_values(chart.values("postgres-scaled"), backup__enabled=True)
    with pytest.raises(helm.HelmRenderError, match=r"backup\.enabled copies the SQLite store"):
        chart.render(values)


@pytest.mark.parametrize(
    ("setting", "named"),
    [
        ({"web__replicaCount": 2}, "web.replicaCount=2"),
        ({"worker__replicaCount": 3}, "worker.replicaCount=3"),
        ({"web__autoscaling": {"enabled": True}}, "web.autoscaling.enabled"),
        ({"worker__autoscaling": {"enabled": True}}, "worker.autoscaling.enabled"),
    ],
)
def test_sqlite_guard_refuses_more_than_one_pod(
    helm: ModuleType, chart: ChartRenderer, setting: dict[str, Any], named: str
) -> None:
    values = with_values(chart.values("sqlite-single"), **setting)
    with pytest.raises(helm.HelmRenderError, match="SQLite") as caught:
        chart.render(values)
    assert named in str(caught.value)


def test_two_databases_are_refused(helm: ModuleType, chart: ChartRenderer) -> None:
    values = with_values(chart.values("postgres-scaled"), postgresql__enabled=True)
    with pytest.raises(helm.HelmRenderError, match="choose ONE database"):
        chart.render(values)


def test_undefined_or_empty_secret_is_refused(helm: ModuleType, chart: ChartRenderer) -> None:
    values = chart.values("sqlite-single")
    missing = with_values(values, instances=[{**values["instances"][0], "tokenSecret": "nope"}])
    with pytest.raises(helm.HelmRenderError, match=r"tokenSecret refers to secrets\.nope"):
        chart.render(missing)
    empty = with_values(values, secrets__zammadToken={"value": ""})
    with pytest.raises(helm.HelmRenderError, match=r"secrets\.zammadToken has no value"):
        chart.render(empty)


# -- PostgreSQL: web + worker, scalable ------------------------------------------------------


def test_postgres_runs_web_and_worker_with_autoscalers(chart: ChartRenderer) -> None:
    rendered = chart.render(chart.values("postgres-scaled"))
    web, worker = deployment(rendered, "web"), deployment(rendered, "worker")
    assert len(rendered.of_kind("Deployment")) == 2
    web_container = web["spec"]["template"]["spec"]["containers"][0]
    worker_container = worker["spec"]["template"]["spec"]["containers"][0]
    assert web_container["args"][0] == "web"
    assert worker_container["args"][:1] == ["worker"]
    assert "--metrics-port" in worker_container["args"]
    for container in (web_container, worker_container):
        assert env_of(container)["DATABASE_URL"] == {
            "secretKeyRef": {"name": FULLNAME, "key": "databaseUrl"}
        }
    # Autoscaled: the HPA owns the replica count, starting from replicaCount.
    assert "replicas" not in web["spec"]
    assert "replicas" not in worker["spec"]
    hpas = {
        h["spec"]["scaleTargetRef"]["name"]: h["spec"]
        for h in rendered.of_kind("HorizontalPodAutoscaler")
    }
    assert hpas.keys() == {web["metadata"]["name"], worker["metadata"]["name"]}
    assert (
        hpas[web["metadata"]["name"]]["minReplicas"],
        hpas[web["metadata"]["name"]]["maxReplicas"],
    ) == (3, 8)
    assert (
        hpas[worker["metadata"]["name"]]["minReplicas"],
        hpas[worker["metadata"]["name"]]["maxReplicas"],
    ) == (2, 6)
    assert not rendered.of_kind("PersistentVolumeClaim")
    assert len(rendered.of_kind("PodDisruptionBudget")) == 2
    secret = rendered.one("Secret", FULLNAME)
    assert set(secret["data"]) == {
        "databaseUrl",
        "zammadToken",
        "zammadWebhookSecret",
        "znunyPassword",
        "znunyWebhookSecret",  # Znuny needs one: the file lacked it, so no pod could start
    }


def test_postgres_without_autoscaling_sets_the_replicas(chart: ChartRenderer) -> None:
    values = with_values(
        chart.values("postgres-scaled"),
        web__autoscaling={"enabled": False},
        worker__autoscaling={"enabled": False},
    )
    rendered = chart.render(values)
    assert deployment(rendered, "web")["spec"]["replicas"] == 3
    assert deployment(rendered, "worker")["spec"]["replicas"] == 2
    assert not rendered.of_kind("HorizontalPodAutoscaler")


def test_service_monitor_scrapes_web_and_workers(chart: ChartRenderer) -> None:
    rendered = chart.render(chart.values("postgres-scaled"))
    monitor = rendered.one("ServiceMonitor")
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["http", "metrics"]
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    selector = monitor["spec"]["selector"]["matchLabels"].items()
    ports = {
        p["name"]
        for s in rendered.of_kind("Service")
        if selector <= s["metadata"]["labels"].items()
        for p in s["spec"]["ports"]
    }
    assert ports == {"http", "metrics"}


def test_bundled_postgresql_builds_the_database_url(chart: ChartRenderer) -> None:
    rendered = chart.render({"postgresql": {"enabled": True}, "web": {"replicaCount": 2}})
    env = env_of(deployment(rendered, "worker")["spec"]["template"]["spec"]["containers"][0])
    assert env["BITRIX_SLA_DATABASE_PASSWORD"] == {
        "secretKeyRef": {"name": f"{RELEASE}-postgresql", "key": "password"}
    }
    # the password stays out of the URL (the connector escapes it): any character works
    assert (
        env["DATABASE_URL"]
        == f"postgresql+psycopg://bitrix_sla@{RELEASE}-postgresql:5432/bitrix_sla"
    )
    password = "gen/er@ted:%41"
    settings = load_settings(
        {"DATABASE_URL": env["DATABASE_URL"], "BITRIX_SLA_DATABASE_PASSWORD": password}
    )
    url = make_url(settings.database_url.get_secret_value())
    assert (url.password, url.host, url.database) == (
        password,
        f"{RELEASE}-postgresql",
        "bitrix_sla",
    )
    egress = rendered.one("NetworkPolicy")["spec"]["egress"]
    assert any(
        peer.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/name")
        == "postgresql"
        for rule in egress
        for peer in rule.get("to", [])
    )
    existing = chart.render(
        {"postgresql": {"enabled": True, "auth": {"existingSecret": "pg-auth"}}}
    )
    env = env_of(deployment(existing, "web")["spec"]["template"]["spec"]["containers"][0])
    assert env["BITRIX_SLA_DATABASE_PASSWORD"] == {
        "secretKeyRef": {"name": "pg-auth", "key": "password"}
    }


def test_an_external_database_password_can_stay_out_of_the_url(chart: ChartRenderer) -> None:
    """The chart README's recipe: the URL without a password, the password from a Secret."""
    password = {"secretKeyRef": {"name": "sla-db", "key": "password"}}
    rendered = chart.render(
        {
            "externalDatabase": {"url": "postgresql+psycopg://sla@db.example.com:5432/sla"},
            "extraEnv": [{"name": "BITRIX_SLA_DATABASE_PASSWORD", "valueFrom": password}],
        }
    )
    for name, container in app_containers(rendered).items():
        env = env_of(container)
        assert env["BITRIX_SLA_DATABASE_PASSWORD"] == password, name
        assert "DATABASE_URL" in env, name
    url = base64.b64decode(rendered.one("Secret")["data"]["databaseUrl"]).decode()
    assert url == "postgresql+psycopg://sla@db.example.com:5432/sla"
    settings = load_settings({"DATABASE_URL": url, "BITRIX_SLA_DATABASE_PASSWORD": "p@ss/%41"})
    assert make_url(settings.database_url.get_secret_value()).password == "p@ss/%41"


# -- secrets -------------------------------------------------------------------------------------


def test_existing_secrets_are_referenced_and_never_rendered(chart: ChartRenderer) -> None:
    rendered = chart.render(chart.values("existing-secrets"))
    assert not rendered.of_kind("Secret")
    for name, container in app_containers(rendered).items():
        env = env_of(container)
        assert env["DATABASE_URL"] == {"secretKeyRef": {"name": "sla-database", "key": "url"}}, name
        assert env["BITRIX_SLA_ADMIN_TOKEN"] == {
            "secretKeyRef": {"name": "sla-admin", "key": "token"}
        }
    for name, pod in pod_annotations(rendered).items():
        assert "checksum/secret" not in pod, name
    spec = deployment(rendered, "worker")["spec"]["template"]["spec"]
    (volume,) = [v for v in spec["volumes"] if v["name"] == "helpdesk-secrets"]
    sources = [
        (s["secret"]["name"], item["key"], item["path"])
        for s in volume["projected"]["sources"]
        for item in s["secret"]["items"]
    ]
    assert sorted(sources) == [
        ("zammad-credentials", "api-token", "zammadToken"),
        ("zammad-credentials", "webhook-secret", "zammadWebhookSecret"),
    ]


def test_chart_secret_holds_only_chart_managed_values(chart: ChartRenderer) -> None:
    rendered = chart.render(chart.values("sqlite-single"))
    secret = rendered.one("Secret", FULLNAME)
    assert set(secret["data"]) == {"adminToken", "zammadToken", "zammadWebhookSecret"}
    for config_map in rendered.of_kind("ConfigMap"):
        for text in config_map["data"].values():
            assert "ci-zammad-token" not in text


def option_secret_values(**secrets: Any) -> dict[str, Any]:
    """A Zammad and a Znuny whose secret options come from ``secrets`` (keys under it)."""
    return {
        "instances": [
            {
                "name": "main",
                "kind": "zammad",
                "url": "https://helpdesk.example.com",
                "tokenSecret": "zammadToken",
                "webhookSecretSecret": "zammadWebhookSecret",
                "options": {"webhook_basic_user": "zammad"},
                "optionSecrets": {"webhook_basic_password": "zammadBasicPassword"},
            },
            {
                "name": "legacy",
                "kind": "znuny",
                "url": "https://otrs.example.com/otrs",
                "tokenSecret": "znunyToken",
                "webhookSecretSecret": "znunyWebhookSecret",
                "options": {"user_login": "sla-connector"},
                "optionSecrets": {"password": "znunyAgentPassword"},
            },
        ],
        "secrets": {
            "zammadToken": {"value": "ci-zammad-token"},
            "zammadWebhookSecret": {"value": "ci-zammad-webhook-secret"},
            "zammadBasicPassword": {"value": "ci-zammad-basic-password"},
            "znunyToken": {"value": "ci-znuny-token"},
            "znunyWebhookSecret": {"value": "ci-znuny-webhook-secret"},
            "znunyAgentPassword": {"value": "ci-znuny-agent-password"},
            **secrets,
        },
    }


def test_option_secrets_reach_the_adapters_as_files(chart: ChartRenderer, tmp_path: Path) -> None:
    """``instances[].optionSecrets`` keeps option secrets (Zammad's webhook password, Znuny's
    agent password) out of the ConfigMap: they are mounted like the tokens and named by
    ``options.<key>_file``, which the adapters read."""
    rendered = chart.render(option_secret_values())
    for config_map in rendered.of_kind("ConfigMap"):
        for text in config_map["data"].values():
            assert "basic-password" not in text
            assert "agent-password" not in text
    secret = rendered.one("Secret", FULLNAME)["data"]
    assert base64.b64decode(secret["znunyAgentPassword"]) == b"ci-znuny-agent-password"
    text = rendered.one("ConfigMap", f"{FULLNAME}-settings")["data"]["settings.yaml"]
    written = {i["name"]: i["options"] for i in load_yaml(text)["instances"]}
    assert written == {
        "main": {
            "webhook_basic_user": "zammad",
            "webhook_basic_password_file": f"{SECRETS_DIR}/zammadBasicPassword",
        },
        "legacy": {
            "user_login": "sla-connector",
            "password_file": f"{SECRETS_DIR}/znunyAgentPassword",
        },
    }
    spec = rendered.pod_specs()[f"Deployment/{FULLNAME}"]
    (volume,) = [v for v in spec["volumes"] if v["name"] == "helpdesk-secrets"]
    projected = {
        item["path"]: base64.b64decode(secret[item["key"]]).decode()
        for source in volume["projected"]["sources"]
        for item in source["secret"]["items"]
    }
    assert set(re.findall(rf"{SECRETS_DIR}/(\S+)", text)) == set(projected)
    for name, value in projected.items():
        (tmp_path / name).write_text(f"{value}\n", encoding="utf-8")
    settings_file = tmp_path / "settings.yaml"
    settings_file.write_text(text.replace(SECRETS_DIR, str(tmp_path)), encoding="utf-8")
    main, legacy = load_settings(environ={}, file=settings_file).instances
    basic = zammad_options(main, environ={}).webhook_basic_password
    assert basic is not None and basic.get_secret_value() == "ci-zammad-basic-password"
    agent = znuny_options(legacy, environ={}).password
    assert agent.get_secret_value() == "ci-znuny-agent-password"


def test_option_secrets_from_an_existing_secret(chart: ChartRenderer) -> None:
    existing = {"useExisting": True, "secretName": "znuny-agent", "secretKey": "password"}
    rendered = chart.render(option_secret_values(znunyAgentPassword=existing))
    assert "znunyAgentPassword" not in rendered.one("Secret", FULLNAME)["data"]
    spec = rendered.pod_specs()[f"Deployment/{FULLNAME}"]
    (volume,) = [v for v in spec["volumes"] if v["name"] == "helpdesk-secrets"]
    sources = {
        item["path"]: (source["secret"]["name"], item["key"])
        for source in volume["projected"]["sources"]
        for item in source["secret"]["items"]
    }
    assert sources["znunyAgentPassword"] == ("znuny-agent", "password")


@pytest.mark.parametrize(
    ("index", "key"),
    [(0, "webhook_basic_password"), (0, "webhook_bearer_token"), (1, "password")],
)
def test_inline_secret_options_are_refused(
    helm: ModuleType, chart: ChartRenderer, index: int, key: str
) -> None:
    """A secret option written under ``options`` would land in the settings ConfigMap."""
    values = option_secret_values()
    values["instances"][index]["options"][key] = "inline-secret"
    values["instances"][index]["optionSecrets"] = {}
    with pytest.raises(helm.HelmRenderError, match="would write a secret into a ConfigMap") as e:
        chart.render(values)
    assert f"instances[{index}].optionSecrets.{key}" in str(e.value)


@pytest.mark.parametrize("variant", ["password_env", "password_file"])
def test_an_option_secret_given_twice_is_refused(
    helm: ModuleType, chart: ChartRenderer, variant: str
) -> None:
    values = option_secret_values()
    values["instances"][1]["options"][variant] = "/somewhere/else"
    with pytest.raises(helm.HelmRenderError, match=rf"options\.{variant} and optionSecrets\."):
        chart.render(values)


def test_option_secret_must_name_a_defined_secret(helm: ModuleType, chart: ChartRenderer) -> None:
    values = option_secret_values()
    values["instances"][1]["optionSecrets"] = {"password": "nope"}
    with pytest.raises(
        helm.HelmRenderError,
        match=r"instances\[1\]\.optionSecrets\.password refers to secrets\.nope",
    ):
        chart.render(values)
    values = option_secret_values(znunyAgentPassword={"value": ""})
    with pytest.raises(helm.HelmRenderError, match=r"secrets\.znunyAgentPassword has no value"):
        chart.render(values)


# -- traffic -------------------------------------------------------------------------------------


def test_ingress_publishes_webhooks_over_tls(chart: ChartRenderer) -> None:
    rendered = chart.render(chart.values("ingress-on"))
    ingress = rendered.one("Ingress")
    (rule,) = ingress["spec"]["rules"]
    (path,) = rule["http"]["paths"]
    assert (rule["host"], path["path"]) == ("sla.example.com", "/webhooks")
    assert path["backend"]["service"] == {"name": FULLNAME, "port": {"name": "http"}}
    assert ingress["spec"]["tls"][0]["hosts"] == ["sla.example.com"]
    assert "https://sla.example.com/webhooks/znuny/support" in rendered.notes


def test_network_policy(chart: ChartRenderer) -> None:
    rendered = chart.render(chart.values("ingress-on"))
    policy = rendered.one("NetworkPolicy")["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    webhooks = policy["ingress"][0]
    assert webhooks["ports"] == [{"port": 8080, "protocol": "TCP"}]
    peers = webhooks["from"]
    assert {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}
    } in peers
    test_pod = rendered.one("Pod")["metadata"]["labels"]
    assert any(
        p.get("podSelector", {}).get("matchLabels", {}).items() <= test_pod.items()
        for p in peers
        if "podSelector" in p
    )
    egress_ports = {
        (p["port"], p["protocol"]) for rule in policy["egress"] for p in rule.get("ports", [])
    }
    assert {(53, "UDP"), (53, "TCP"), (443, "TCP")} <= egress_ports
    assert (5432, "TCP") not in egress_ports  # SQLite: no database server to reach
    scaled = chart.render(chart.values("postgres-scaled")).one("NetworkPolicy")["spec"]
    database = [
        r for r in scaled["egress"] if {"port": 5432, "protocol": "TCP"} in r.get("ports", [])
    ]
    assert database == [
        {
            "ports": [{"port": 5432, "protocol": "TCP"}],
            "to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}],
        }
    ]


def ingress_peers(rendered: Rendered) -> dict[int, Any]:
    """What the NetworkPolicy admits per port: ``ANYONE``, or the list of allowed peers (the
    union over every rule naming the port, as Kubernetes ORs the rules)."""
    admitted: dict[int, Any] = {}
    for rule in rendered.one("NetworkPolicy")["spec"]["ingress"]:
        for port in rule["ports"]:
            if admitted.get(port["port"]) == ANYONE:
                continue
            if "from" not in rule:
                admitted[port["port"]] = ANYONE
            else:
                admitted.setdefault(port["port"], []).extend(rule["from"])
    return admitted


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_ingress_from_closes_the_http_port_whatever_metrics_from_says(
    chart: ChartRenderer, database: str
) -> None:
    """8080 serves /webhooks and /admin as well as /metrics: once ingressFrom is set, only
    ingressFrom, the `helm test` pod and metricsFrom (when set) reach it, in both shapes."""
    base: dict[str, Any] = {"networkPolicy": {"ingressFrom": [INGRESS_NGINX]}}
    if database == "postgresql":
        base["externalDatabase"] = EXTERNAL_DATABASE
    test_pod = {
        "podSelector": {
            "matchLabels": {
                "app.kubernetes.io/name": "bitrix-sla-connector",
                "app.kubernetes.io/instance": RELEASE,
                "app.kubernetes.io/component": "test",
            }
        }
    }
    closed = ingress_peers(chart.render(base))
    assert closed[8080] == [INGRESS_NGINX, test_pod]
    scraped = ingress_peers(
        chart.render(with_values(base, networkPolicy__metricsFrom=[MONITORING]))
    )
    assert scraped[8080] == [INGRESS_NGINX, test_pod, MONITORING]
    if database == "postgresql":
        assert closed[9102] == ANYONE  # metricsFrom empty: anyone, on the metrics-only port
        assert scraped[9102] == [MONITORING]
    else:
        assert closed.keys() == scraped.keys() == {8080}  # no worker metrics port


def test_worker_metrics_port_follows_metrics_from_alone(chart: ChartRenderer) -> None:
    """Without ingressFrom 8080 is open to anyone; the worker's port has its own rule, and none
    when the worker serves no metrics."""
    base = {"externalDatabase": EXTERNAL_DATABASE}
    assert ingress_peers(chart.render(base)) == {8080: ANYONE, 9102: ANYONE}
    limited = chart.render(with_values(base, networkPolicy__metricsFrom=[MONITORING]))
    assert ingress_peers(limited) == {8080: ANYONE, 9102: [MONITORING]}
    moved = chart.render(with_values(base, metrics__workerPort=9200))
    assert ingress_peers(moved) == {8080: ANYONE, 9200: ANYONE}
    off = chart.render(with_values(base, metrics__enabled=False))
    assert ingress_peers(off) == {8080: ANYONE}


def test_notes_warn_when_prometheus_cannot_reach_the_http_port(chart: ChartRenderer) -> None:
    warning = "add your Prometheus to networkPolicy.metricsFrom"
    closed = chart.render({"networkPolicy": {"ingressFrom": [INGRESS_NGINX]}})
    assert warning in " ".join(closed.notes.split())
    assert warning not in " ".join(chart.render(chart.values("ingress-on")).notes.split())
    assert warning not in " ".join(chart.render().notes.split())


def test_notes_give_webhook_urls_and_setup_commands(chart: ChartRenderer) -> None:
    notes = chart.render(chart.values("sqlite-single")).notes
    assert f"http://{FULLNAME}.{NAMESPACE}.svc:80/webhooks/zammad/main" in notes
    assert f"exec deploy/{FULLNAME} -- bitrix-sla setup zammad --instance main --apply" in notes
    scaled = chart.render(chart.values("postgres-scaled")).notes
    assert f"exec deploy/{FULLNAME}-web -- bitrix-sla setup znuny --instance legacy" in scaled


def test_defaults_render_an_idle_sqlite_install(chart: ChartRenderer) -> None:
    rendered = chart.render()
    kinds = sorted({m["kind"] for m in rendered.manifests})
    assert kinds == [
        "ConfigMap",
        "Deployment",
        "NetworkPolicy",
        "PersistentVolumeClaim",
        "Pod",
        "PodDisruptionBudget",
        "Service",
        "ServiceAccount",
    ]
    assert "no helpdesk is configured yet" in rendered.notes
    settings = yaml.safe_load(
        rendered.one("ConfigMap", f"{FULLNAME}-settings")["data"]["settings.yaml"]
    )
    assert settings["instances"] == []


@pytest.mark.parametrize("ci_file", CI_FILES)
def test_every_ci_values_file_starts_a_connector(
    chart: ChartRenderer, ci_file: str, tmp_path: Path
) -> None:
    """The settings each ci/*-values.yaml renders load, and every helpdesk instance in them
    builds its adapter: the options the chart writes are the options the adapters take (one
    file once gave a Znuny instance ``user:``, which no Znuny adapter accepts). Mounted secrets
    are stood in for by ASCII files of the same names."""
    rendered = chart.render(chart.values(ci_file))
    text = rendered.one("ConfigMap", f"{FULLNAME}-settings")["data"]["settings.yaml"]
    for name in set(re.findall(rf"{SECRETS_DIR}/([\w.-]+)", text)):
        (tmp_path / name).write_text(f"ci-{name}-value\n", encoding="utf-8")
    settings_file = tmp_path / "settings.yaml"
    settings_file.write_text(text.replace(SECRETS_DIR, str(tmp_path)), encoding="utf-8")
    database = {"DATABASE_URL": f"sqlite:///{tmp_path / 'sla.db'}"}
    settings = load_settings(environ=database, file=settings_file)
    assert settings.instances
    for instance in settings.instances:
        registry_build(instance)  # raises ConfigError naming the option it refuses
