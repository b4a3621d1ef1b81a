"""Run a ``bitrix-sla`` command as a real process for a test, and always clean it up."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

ROOT = Path(__file__).resolve().parents[1]
URL = re.compile(r"http://[\d.]+:\d+")


@contextmanager
def bitrix_sla(
    *argv: str, env: Mapping[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """Start ``bitrix-sla ARGV``; yield the process and the URL its first line announces.

    The command must print ``... http://HOST:PORT`` first (serve: "listening on", worker:
    "status on"). On leaving, a process still running is killed and its pipes closed.
    """
    process = spawn(*argv, env=env)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = URL.search(line)
        assert match, line + (process.stderr.read() if process.stderr else "")
        yield process, match.group(0)
    finally:
        reap(process)


def free_port() -> int:
    """A loopback port nobody listens on now (the OS's pick; free until someone binds it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def spawn(
    *argv: str, env: Mapping[str, str] | None = None, stdout: int = subprocess.PIPE
) -> subprocess.Popen[str]:
    """Start ``bitrix-sla ARGV`` from the repository root, its stderr piped as text."""
    return subprocess.Popen(
        [sys.executable, "-m", "connector.cli", *argv],
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=dict(env) if env is not None else None,
    )


def reap(process: subprocess.Popen[str]) -> None:
    """Kill ``process`` if it is still running, wait for it, and close its pipes."""
    if process.poll() is None:
        process.kill()
        process.wait()
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            stream.close()


class Tail:
    """The lines of a process's pipe, read as they come on a thread of their own, so a test can
    wait for one (``wait_until(lambda: tail.has("..."))``) without blocking on the pipe."""

    def __init__(self, stream: TextIO) -> None:
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._reader.start()

    def _read(self, stream: TextIO) -> None:
        for line in stream:
            with self._lock:
                self.lines.append(line)

    def count(self, text: str) -> int:
        """How many lines so far contain ``text``."""
        with self._lock:
            return sum(text in line for line in self.lines)

    def text(self) -> str:
        with self._lock:
            return "".join(self.lines)
