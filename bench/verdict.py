"""When a benchmark's comparison with its baseline can be believed, and where a run's report goes.

A baseline here is a bare process doing less than Sayso does (one insert behind FastAPI, a plain
aiohttp POST loop): it is an upper bound. A run where Sayso came out *above* it, or where the
baseline itself moved a lot between interleaved rounds, measured the machine's other load, not
Sayso: such a comparison is reported as unreliable, never as "met" (issue #27: a busy machine's
"1.14x ... met: yes").
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

# How far the baseline's rounds may spread, as a fraction of the best one, before the run is
# called unreliable: quiet runs on the 2-core reference machine stay within about 10 %.
BASELINE_TOLERANCE = 0.25

RESULTS = Path(__file__).parent / "results"
# Local runs land here (ignored by git, see bench/.gitignore); the committed folder only on request.
LOCAL_RESULTS = RESULTS / "local"
COMMIT_ENV = "SAYSO_BENCH_COMMIT"


def unreliable_baseline(
    ratio: float | None, baseline_rounds: Sequence[float] = (), tolerance: float = BASELINE_TOLERANCE
) -> str | None:
    """Why this run's comparison cannot be trusted, or None if it can. ``ratio`` is measured /
    baseline for a higher-is-better measure (throughput); ``baseline_rounds`` the baseline's
    value in each round."""
    if ratio is not None and ratio > 1.0:
        return (
            f"the baseline came out below the measured system ({ratio:.2f}x); it does less work, so "
            "the machine was busy while it ran: run again on a quiet machine"
        )
    rounds = [r for r in baseline_rounds if r > 0]
    if len(rounds) >= 2:
        spread = (max(rounds) - min(rounds)) / max(rounds)
        if spread > tolerance:
            return (
                f"the baseline moved {spread:.0%} between rounds (tolerance {tolerance:.0%}): "
                "the machine's load changed during the run"
            )
    return None


def met_cell(met: bool | None, unreliable: str | None) -> str:
    """The report's "met" column."""
    if unreliable:
        return "unreliable"
    return "yes" if met else ("no" if met is False else "—")


def results_dir(commit: bool | None = None) -> Path:
    """Where a run writes: ``bench/results/local`` unless asked to write the committed folder
    (``--commit`` or ``SAYSO_BENCH_COMMIT=1``)."""
    if commit is None:
        commit = os.environ.get(COMMIT_ENV, "") not in ("", "0")
    return RESULTS if commit else LOCAL_RESULTS
