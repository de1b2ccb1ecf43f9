"""deploy/prometheus and deploy/grafana: the alert rules pass ``promtool check rules`` and their
unit tests (``promtool test rules``), the Prometheus configurations pass ``promtool check
config``, the dashboard covers what operators watch, and every metric a dashboard query or an
alert names is served by the running services (their label names exist too). Also the metrics
added for them: the expirer's backlog gauges and response-time histogram, and the dependency
gauge every service refreshes at each scrape."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import prometheus_client
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from sayso_service.probes import probe_routes
from starlette.applications import Starlette

# Imported for their metrics: the label names each service's metrics carry.
import sayso_api.telemetry
import sayso_common.outbox
import sayso_dispatcher.metrics
import sayso_expirer.app
import sayso_notifier.metrics
import sayso_realtime.metrics
from sayso_common.clock import utcnow
from sayso_common.ids import new_id
from sayso_common.mongo import create_client, ensure_indexes
from sayso_common.settings import ServiceSettings
from sayso_devstack.processes import REPO_ROOT
from sayso_expirer import backlog
from tests.conftest import Infra
from tests.support.stack import Owner, RunningStack, eventually

PROMETHEUS = REPO_ROOT / "deploy" / "prometheus"
GRAFANA = REPO_ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "sayso.json"
SERVICES = ("api", "realtime", "dispatcher", "expirer", "notifier")
# Series Prometheus makes itself rather than scraping them.
SYNTHETIC = {"up"}
# Labels Prometheus attaches to every scraped series (deploy/prometheus/*.yml), plus le on buckets.
TARGET_LABELS = {"service", "instance", "job", "pod", "namespace", "le"}
_MODULES = (
    sayso_api.telemetry,
    sayso_common.outbox,
    sayso_dispatcher.metrics,
    sayso_expirer.app,
    sayso_notifier.metrics,
    sayso_realtime.metrics,
)


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool missing: `make promtool` installs Debian's prometheus package (needs root)")
    return found


def run_promtool(*args: str, cwd: Path = PROMETHEUS) -> str:
    out = subprocess.run(
        [promtool(), *args], capture_output=True, text=True, cwd=cwd, timeout=120, check=False
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def dashboard_exprs() -> list[str]:
    return [t["expr"] for p in dashboard()["panels"] for t in p.get("targets", [])]


def all_exprs() -> list[str]:
    return dashboard_exprs() + [rule["expr"] for rule in alerts()]


# --- a small PromQL reader: metric names and label names in an expression ------------------------

_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless"}
_KEYWORDS |= {"offset", "bool", "inf", "nan"}
_IDENT = r"[a-zA-Z_:][a-zA-Z0-9_:]*"


def _strip(expr: str) -> str:
    expr = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges and subqueries, $__rate_interval included
    return expr


def metric_names(expr: str) -> set[str]:
    text = re.sub(r"\{[^}]*\}", "", _strip(expr))
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for match in re.finditer(_IDENT, text):
        token, before = match.group(0), text[: match.start()]
        if text[match.end() :].lstrip().startswith("("):
            continue  # a function or an aggregation
        if token.lower() in _KEYWORDS or (before and (before[-1].isdigit() or before[-1] == ".")):
            continue  # a keyword, or the exponent of a number
        names.add(token)
    return names


def selector_labels(expr: str) -> Iterator[tuple[str, str]]:
    """(metric, label) for each label matcher of a selector."""
    for match in re.finditer(rf"({_IDENT})\s*\{{([^}}]*)\}}", _strip(expr)):
        for label in re.findall(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)", match.group(2)):
            yield match.group(1), label


def grouping_labels(expr: str) -> set[str]:
    found = re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", _strip(expr))
    return {label.strip() for group in found for label in group.split(",") if label.strip()}


def registry_labels() -> dict[str, set[str]]:
    """Every exposed sample name of this process's metrics with its label names."""
    labels: dict[str, set[str]] = {}
    for metric in prometheus_client.REGISTRY.collect():
        for sample_name in _sample_names(metric.name, metric.type):
            labels[sample_name] = set()
        for sample in metric.samples:
            labels.setdefault(sample.name, set()).update(sample.labels)
    for collector in list(prometheus_client.REGISTRY._collector_to_names):
        names = prometheus_client.REGISTRY._collector_to_names[collector]
        for name in names:
            labels.setdefault(name, set()).update(getattr(collector, "_labelnames", ()))
    return labels


