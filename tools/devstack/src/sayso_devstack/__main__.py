"""``sayso-devstack run``: the whole local stack in the foreground (what ``make run`` calls)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from sayso_common import legacy
from sayso_devstack.stack import env_port, env_state_dir, parse_replicas, run, take_over_old_state


def main() -> None:
    parser = argparse.ArgumentParser(prog="sayso-devstack", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run_cmd = sub.add_parser("run", help="start MongoDB, Tansu, the services and Caddy; Ctrl-C stops")
    run_cmd.add_argument(
        "--state-dir", type=Path, default=None, help="state directory (default $SAYSO_HOME/.sayso)"
    )
    run_cmd.add_argument("--port", type=int, default=None, help="edge port (default $SAYSO_PORT or 8000)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="[sayso] %(message)s", stream=sys.stderr)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # aiosmtpd (the local mail catcher) logs every connection at INFO ("Peer: …", "EOF received")
    # among the start-up's progress lines; what it catches is in the mail folder and the banner.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    legacy.adopt_old_environment()  # the home, port and replicas under their former names too
    state_dir: Path = args.state_dir or env_state_dir()
    take_over_old_state(state_dir.resolve())
    replicas = parse_replicas(os.environ.get("SAYSO_REPLICAS", ""))
    sys.exit(run(state_dir.resolve(), args.port or env_port(), replicas))


if __name__ == "__main__":
    main()
