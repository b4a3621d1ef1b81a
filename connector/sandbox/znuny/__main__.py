"""``python -m connector.sandbox.znuny``: serve a seeded demo Znuny until interrupted."""

from __future__ import annotations

from connector.sandbox.znuny.cli import main

raise SystemExit(main())