def _sample_names(name: str, kind: str) -> set[str]:
    if kind == "counter":
        return {name + "_total", name + "_created"}
    if kind == "histogram":
        return {name + "_bucket", name + "_count", name + "_sum", name + "_created"}
    if kind == "summary":
        return {name, name + "_count", name + "_sum", name + "_created"}
    return {name}


def test_promql_reader() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le) (rate(a_seconds_bucket{route!~"/x{1}"}[$__rate_interval])))'
        ' / scalar(b_total offset 5m) > 1e-3 and on (topic) deriv(c[10m:1m]) unless d{x="y"}'
    )
    assert metric_names(expr) == {"a_seconds_bucket", "b_total", "c", "d"}
    assert set(selector_labels(expr)) == {("a_seconds_bucket", "route"), ("d", "x")}
    assert grouping_labels(expr) == {"le", "topic"}


# --- promtool -------------------------------------------------------------------------------


def test_alert_rules_pass_promtool_check() -> None:
    out = run_promtool("check", "rules", "alerts.yml")
    assert f"SUCCESS: {len(alerts())} rules found" in out


def test_alert_rules_unit_tests_pass() -> None:
    out = run_promtool("test", "rules", "alerts.test.yml")
    assert "SUCCESS" in out


def test_every_alert_is_unit_tested_and_explained() -> None:
    tests = yaml.safe_load((PROMETHEUS / "alerts.test.yml").read_text())
    fired = {
        case["alertname"]
        for test in tests["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    names = [rule["alert"] for rule in alerts()]
    assert len(names) == len(set(names))
    assert set(names) == fired
    for rule in alerts():
        assert rule["labels"]["severity"] in ("critical", "warning", "info")
        assert rule["annotations"]["summary"]
        assert rule["annotations"]["description"]
    # What the issue asks to be alerted on, by the metric each alert reads.
    watched = {name for rule in alerts() for name in metric_names(rule["expr"])}
    assert {
        "sayso_outbox_backlog_oldest_age_seconds",  # outbox older than 60 s
        "sayso_dispatcher_consumer_lag",  # lag growing for 10 minutes
        "sayso_webhook_attempts_total",  # delivery failure ratio
        "sayso_webhook_open_circuits",  # circuit open
        "sayso_dependency_up",  # MongoDB unreachable
        "sayso_reviews_expiring_soon",  # pending reviews near expiry
    } <= watched


def test_prometheus_configurations_pass_promtool(tmp_path: Path) -> None:
    # docker-compose's: DNS discovery of the four services, alerts.yml as its rules.
    out = run_promtool("check", "config", "prometheus.yml")
    assert "SUCCESS: 1 rule files found" in out
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    assert config["rule_files"] == ["alerts.yml"]
    (job,) = config["scrape_configs"]
    assert {"source_labels": ["__meta_dns_name"], "target_label": "service"} in job["relabel_configs"]
    # The in-cluster one. Debian's promtool is built without Kubernetes service discovery, so the
    # relabelling and rules are checked with the discovery swapped for a static target.
    k8s = yaml.safe_load((PROMETHEUS / "prometheus-kubernetes.yml").read_text())
    (job,) = k8s["scrape_configs"]
    assert job.pop("kubernetes_sd_configs") == [{"role": "pod", "namespaces": {"names": ["sayso"]}}]
    job["static_configs"] = [{"targets": ["127.0.0.1:8080"]}]
    (tmp_path / "alerts.yml").write_text((PROMETHEUS / "alerts.yml").read_text())
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(k8s))
    run_promtool("check", "config", "prometheus.yml", cwd=tmp_path)
    targets = {r.get("target_label") for r in job["relabel_configs"]}
    assert {"namespace", "pod", "service", "__address__", "__metrics_path__"} <= targets


def test_compose_serves_prometheus_and_grafana() -> None:
    services = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())["services"]
    prometheus, grafana = services["prometheus"], services["grafana"]
    assert prometheus["profiles"] == grafana["profiles"] == ["observability"]
    assert prometheus["volumes"] == ["./deploy/prometheus:/etc/prometheus:ro"]
    mounts = dict(v.removesuffix(":ro").split(":") for v in grafana["volumes"])
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "sayso.yml").read_text())
    (entry,) = provider["providers"]
    assert mounts["./deploy/grafana/dashboards"] == entry["options"]["path"]
    datasource = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    (source,) = datasource["datasources"]
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"


# --- the dashboard --------------------------------------------------------------------------

