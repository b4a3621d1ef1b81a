"""The container image and the single-VM systemd unit, tested without a container engine.

The Dockerfile cannot be built here, so what can be checked is checked: it parses into the
expected stages and instructions; the builder's build context really builds the wheel it
installs (same files, ``pip wheel --no-deps``), with the ``bitrix-sla`` console script; the
mappings the runtime stage copies are valid; the commands the image runs exist; the HEALTHCHECK
command works against a live /healthz. The systemd unit is checked with ``systemd-analyze
verify`` and its command line with the connector's own argument parser.
"""

from __future__ import annotations

import fnmatch
import http.server
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from connector.cli import build_parser
from connector.logs import LEVEL_VARIABLE
from connector.mappings import load_mappings
from connector.settings import _ENV_KEYS
from tests.deploy.conftest import REPO, unavailable

DOCKERFILE = REPO / "Dockerfile"
UNIT = REPO / "deploy" / "systemd" / "bitrix-sla.service"
BACKUP_UNIT = REPO / "deploy" / "systemd" / "bitrix-sla-backup.service"
BACKUP_TIMER = REPO / "deploy" / "systemd" / "bitrix-sla-backup.timer"
ENV_EXAMPLE = REPO / "deploy" / "systemd" / "bitrix-sla.env.example"
CONSOLE_SCRIPT = Path(sys.executable).parent / "bitrix-sla"
UID = "10001"


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [arguments for kw, arguments in self.instructions if kw == keyword]

    def last(self, keyword: str) -> str:
        found = self.all(keyword)
        assert found, f"stage {self.name} has no {keyword}"
        return found[-1]

    def env(self) -> dict[str, str]:
        pairs: dict[str, str] = {}
        for arguments in self.all("ENV"):
            for word in shlex.split(arguments):
                key, _, value = word.partition("=")
                pairs[key] = value
        return pairs

    def copies(self) -> list[tuple[list[str], str]]:
        """``COPY`` sources and destination from the build context (not ``--from``)."""
        found = []
        for arguments in self.all("COPY"):
            words = shlex.split(arguments)
            if any(w.startswith("--from") for w in words):
                continue
            paths = [w for w in words if not w.startswith("--")]
            found.append((paths[:-1], paths[-1]))
        return found


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ``ARG`` defaults and the stages, with continuation lines joined."""
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    assert not pending, "a continuation line runs off the end of the Dockerfile"
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in lines:
        keyword, _, arguments = line.partition(" ")
        keyword, arguments = keyword.upper(), " ".join(arguments.split())
        if keyword == "FROM":
            match = re.fullmatch(r"(\S+) AS (\S+)", arguments, flags=re.IGNORECASE)
            assert match, f"every stage is named: FROM {arguments}"
            stages.append(Stage(name=match.group(2), base=match.group(1)))
        elif not stages:
            assert keyword == "ARG", f"{keyword} before the first FROM"
            name, _, default = arguments.partition("=")
            args[name] = default
        else:
            stages[-1].instructions.append((keyword, arguments))
    return args, stages


@pytest.fixture(scope="module")
def dockerfile() -> tuple[dict[str, str], dict[str, Stage]]:
    args, stages = parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))
    return args, {s.name: s for s in stages}


def dockerignored(path: str) -> bool:
    """Whether ``.dockerignore`` keeps ``path`` (or a parent of it) out of the build context.

    Docker's rules in short: patterns in order, the last one that matches wins, ``!`` re-includes,
    a pattern matching a directory covers everything below it.
    """
    rules = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    parts = Path(path).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for rule in rules:
        negated = rule.startswith("!")
        pattern = rule.removeprefix("!").rstrip("/")
        anywhere = pattern.startswith("**/")
        pattern = pattern.removeprefix("**/")
        for prefix in prefixes:
            if fnmatch.fnmatchcase(Path(prefix).name if anywhere else prefix, pattern):
                ignored = not negated
                break
    return ignored


# -- the Dockerfile ------------------------------------------------------------------------------


def test_two_stages_on_slim_python_311(dockerfile: tuple[dict[str, str], dict[str, Stage]]) -> None:
    args, stages = dockerfile
    assert list(stages) == ["builder", "runtime"]
    for stage in stages.values():
        assert stage.base == "${PYTHON_IMAGE}"
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", args["PYTHON_IMAGE"])


def test_builder_makes_the_wheels(dockerfile: tuple[dict[str, str], dict[str, Stage]]) -> None:
    builder = dockerfile[1]["builder"]
    assert re.fullmatch(r"pip wheel --wheel-dir /wheels \.", builder.last("RUN"))


def test_runtime_installs_the_wheel_offline(
    dockerfile: tuple[dict[str, str], dict[str, Stage]],
) -> None:
    runtime = dockerfile[1]["runtime"]
    (install,) = [r for r in runtime.all("RUN") if "pip install" in r]
    assert "from=builder,source=/wheels" in install
    assert "--no-index --find-links=/wheels bitrix-sla-connector" in install


def test_runtime_runs_as_a_fixed_non_root_user(
    dockerfile: tuple[dict[str, str], dict[str, Stage]],
) -> None:
    runtime = dockerfile[1]["runtime"]
    assert runtime.last("USER") == f"{UID}:{UID}"
    (account,) = [r for r in runtime.all("RUN") if "useradd" in r]
    assert f"--gid {UID}" in account
    assert f"--uid {UID}" in account
    assert f"chown {UID}:{UID} /data" in account
    # USER comes after every RUN, so nothing at run time is root's.
    keywords = [kw for kw, _ in runtime.instructions]
    assert keywords.index("USER") > max(i for i, kw in enumerate(keywords) if kw == "RUN")


def test_runtime_environment_and_entrypoint(
    dockerfile: tuple[dict[str, str], dict[str, Stage]],
) -> None:
    runtime = dockerfile[1]["runtime"]
    env = runtime.env()
    assert env["DATABASE_URL"] == "sqlite:////data/bitrix-sla.db"
    assert env["BITRIX_SLA_MAPPINGS"] == "/app/mappings"
    assert (["mappings/"], "/app/mappings/") in runtime.copies()
    assert json.loads(runtime.last("VOLUME")) == ["/data"]
    assert runtime.last("EXPOSE") == "8080"
    assert json.loads(runtime.last("ENTRYPOINT")) == ["bitrix-sla"]
    assert json.loads(runtime.last("CMD")) == ["web"]
    # Nothing the image needs at run time is written outside /data and /tmp: with
    # PROMETHEUS_MULTIPROC_DIR unset, `web` creates its multiprocess directory under /tmp.
    assert "PROMETHEUS_MULTIPROC_DIR" not in env
    assert env["HOME"] == "/tmp"


def test_healthcheck_uses_python_not_curl(
    dockerfile: tuple[dict[str, str], dict[str, Stage]],
) -> None:
    healthcheck = dockerfile[1]["runtime"].last("HEALTHCHECK")
    assert "CMD" in healthcheck
    command = json.loads(healthcheck.split(" CMD ", 1)[1])
    assert command[:2] == ["python", "-c"]
    assert "http://127.0.0.1:8080/healthz" in command[2]
    assert "curl" not in DOCKERFILE.read_text(encoding="utf-8")


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()
        self.wfile.write(b'{"status": "ok"}')

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def health_server() -> Iterator[tuple[str, type[_Health]]]:
    handler = type("Handler", (_Health,), {"status": 200})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", handler
    server.shutdown()
    server.server_close()
    thread.join()


def test_healthcheck_command_passes_and_fails(
    dockerfile: tuple[dict[str, str], dict[str, Stage]],
    health_server: tuple[str, type[_Health]],
) -> None:
    healthcheck = dockerfile[1]["runtime"].last("HEALTHCHECK")
    command = json.loads(healthcheck.split(" CMD ", 1)[1])
    base, handler = health_server

    def run(url: str) -> int:
        env = {**os.environ, "BITRIX_SLA_HEALTHCHECK_URL": url}
        return subprocess.run(
            [sys.executable, *command[1:]], env=env, timeout=30, capture_output=True
        ).returncode

    assert run(f"{base}/healthz") == 0
    handler.status = 503
    assert run(f"{base}/healthz") != 0


def test_build_context_holds_every_copied_file(
    dockerfile: tuple[dict[str, str], dict[str, Stage]],
) -> None:
    for stage in dockerfile[1].values():
        for sources, _ in stage.copies():
            for source in sources:
                assert (REPO / source).exists(), source
                assert not dockerignored(source), f".dockerignore drops {source}"
    assert dockerignored(".venv/bin/python")
    assert dockerignored("tests/test_cli.py")
    assert dockerignored("connector/__pycache__/cli.cpython-311.pyc")


def test_wheel_builds_from_the_builder_context(
    dockerfile: tuple[dict[str, str], dict[str, Stage]], tmp_path: Path
) -> None:
    """Exactly what the builder stage copies builds the wheel the runtime stage installs."""
    context = tmp_path / "src"
    context.mkdir()
    for sources, destination in dockerfile[1]["builder"].copies():
        for source in sources:
            target = context / (
                destination if destination not in {".", "./"} else Path(source).name
            )
            if (REPO / source).is_dir():
                shutil.copytree(REPO / source, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(REPO / source, target)
    out = tmp_path / "wheels"
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--quiet",
            "--wheel-dir",
            str(out),
            str(context),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"},
    )
    assert build.returncode == 0, build.stderr[-3000:]
    (wheel,) = out.glob("bitrix_sla_connector-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        scripts = archive.read(entry_points).decode()
    assert re.search(r"^bitrix-sla = connector\.cli:main$", scripts, flags=re.MULTILINE)
    assert {
        "connector/cli.py",
        "connector/cli_service.py",
        "webhooks/wsgi.py",
        "connector/py.typed",
    } <= names
    # The mappings are not in the wheel: the runtime stage copies them next to it.
    assert not [n for n in names if n.startswith("mappings/")]


def test_mappings_copied_into_the_image_are_valid() -> None:
    mappings = load_mappings(REPO / "mappings")
    assert mappings.directory == REPO / "mappings"


@pytest.mark.parametrize(
    ("command", "flags"),
    [
        ("web", ["--host", "--port", "--workers", "--grace", "--config"]),
        ("worker", ["--metrics-port", "--concurrency", "--grace", "--log-level", "--config"]),
        ("serve", ["--host", "--port", "--grace", "--log-level", "--config"]),
    ],
)
def test_image_commands_exist(command: str, flags: list[str]) -> None:
    if not CONSOLE_SCRIPT.exists():
        unavailable(f"the bitrix-sla console script is not installed at {CONSOLE_SCRIPT}")
    shown = subprocess.run(
        [str(CONSOLE_SCRIPT), command, "--help"], capture_output=True, text=True, timeout=60
    )
    assert shown.returncode == 0, shown.stderr
    for flag in flags:
        assert flag in shown.stdout, (command, flag)


# -- single VM: systemd --------------------------------------------------------------------------


def unit_entries(unit: Path = UNIT) -> list[tuple[str, str, str]]:
    """(section, key, value) of a unit file, in order (keys may repeat)."""
    entries: list[tuple[str, str, str]] = []
    section = ""
    for raw in unit.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        entries.append((section, key, value))
    return entries


@pytest.mark.parametrize("units", [(UNIT,), (BACKUP_UNIT, BACKUP_TIMER)], ids=["serve", "backup"])
def test_systemd_units_verify(tmp_path: Path, units: tuple[Path, ...]) -> None:
    """``systemd-analyze verify`` accepts the units (with ExecStart pointed at this venv)."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        unavailable("systemd-analyze is not installed")
    if not CONSOLE_SCRIPT.exists():
        unavailable(f"the bitrix-sla console script is not installed at {CONSOLE_SCRIPT}")
    for source in units:
        (tmp_path / source.name).write_text(
            source.read_text(encoding="utf-8").replace(
                "/opt/bitrix-sla/venv/bin/bitrix-sla", str(CONSOLE_SCRIPT)
            ),
            encoding="utf-8",
        )
    checked = subprocess.run(
        [analyze, "verify", "--man=no", *(str(tmp_path / unit.name) for unit in units)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stderr
    assert checked.stderr.strip() == ""


def test_systemd_backup_copies_the_services_database_into_its_state_directory() -> None:
    """The nightly backup reads the database the service writes, as the same user, and keeps
    a bounded number of backups in a directory systemd creates for it."""
    service = {k: v for section, k, v in unit_entries() if section == "Service"}
    entries = unit_entries(BACKUP_UNIT)
    job = {key: value for section, key, value in entries if section == "Service"}

    def environment(of: list[tuple[str, str, str]]) -> dict[str, str]:
        pairs = (value.partition("=") for _, key, value in of if key == "Environment")
        return {name: value for name, _, value in pairs}

    assert environment(entries)["DATABASE_URL"] == environment(unit_entries())["DATABASE_URL"]
    assert (job["User"], job["EnvironmentFile"]) == (service["User"], service["EnvironmentFile"])
    executable, *argv = shlex.split(job["ExecStart"])
    assert executable == "/opt/bitrix-sla/venv/bin/bitrix-sla"
    args = build_parser().parse_args(argv)
    assert (args.command, args.action, args.keep) == ("db", "backup", 7)
    directories = job["StateDirectory"].split()
    assert service["StateDirectory"] in directories
    assert args.destination in {f"/var/lib/{name}" for name in directories}
    assert args.destination != "/var/lib/bitrix-sla"
    timer = {key: value for section, key, value in unit_entries(BACKUP_TIMER)}
    assert timer["Persistent"] == "yes"
    assert timer["WantedBy"] == "timers.target"


def test_systemd_unit_serves_sqlite_in_one_process() -> None:
    entries = unit_entries()
    service = {key: value for section, key, value in entries if section == "Service"}
    environment = dict(
        value.partition("=")[::2]
        for section, key, value in entries
        if section == "Service" and key == "Environment"
    )
    assert service["User"] == "bitrix-sla"
    assert service["StateDirectory"] == "bitrix-sla"
    assert environment["DATABASE_URL"] == "sqlite:////var/lib/bitrix-sla/bitrix-sla.db"
    command = re.sub(r"\$\{(\w+)\}", lambda m: environment[m.group(1)], service["ExecStart"])
    executable, *argv = shlex.split(command)
    assert executable == "/opt/bitrix-sla/venv/bin/bitrix-sla"
    args = build_parser().parse_args(argv)
    assert (args.command, args.host, args.port) == ("serve", "127.0.0.1", 8080)
    assert float(service["TimeoutStopSec"]) > args.grace
    pre = shlex.split(service["ExecStartPre"])
    assert build_parser().parse_args(pre[1:]).command == "check-config"
    # reload: the mappings are checked first, and only then is the service told to reread them
    check, hup = (shlex.split(v) for s, k, v in entries if s == "Service" and k == "ExecReload")
    assert build_parser().parse_args(check[1:]).command == "check-config"
    assert hup == ["/bin/kill", "-HUP", "$MAINPID"]


def test_systemd_environment_example_names_only_known_variables() -> None:
    text = ENV_EXAMPLE.read_text(encoding="utf-8")
    names = set(re.findall(r"^#?([A-Z][A-Z0-9_]+)=", text, flags=re.MULTILINE))
    unit_defaults = {
        value.partition("=")[0] for section, key, value in unit_entries() if key == "Environment"
    }
    referenced = set(re.findall(r"_env: ([A-Z][A-Z0-9_]+)", text))  # token_env / webhook_secret_env
    known = set(_ENV_KEYS) | {"BITRIX_SLA_CONFIG", LEVEL_VARIABLE} | unit_defaults | referenced
    assert sorted(names - known) == []
    assert {"DATABASE_URL", "BITRIX_SLA_CONFIG", "BITRIX_SLA_MAPPINGS"} <= names
