"""``make soak`` / ``python -m bench.soak``: run the chaos soak, print its report, write
``bench/results/local/soak-<stamp>.{json,md,png}`` (ignored by git; ``SAYSO_BENCH_COMMIT=1`` writes
the committed ``bench/results/``). Exits 1 if any invariant failed (the stack's logs are
then kept and named).

SOAK_SECONDS=300 python -m bench.soak          # seconds of traffic (default 180), then the drain
python -m bench.soak --seconds 60 --out /tmp/soak
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

from bench.soak import report
from bench.soak.run import Settings, soak
from bench.verdict import results_dir


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("SOAK_SECONDS", "180")))
    parser.add_argument("--rate", type=float, default=Settings.rate, help="new reviews per second")
    parser.add_argument("--out", type=Path, default=results_dir(), help="where the report goes")
    args = parser.parse_args()
    if args.seconds < 30:
        parser.error("--seconds (SOAK_SECONDS) must be at least 30: the broker and MongoDB faults need room")
    logging.basicConfig(level=logging.INFO, format="[soak %(asctime)s] %(message)s", stream=sys.stderr)
    for noisy in ("httpx", "aiokafka"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    state = Path(tempfile.mkdtemp(prefix="sayso-soak-"))
    outcome = asyncio.run(soak(Settings(seconds=args.seconds, rate=args.rate), state))
    json_path, md_path, png_path = report.write(outcome, args.out)
    print(report.markdown(outcome))
    print(f"[soak] report: {md_path}\n[soak] record: {json_path}\n[soak] plot:   {png_path}")
    if outcome.ok:
        shutil.rmtree(state, ignore_errors=True)
        return 0
    print(f"[soak] an invariant failed; the stack's logs are kept in {state / 'logs'}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