# What operators watch (issue #16) and a metric the dashboard must chart for each.
WATCHED = {
    "deliveries per second": "sayso_webhook_deliveries_total",
    "failure ratio": "sayso_webhook_attempts_total",
    "attempt latency": "sayso_webhook_attempt_seconds_bucket",
    "consumer lag per group": "sayso_dispatcher_consumer_lag",
    "outbox age": "sayso_outbox_backlog_oldest_age_seconds",
    "pending reviews": "sayso_reviews_pending",
    "oldest pending review's age": "sayso_reviews_oldest_pending_age_seconds",
    "human response time": "sayso_review_response_seconds_bucket",
    "parked long-polls": "sayso_realtime_waiters",
    "connected sockets": "sayso_realtime_sockets",
    "5xx": "sayso_http_requests_total",
}


def test_dashboard_structure_and_coverage() -> None:
    board = dashboard()
    assert board["uid"] == "sayso-overview"
    (variable,) = board["templating"]["list"]
    assert variable["type"] == "datasource"
    assert variable["query"] == "prometheus"
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
        if panel["type"] == "row":
            continue
        assert panel["title"]
        assert panel["description"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"]
        for target in panel["targets"]:
            assert target["expr"].strip()
            assert target["datasource"]["uid"] == "${datasource}"
            assert target["expr"].count("(") == target["expr"].count(")")
    used = {name for expr in dashboard_exprs() for name in metric_names(expr)}
    missing = {what: metric for what, metric in WATCHED.items() if metric not in used}
    assert not missing


def test_queries_use_label_names_the_metrics_have() -> None:
    labels = registry_labels()
    for expr in all_exprs():
        names = metric_names(expr) - SYNTHETIC
        for metric, label in selector_labels(expr):
            if metric in SYNTHETIC:
                continue
            assert label in labels.get(metric, set()) | TARGET_LABELS, (metric, label, expr)
        known = set().union(*(labels.get(n, set()) for n in names)) | TARGET_LABELS
        assert grouping_labels(expr) <= known, (grouping_labels(expr) - known, expr)


# --- the running services -------------------------------------------------------------------


def _served(text: str) -> set[str]:
    names = set()
    for family in text_string_to_metric_families(text):
        names |= _sample_names(family.name, family.type)
        names |= {sample.name for sample in family.samples}
    return names


async def test_every_metric_the_dashboard_and_alerts_use_is_served(stack: RunningStack) -> None:
    served: dict[str, set[str]] = {}
    async with httpx.AsyncClient(timeout=15) as client:
        for name in SERVICES:
            resp = await client.get(f"http://127.0.0.1:{stack.procs[name].port}/metrics")
            assert resp.status_code == 200, name
            served[name] = _served(resp.text)
    everything = set().union(*served.values())
    used = {name for expr in all_exprs() for name in metric_names(expr)}
    # The dispatcher's lag is also what the Kubernetes lag autoscaler reads.
    used.add(sayso_dispatcher_metrics_lag())
    missing = used - everything - SYNTHETIC
    assert not missing, f"named by the dashboard or alerts but served by no service: {sorted(missing)}"
    # Every service reports whether it reaches its dependencies (the MongoDB alert reads it).
    for name in SERVICES:
        assert "sayso_dependency_up" in served[name], name


def sayso_dispatcher_metrics_lag() -> str:
    name: str = sayso_dispatcher.metrics.CONSUMER_LAG._name
    return name


async def test_every_service_reports_its_dependencies(stack: RunningStack) -> None:
    expected = {"api": {"mongodb", "kafka"}, "realtime": {"mongodb", "kafka"}}
    expected |= {"dispatcher": {"mongodb", "kafka"}, "expirer": {"mongodb"}, "notifier": {"mongodb", "kafka"}}
    async with httpx.AsyncClient(timeout=15) as client:
        for name, deps in expected.items():
            text = (await client.get(f"http://127.0.0.1:{stack.procs[name].port}/metrics")).text
            values = {
                sample.labels["dependency"]: sample.value
                for family in text_string_to_metric_families(text)
                if family.name == "sayso_dependency_up"
                for sample in family.samples
            }
            assert values == dict.fromkeys(deps, 1.0), name


async def test_answers_reach_the_response_time_histogram(stack: RunningStack, owner: object) -> None:
    assert isinstance(owner, Owner)
    expirer = f"http://127.0.0.1:{stack.procs['expirer'].port}/metrics"

    async def answered(client: httpx.AsyncClient) -> float:
        text = (await client.get(expirer)).text
        for family in text_string_to_metric_families(text):
            if family.name == "sayso_review_response_seconds":
                return next(s.value for s in family.samples if s.name.endswith("_count"))
        raise AssertionError("no sayso_review_response_seconds on the expirer")

    agent = await owner.create_agent()
    options = [{"id": "approve", "label": "Approve"}, {"id": "reject", "label": "Reject"}]
    async with httpx.AsyncClient(timeout=15) as client:
        before = await answered(client)
        msg = await owner.post_message(
            agent["id"], review={"type": "approval", "payload": {"options": options}}
        )
        resp = await owner.respond(msg["id"], {"selectedOption": "approve"})
        assert resp.status_code == 200, resp.text

        async def counted() -> bool:
            return await answered(client) > before

        await eventually(counted, timeout=15, what="the answer observed by the expirer")


# --- the metrics added for this, in-process -------------------------------------------------


def _value(name: str) -> float:
    value = prometheus_client.REGISTRY.get_sample_value(name)
    assert value is not None, name
    return value


async def test_backlog_metrics_read_mongodb(infra: Infra) -> None:
    settings = ServiceSettings(
        secret_key="x" * 32, mongo_url=infra.mongo_url, mongo_db="observability_backlog"
    )
    client = create_client(settings)
    try:
        db = client[settings.mongo_db]
        await client.drop_database(settings.mongo_db)
        await ensure_indexes(db)
        await backlog.refresh(db)
        assert _value("sayso_reviews_pending") == 0
        assert _value("sayso_outbox_backlog_oldest_age_seconds") == 0
        now = utcnow()

        def review(age: float, due_in: float, status: str = "pending") -> dict[str, Any]:
            return {
                "_id": new_id("msg"),
                "created_at": now - timedelta(seconds=age),
                "review": {"status": status, "expires_at": now + timedelta(seconds=due_in)},
            }

        stuck = new_id("evt")
        await db.messages.insert_many(
            [
                review(600, 60) | {"outbox": [{"id": stuck}]},
                review(30, 3600),
                review(10, 300),
                review(900, 60, status="completed"),
            ]
        )
        await asyncio.sleep(0.05)
        await db.deliveries.insert_one({"_id": "dlv_1", "outbox": [{"id": new_id("evt")}]})
        watcher = asyncio.create_task(backlog.watch_answers(db))
        try:
            await backlog.refresh(db)
            assert _value("sayso_reviews_pending") == 3
            assert _value("sayso_reviews_expiring_soon") == 2  # deadlines within 15 minutes
            assert 600 <= _value("sayso_reviews_oldest_pending_age_seconds") < 660
            assert _value("sayso_outbox_backlog_documents") == 2
            assert 0.05 <= _value("sayso_outbox_backlog_oldest_age_seconds") < 30

            answered_id = new_id("msg")
            await db.messages.insert_one(review(0, 3600) | {"_id": answered_id})
            before = _value("sayso_review_response_seconds_count")
            await asyncio.sleep(0.5)  # the change stream is open
            await db.messages.update_one(
                {"_id": answered_id},
                {
                    "$set": {
                        "review.status": "completed",
                        "review.completed_at": utcnow() + timedelta(seconds=42),
                    }
                },
            )

            async def observed() -> bool:
                return _value("sayso_review_response_seconds_count") > before

            await eventually(observed, timeout=10, what="the answer observed")
            assert _value("sayso_review_response_seconds_sum") > 40
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
    finally:
        await client.drop_database(settings.mongo_db)
        await client.close()


def test_response_seconds_ignores_what_is_not_ours() -> None:
    assert backlog.response_seconds("not-an-id", utcnow()) is None
    assert backlog.response_seconds(new_id("msg"), None) is None
    assert backlog.response_seconds(new_id("msg"), utcnow() - timedelta(days=1)) is None
    seconds = backlog.response_seconds(new_id("msg"), utcnow() + timedelta(seconds=5))
    assert seconds is not None
    assert 4 < seconds < 6


async def test_dependency_gauge_follows_each_scrape() -> None:
    state = {"up": True}

    async def flaky() -> None:
        if not state["up"]:
            raise ConnectionError("down")

    async def fine() -> None:
        return None

    app = Starlette(routes=probe_routes(lambda _: {"test-flaky": flaky, "test-fine": fine}))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        for up in (True, False, True):
            state["up"] = up
            text = (await client.get("/metrics")).text
            assert f'sayso_dependency_up{{dependency="test-flaky"}} {1.0 if up else 0.0}' in text
            assert 'sayso_dependency_up{dependency="test-fine"} 1.0' in text
        state["up"] = False
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert _sample("test-flaky") == 0


def _sample(dependency: str) -> float | None:
    return prometheus_client.REGISTRY.get_sample_value("sayso_dependency_up", {"dependency": dependency})
