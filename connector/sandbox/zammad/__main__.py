"""``python -m connector.sandbox.zammad [--host H] [--port P] [--webhook-url URL]``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from connector.sandbox.zammad.demo import run


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments and serve the seeded sandbox until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(description="A fake Zammad for trying the connector.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--webhook-url", help="where the sandbox's trigger webhooks go")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    return run(args.host, args.port, out=sys.stdout, webhook_url=args.webhook_url)


if __name__ == "__main__":
    raise SystemExit(main())
