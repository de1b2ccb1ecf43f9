"""The benchmark's verdict rule and where its reports go (bench/verdict.py, bench/report.py):
a busy machine's run is "unreliable", never "met", and a local run never touches the committed
results."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import report
from bench.harness import Result
from bench.verdict import (
    BASELINE_TOLERANCE,
    LOCAL_RESULTS,
    RESULTS,
    met_cell,
    results_dir,
    unreliable_baseline,
)


@pytest.mark.parametrize(
    ("ratio", "rounds", "why"),
    [
        (0.85, [1000, 980], None),  # a quiet run
        (1.0, [1000, 1000], None),  # level with the baseline: still believable
        (1.14, [900, 880], "below the measured system (1.14x)"),  # issue #27's busy machine
        (1.14, [], "below the measured system"),  # one baseline round, same rule
        (0.6, [1000, 700], "moved 30% between rounds"),
        (0.6, [1000, 760], None),  # 24 %: within the tolerance
        (0.6, [700, 1000, 990], "moved 30% between rounds"),  # any round, in any order
        (None, [1000, 500], "moved 50%"),  # no ratio: the spread alone
        (None, [], None),
        (0.8, [0, 1000], None),  # a round that measured nothing is not a spread
        (0.8, [1000], None),
    ],
)
def test_when_a_baseline_comparison_is_unreliable(
    ratio: float | None, rounds: list[float], why: str | None
) -> None:
    got = unreliable_baseline(ratio, rounds)
    if why is None:
        assert got is None
    else:
        assert got is not None
        assert why in got


def test_the_tolerance_is_the_stated_one() -> None:
    assert BASELINE_TOLERANCE == 0.25
    assert unreliable_baseline(0.5, [100, 75]) is None
    assert unreliable_baseline(0.5, [100, 74]) is not None
    assert unreliable_baseline(0.5, [100, 90], tolerance=0.05) is not None


@pytest.mark.parametrize(
    ("met", "unreliable", "cell"),
    [
        (True, None, "yes"),
        (False, None, "no"),
        (None, None, "—"),
        (True, "busy", "unreliable"),  # never "met" on a comparison that cannot be trusted
        (False, "busy", "unreliable"),
    ],
)
def test_the_met_column(met: bool | None, unreliable: str | None, cell: str) -> None:
    assert met_cell(met, unreliable) == cell


def test_the_report_flags_an_unreliable_run() -> None:
    busy = Result(
        "API ingest", {"rps": 1140}, {"rps": 1000}, 1.14, ">= 0.8x baseline", True,
        unreliable=unreliable_baseline(1.14, [1000, 990]),
    )  # fmt: skip
    md = report.markdown([busy], "20261207T000000Z")
    row = next(line for line in md.splitlines() if line.startswith("| API ingest"))
    assert row.endswith("| unreliable |")
    assert "**API ingest** is unreliable: the baseline came out below the measured system" in md


@pytest.mark.parametrize(
    ("env", "commit", "folder"),
    [
        (None, None, LOCAL_RESULTS),
        ("0", None, LOCAL_RESULTS),
        ("", None, LOCAL_RESULTS),
        ("1", None, RESULTS),
        (None, True, RESULTS),  # --commit
        ("1", False, LOCAL_RESULTS),  # an explicit choice wins
    ],
)
def test_where_a_run_writes(
    monkeypatch: pytest.MonkeyPatch, env: str | None, commit: bool | None, folder: Path
) -> None:
    if env is None:
        monkeypatch.delenv("SAYSO_BENCH_COMMIT", raising=False)
    else:
        monkeypatch.setenv("SAYSO_BENCH_COMMIT", env)
    assert results_dir(commit) == folder


def test_local_results_are_ignored_by_git_and_the_committed_ones_untouched(tmp_path: Path) -> None:
    assert LOCAL_RESULTS.parent == RESULTS
    ignore = (Path(report.__file__).parent / ".gitignore").read_text().split()
    assert "results/local/" in ignore
    committed = (RESULTS / "latest.md").read_text()
    done = Result("Expiry", {"s": 1.0}, None, None, "<= 5 s", True, series={"s": [1.0, 2.0]})
    path = report.write([done], "20261207T000000Z", tmp_path)
    assert path == tmp_path / "20261207T000000Z.md"
    assert (tmp_path / "latest.md").read_text() == path.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "20261207T000000Z-expiry.png", "20261207T000000Z.json", "20261207T000000Z.md", "latest.md",
    ]  # fmt: skip
    assert (RESULTS / "latest.md").read_text() == committed
