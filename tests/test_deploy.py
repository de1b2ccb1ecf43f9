"""Production packaging, checked without a Docker engine (none runs here): the compose file
parses and wires the services to real entry points, the Dockerfile skips only packages that
exist, and the real Caddy binary accepts the shared Caddyfile with compose's environment."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tomllib
from typing import Any

import yaml

from sayso_devstack.processes import CADDYFILE, REPO_ROOT, caddy_binary

SERVICES = ("api", "realtime", "dispatcher", "expirer", "notifier")


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    return data


def _scripts() -> dict[str, str]:
    scripts: dict[str, str] = {}
    for pyproject in REPO_ROOT.glob("services/*/pyproject.toml"):
        scripts |= tomllib.loads(pyproject.read_text())["project"]["scripts"]
    return scripts


def test_compose_runs_every_service_from_its_entry_point() -> None:
    services = _compose()["services"]
    scripts = _scripts()
    for name in SERVICES:
        command = services[name]["command"]
        assert command == [f"sayso-{name}"]
        module, _, func = scripts[command[0]].partition(":")
        assert module == f"sayso_{name}.__main__"
        assert func == "main"
        env = services[name]["environment"]
        assert env["SAYSO_MONGO_URL"].endswith("replicaSet=rs0")
        assert env["SAYSO_KAFKA_BOOTSTRAP"] == "kafka:9092"
        assert services[name]["depends_on"]["mongo-init"]["condition"] == "service_completed_successfully"
    assert "scale" not in json.dumps(services["dispatcher"])  # scaled from the CLI, no fixed replica count
    assert "container_name" not in json.dumps(services["dispatcher"])  # would forbid --scale
    assert "ports" not in services["dispatcher"]
    # The notifier scales the same way, and runs without SMTP until one is configured.
    assert "scale" not in json.dumps(services["notifier"])
    assert "ports" not in services["notifier"]
    assert services["notifier"]["environment"]["SAYSO_SMTP_URL"] == "${SAYSO_SMTP_URL:-}"


def test_compose_migrates_once_before_the_api_starts() -> None:
    services = _compose()["services"]
    migrate = services["migrate"]
    assert migrate["command"] == ["sayso-api", "migrate"]
    assert migrate["restart"] == "no"  # one-shot
    assert migrate["image"] == services["api"]["image"]
    assert migrate["depends_on"]["mongo-init"]["condition"] == "service_completed_successfully"
    assert services["api"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert migrate["environment"]["SAYSO_MONGO_URL"] == services["api"]["environment"]["SAYSO_MONGO_URL"]


def test_compose_infrastructure() -> None:
    services = _compose()["services"]
    assert "--replSet" in services["mongo"]["command"]
    assert "rs.initiate" in " ".join(services["mongo-init"]["command"])
    kafka = services["kafka"]["environment"]
    assert kafka["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, no ZooKeeper
    caddy = services["caddy"]
    assert caddy["volumes"] == ["./deploy/Caddyfile:/etc/caddy/Caddyfile:ro"]
    assert caddy["environment"]["SAYSO_API_UPSTREAM"] == "api:8080"
    assert caddy["environment"]["SAYSO_REALTIME_UPSTREAM"] == "realtime:8080"


def test_dockerfile_skips_only_locked_packages() -> None:
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    locked = {p["name"] for p in tomllib.loads((REPO_ROOT / "uv.lock").read_text())["package"]}
    skipped = re.findall(r"--no-install-package ([\w.-]+)", dockerfile)
    assert skipped
    assert set(skipped) <= locked


def test_dockerfile_layers_every_workspace_member() -> None:
    """Dependencies are installed from every member's pyproject.toml before any source is copied
    (the cached layer), and every member's source is copied after."""
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    root = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    members = sorted(
        str(path.parent.relative_to(REPO_ROOT))
        for pattern in root["tool"]["uv"]["workspace"]["members"]
        for path in REPO_ROOT.glob(f"{pattern}/pyproject.toml")
    )
    assert members
    deps_layer = dockerfile.index("--no-install-workspace")
    for member in members:
        copied = dockerfile.index(f"COPY {member}/pyproject.toml {member}/")
        assert copied < deps_layer, member
        top = member.split("/")[0]
        assert dockerfile.index(f"COPY {top} {top}") > deps_layer, member


def _adapt(env: dict[str, str]) -> dict[str, Any]:
    out = subprocess.run(
        [str(caddy_binary()), "adapt", "--config", str(CADDYFILE), "--adapter", "caddyfile"],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        check=True,
        timeout=30,
    )
    config: dict[str, Any] = json.loads(out.stdout)
    return config


def test_caddyfile_routes_match_between_local_and_compose() -> None:
    compose_env = _compose()["services"]["caddy"]["environment"]
    local_env = {
        "SAYSO_EDGE_BIND": "127.0.0.1",
        "SAYSO_EDGE_PORT": "8000",
        "SAYSO_API_UPSTREAM": "127.0.0.1:1",
        "SAYSO_REALTIME_UPSTREAM": "127.0.0.1:2",
    }
    compose_cfg = _adapt(compose_env)
    local_cfg = _adapt(local_env)
    for cfg, api, realtime in (
        (compose_cfg, "api:8080", "realtime:8080"),
        (local_cfg, "127.0.0.1:1", "127.0.0.1:2"),
    ):
        server = cfg["apps"]["http"]["servers"]["srv0"]
        routes = server["routes"]
        matcher = routes[0]["match"][0]["path"]
        assert matcher == ["/socket.io/*", "/api/v1/events", "/api/v1/events/*", "/api/v1/reviews/*/wait"]
        text = json.dumps(routes)
        assert f'"dial": "{realtime}"' in text
        assert f'"dial": "{api}"' in text
        assert cfg["admin"]["disabled"] is True
    assert compose_cfg["apps"]["http"]["servers"]["srv0"]["listen"] == ["0.0.0.0:8000"]
    assert local_cfg["apps"]["http"]["servers"]["srv0"]["listen"] == ["127.0.0.1:8000"]


def test_prometheus_scrapes_every_service() -> None:
    config = yaml.safe_load((REPO_ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    names = config["scrape_configs"][0]["dns_sd_configs"][0]["names"]
    assert sorted(names) == sorted(SERVICES)
