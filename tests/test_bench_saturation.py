"""The saturation scenario's bookkeeping (bench/saturation.py, issue #30): when a queue grows, when a
step is sustained, which rate the search offers next, what gave out, and how ``loaded`` gets its
rate. Pure functions over plain data; tests/test_bench_saturation_stack.py runs the probe on real
servers."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import report
from bench.__main__ import parse, scenario_order, sustained_rate
from bench.harness import Result
from bench.resources import Usage
from bench.saturation import (
    GENERATOR,
    Plan,
    RateSearch,
    Step,
    allowance,
    bottleneck,
    gave_out,
    grows,
    judge,
    result,
    saturated_first,
)

FLAT = [3.0, 0, 5, 1, 4, 0, 2, 6, 1, 3, 0, 4]


@pytest.mark.parametrize(
    ("levels", "limit", "grew"),
    [
        (FLAT, 10, False),  # ups and downs around a level
        ([0.0] * 12, 0, False),  # empty all along
        ([10.0 * i for i in range(12)], 10, True),  # 10 a reading, for 12 readings
        ([10.0 * i for i in range(12)], 80, False),  # ... thirds' means 80 apart: not more than 80
        ([10.0 * i for i in range(12)], 79, True),
        ([100.0 - 10 * i for i in range(10)], 0, False),  # draining
        ([0, 0, 0, 0, 0, 0, 0, 0, 0, 300.0], 10, False),  # one reading caught in a hiccup
        ([0, 0, 0, 0, 0, 0, 0, 300.0, 300], 10, True),  # most of the last third
        ([5.0, 500, 5, 5, 5, 5, 5, 5, 5], 10, False),  # an early spike is not growth
        ([0.0, 100], 10, False),  # fewer than three readings: nothing to tell
        ([0.0, 50, 100], 10, True),
    ],
)
def test_when_a_queue_grows(levels: list[float], limit: float, grew: bool) -> None:
    assert grows(levels, limit) is grew


def test_the_allowance_has_a_floor_and_scales_with_the_offered_reviews() -> None:
    assert allowance(10, 10) == 20  # the floor: batches of a few records
    assert allowance(300, 20) == 120  # 2 % of the 6,000 reviews offered in the window
    assert allowance(600, 20) > allowance(300, 20)


def _step(
    rate: float = 100, posted: int = 1000, errors: int = 0, queues: dict[str, list[float]] | None = None
) -> Step:
    return Step(rate, 10.0, posted, 0, errors, posted // 5, posted // 5, queues or {})


@pytest.mark.parametrize(
    ("step", "why"),
    [
        (_step(queues={"outbox": FLAT, "lag": FLAT}), []),
        (_step(posted=970), []),  # 97 % of the offered posts made: kept up
        (_step(posted=969), ["posts fell behind (969 of 1000 offered, 0 skipped)"]),
        (_step(rate=10, posted=95), []),  # 5 missing at 10/s: still in flight as the window closed
        (_step(rate=10, posted=94), ["posts fell behind (94 of 100 offered, 0 skipped)"]),
        (_step(errors=3), ["3 posts failed"]),
        (
            _step(queues={"outbox": FLAT, "lag": [30.0 * i for i in range(12)]}),
            ["lag grew (median 45 -> 285)"],
        ),
        (_step(rate=1000, posted=10_000, queues={"lag": [15.0 * i for i in range(12)]}), []),  # 2 % of 10,000
        (
            _step(posted=500, errors=1, queues={"a": [0.0, 50, 100], "b": [0.0, 0, 100]}),
            [
                "posts fell behind (500 of 1000 offered, 0 skipped)",
                "1 posts failed",
                "a grew (median 0 -> 100)",
                "b grew (median 0 -> 100)",
            ],
        ),
    ],
)
def test_why_a_step_is_not_sustained(step: Step, why: list[str]) -> None:
    assert judge(step) == why


def _search(
    outcomes: dict[float, bool], start: float = 50, step: float = 50, steps: int = 6, refine: int = 2
) -> list[float]:
    """The rates a search offers against a system that sustains exactly the rates in
    ``outcomes`` marked True (any rate not listed: sustained below 1000/s)."""
    search = RateSearch(start, step, steps, refine)
    offered = []
    while (rate := search.next_rate()) is not None:
        offered.append(rate)
        search.record(rate, outcomes.get(rate, rate < 1000))
        assert len(offered) < 50
    return offered


@pytest.mark.parametrize(
    ("outcomes", "kwargs", "offered"),
    [
        # Ramps by the step until 200/s fails, then bisects twice between the best and the first fail.
        ({200: False, 175: True, 188: False}, {}, [50, 100, 150, 200, 175, 188]),
        ({200: False, 175: False, 162: True}, {}, [50, 100, 150, 200, 175, 162]),
        ({200: False}, {"refine": 0}, [50, 100, 150, 200]),
        # Every step sustained: stops after `steps` of them.
        ({}, {"steps": 3}, [50, 100, 150]),
        # The first step fails: bisects down from 0.
        ({50: False, 25: False, 12: True}, {}, [50, 25, 12]),
        # Nothing left strictly between the best and the first fail.
        ({2: False}, {"start": 1, "step": 1}, [1, 2]),
    ],
)
def test_which_rate_the_search_offers_next(
    outcomes: dict[float, bool], kwargs: dict[str, float], offered: list[float]
) -> None:
    assert _search(outcomes, **kwargs) == offered  # type: ignore[arg-type]


def test_the_search_reports_the_best_sustained_rate_and_the_lowest_unsustained_one() -> None:
    search = RateSearch(50, 50, 6, 2)
    for rate, ok in [(50, True), (100, True), (150, False), (125, True), (138, False)]:
        search.record(rate, ok)
    assert (search.best, search.ceiling) == (125, 138)
    assert RateSearch(50, 50, 6, 2).best is None


@pytest.mark.parametrize(
    ("cores", "top"),
    [
        # A Python service at 0.9 of its one core is nearer its ceiling than mongod at 1.2 of 2.
        ({"mongod": 1.2, "api-bench": 0.9, "tansu": 0.3}, ("api-bench", 0.9)),
        ({"mongod": 1.9, "api-bench": 0.9}, ("mongod", 0.95)),
        ({"api-bench": 0.5, GENERATOR: 0.99}, ("api-bench", 0.5)),  # the generator is not a candidate
        ({GENERATOR: 0.5}, None),
    ],
)
def test_which_process_saturates_first(cores: dict[str, float], top: tuple[str, float] | None) -> None:
    assert saturated_first(cores, cpus=2) == top


@pytest.mark.parametrize(
    ("step", "stage"),
    [
        (_step(queues={"outbox": FLAT, "lag notifier": FLAT}), None),
        (_step(posted=500), ("api", "the posts fell behind")),
        # The queue that grew the most names the service that drains it.
        (
            _step(queues={"outbox": [0.0, 50, 100], "lag notifier": [0.0, 100, 300]}),
            ("notifier", "lag notifier grew the most"),
        ),
        (
            _step(posted=500, queues={"outbox": [0.0, 50, 100]}),
            ("api", "outbox grew the most"),
        ),  # the relay is in the API
        (
            _step(queues={"pending deliveries": [0.0, 50, 100]}),
            ("dispatcher", "pending deliveries grew the most"),
        ),
    ],
)
def test_which_service_fell_behind(step: Step, stage: tuple[str, str] | None) -> None:
    step.why_not = judge(step)
    assert gave_out(step) == stage


def test_what_gave_out_names_the_service_its_cpu_and_a_full_machine() -> None:
    step = _step(queues={"lag notifier": [0.0, 100, 300]})
    step.why_not = judge(step)
    step.cores = {"mongod": 0.6, "api-bench": 0.5, "notifier-bench": 0.25, GENERATOR: 0.1}
    step.machine_cores, step.other_cores = 1.5, 0.0
    said = "notifier (lag notifier grew the most; it used 0.25 cores); busiest process api-bench (50% of its ceiling)"
    assert bottleneck(step, cpus=2) == said
    step.machine_cores, step.other_cores = 1.9, 0.45
    assert bottleneck(step, cpus=2) == (
        f"{said}; the machine's CPU was full (1.90 of 2 cores busy, 0.45 of them other processes)"
    )
    calm = _step()
    calm.cores = {"mongod": 0.3}
    assert bottleneck(calm, cpus=2) == "nothing fell behind; busiest process mongod (15% of its ceiling)"


def test_the_result_reports_the_sustained_rate_and_its_cpu_per_review() -> None:
    steps = [_step(rate=r, posted=r * 10) for r in (50, 100, 150, 125)]
    for s in steps:
        s.cpu_s = {"mongod": s.posted * 0.004, "api-bench": s.posted * 0.002, GENERATOR: s.posted * 0.001}
        s.cores = {name: cpu / s.seconds for name, cpu in s.cpu_s.items()}
    steps[2].queues = {"lag notifier": [0.0, 100, 300]}
    for s in steps:
        s.why_not = judge(s)
    search = RateSearch(50, 50, 6, 1)
    for s in steps:
        search.record(s.rate, s.sustained)
    usages = {s.rate: Usage(s.seconds, cpu_s=s.cpu_s) for s in steps}
    out = result(search, steps, usages, Plan(start=50, step=50, refine=1))
    assert out.measure["sustained_per_s"] == 125
    assert out.measure["first_unsustained_per_s"] == 150
    assert out.measure["cpu_ms_per_review"] == pytest.approx(6.0)  # the generator's 1 ms apart
    assert out.measure["generator_cpu_ms_per_review"] == pytest.approx(1.0)
    assert out.measure["saturates_first"].startswith("notifier (lag notifier grew the most")
    assert out.resources["window_s"] == 10.0
    assert [row[0] for row in out.detail["table"][1:]] == ["50", "100", "150", "125"]
    assert out.met is None  # a rate was sustained: a figure to report, not a target


def test_the_plan_is_read_from_the_environment() -> None:
    prefix = "SAYSO_BENCH_SATURATION_"
    assert Plan.from_env({}) == Plan()
    short = Plan.from_env({f"{prefix}START": "40", f"{prefix}WINDOW": "10", f"{prefix}STEPS": "6"})
    assert (short.start, short.window, short.steps, short.step) == (40, 10, 6, Plan().step)
    with pytest.raises(ValueError, match="SAYSO_BENCH_SATURATION_STEPS='many' is not a whole number"):
        Plan.from_env({f"{prefix}STEPS": "many"})
    with pytest.raises(ValueError, match="SAYSO_BENCH_SATURATION_STEP='fast' is not a number"):
        Plan.from_env({f"{prefix}STEP": "fast"})
    with pytest.raises(ValueError, match="SAYSO_BENCH_SATURATION_WINDOW='0' must be more than 0"):
        Plan.from_env({f"{prefix}WINDOW": "0"})
    with pytest.raises(ValueError, match=r"SAYSO_BENCH_SATURATION_STEPS='2\.5' is not a whole number"):
        Plan.from_env({f"{prefix}STEPS": "2.5"})


@pytest.mark.parametrize(
    ("names", "rate", "order"),
    [
        (["loaded"], None, ["saturation", "loaded"]),  # loaded needs a sustained rate from this run
        (["loaded", "saturation"], None, ["saturation", "loaded"]),
        (["saturation", "ingest", "loaded"], None, ["saturation", "ingest", "loaded"]),
        (["loaded"], 300.0, ["loaded"]),  # ... or one given
        (["ingest"], None, ["ingest"]),
    ],
)
def test_loaded_runs_after_a_saturation(names: list[str], rate: float | None, order: list[str]) -> None:
    assert scenario_order(names, rate) == order


def test_loaded_offers_half_of_the_sustained_rate_of_the_same_run_or_the_one_given() -> None:
    saturation = Result("Saturation", {"sustained_per_s": 240.0}, None, None, "", None)
    assert sustained_rate([saturation], None) == (240.0, "the saturation scenario of this run")
    assert sustained_rate([saturation], 300.0) == (300.0, "given with --rate")
    nothing = Result("Saturation", {"sustained_per_s": None}, None, None, "", False)
    with pytest.raises(RuntimeError, match="no sustained rate"):
        sustained_rate([nothing], None)
    assert parse(["loaded", "--rate", "300"]).rate == 300.0
    with pytest.raises(SystemExit):
        parse(["loaded", "--rate", "0"])


def test_the_report_shows_a_scenario_s_step_table(tmp_path: Path) -> None:
    table = [["offered /s", "sustained"], ["50", "yes"], ["100", "no"]]
    result = Result(
        "Saturation", {"sustained_per_s": 50.0}, None, None, "reported", None, detail={"table": table}
    )
    md = report.write([result], "20260101T000000Z", tmp_path).read_text()
    assert "| offered /s | sustained |\n|---|---|\n| 50 | yes |\n| 100 | no |" in md
