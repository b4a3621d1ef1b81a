"""Running the ``bitrix-sla`` command in the test process."""

from __future__ import annotations

import io

from connector.cli import main


def run(*argv: str) -> tuple[int, str]:
    """``bitrix-sla ARGV``: the exit status and what it printed on stdout (stderr is left to
    pytest's ``capsys``)."""
    out = io.StringIO()
    code = main(list(argv), out=out)
    return code, out.getvalue()
