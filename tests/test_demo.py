"""``bitrix-sla demo``, the README's first command: everything end to end, on loopback."""

from __future__ import annotations

import io
import re

from connector.demo import OVERRIDDEN, TICKETS, run_demo


def test_demo_writes_every_sla_and_prints_the_table() -> None:
    out = io.StringIO()
    assert run_demo(out, timeout=60) == 0, out.getvalue()
    text = out.getvalue()
    rows = [line for line in text.splitlines() if re.match(r"#\d+ ", line)]
    assert len(rows) == len(TICKETS)
    levels = [re.split(r"\s{2,}", row)[3] for row in rows]
    assert levels[0] == "commercial-operational"  # site down, commercial customer
    assert levels[2] == "partner-operational"  # admin part unusable, partner
    assert levels[5] == "vip"  # enterprise customer
    assert levels[7] == levels[8] == "noncommercial"  # no separate emergency level (§ 5.7)
    assert levels[OVERRIDDEN] == "consulting"  # moved there by an agent
    assert "out:custom-development" in rows[4]
    assert "out:payment-integration" in rows[6]
    assert re.search(r"every SLA written back in \d+\.\d s", text)
