"""``signoff-devstack run``: the whole local stack in the foreground (what ``make run`` calls)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from signoff_devstack.processes import REPO_ROOT
from signoff_devstack.stack import env_port, run


def main() -> None:
    parser = argparse.ArgumentParser(prog="signoff-devstack", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run_cmd = sub.add_parser("run", help="start MongoDB, Tansu, the services and Caddy; Ctrl-C stops")
    run_cmd.add_argument("--state-dir", type=Path, default=REPO_ROOT / ".signoff")
    run_cmd.add_argument("--port", type=int, default=None, help="edge port (default $SIGNOFF_PORT or 8000)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="[signoff] %(message)s", stream=sys.stderr)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    sys.exit(run(args.state_dir.resolve(), args.port or env_port()))


if __name__ == "__main__":
    main()
