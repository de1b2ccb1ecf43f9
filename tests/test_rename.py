"""The product's former name, Signoff: where it may still appear, and the compatibility it keeps
for one release (old environment variables with a warning, the old local state directory)."""

from __future__ import annotations

import secrets
import subprocess
import warnings
from pathlib import Path

import httpx
import pytest
from pymongo import AsyncMongoClient

from sayso import config as sdk_config
from sayso_common import legacy
from sayso_common.mongo import Doc
from sayso_devstack.processes import spawn_service, wait_healthy
from sayso_devstack.stack import MONGO_DB_FILE, load_env_file, take_over_old_state
from sayso_mcp import config as mcp_config
from tests.conftest import Infra

ROOT = Path(__file__).resolve().parents[1]
# The only tracked files that may name it: the two shims (services and the standalone SDK), the
# README's one note, and this test.
ALLOWED = {
    "libs/common/src/sayso_common/legacy.py",
    "clients/sdk/src/sayso/config.py",
    "README.md",
    "tests/test_rename.py",
}


def test_no_file_says_the_old_name_but_the_shims_and_one_readme_note() -> None:
    found = subprocess.run(
        ["git", "grep", "-I", "-i", "-l", "signoff", "--", ".", ":!uv.lock"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    assert set(found) <= ALLOWED, sorted(set(found) - ALLOWED)
    paths = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert "signoff" not in paths.lower()
    readme = [line for line in (ROOT / "README.md").read_text().splitlines() if "signoff" in line.lower()]
    assert len(readme) == 1, readme
    assert readme[0].startswith("**Formerly Signoff.**")


@pytest.mark.parametrize(
    ("environ", "after", "said"),
    [
        ({}, {}, []),
        ({"SAYSO_PORT": "8001"}, {"SAYSO_PORT": "8001"}, []),
        (
            {"SIGNOFF_PORT": "8001"},
            {"SIGNOFF_PORT": "8001", "SAYSO_PORT": "8001"},
            ["SIGNOFF_PORT is deprecated: rename it SAYSO_PORT"],
        ),
        (
            {"SIGNOFF_PORT": "8001", "SAYSO_PORT": "9000"},
            {"SIGNOFF_PORT": "8001", "SAYSO_PORT": "9000"},
            ["SIGNOFF_PORT is ignored because SAYSO_PORT is set"],
        ),
        (
            {"SIGNOFF_SECRET_KEY": "k" * 40, "SIGNOFF_HOME": "/srv", "OTHER": "x"},
            {
                "SIGNOFF_SECRET_KEY": "k" * 40,
                "SAYSO_SECRET_KEY": "k" * 40,
                "SIGNOFF_HOME": "/srv",
                "SAYSO_HOME": "/srv",
                "OTHER": "x",
            },
            [
                "SIGNOFF_HOME is deprecated: rename it SAYSO_HOME",
                "SIGNOFF_SECRET_KEY is deprecated: rename it SAYSO_SECRET_KEY",
            ],
        ),
    ],
)
def test_old_variables_are_read_as_the_new_ones_with_a_warning(
    environ: dict[str, str], after: dict[str, str], said: list[str]
) -> None:
    env = dict(environ)
    warned = legacy.adopt_old_environment(env)
    assert env == after
    assert [w.split(" (")[0] for w in warned] == said
    assert not any("k" * 40 in w or "/srv" in w for w in warned)  # names only, never values


async def test_a_service_started_with_only_the_old_names_runs_on_them(infra: Infra) -> None:
    """The API, with every setting under its former name: it starts, serves, writes to the
    database the old name chose, and its log names each new name."""
    database = f"old_names_{secrets.token_hex(4)}"
    admin = {"email": "old@example.test", "password": secrets.token_urlsafe(12)}
    new = infra.service_env(
        SAYSO_MONGO_DB=database,
        SAYSO_BOOTSTRAP_ADMIN_EMAIL=admin["email"],
        SAYSO_BOOTSTRAP_ADMIN_PASSWORD=admin["password"],
    )
    old = {"SIGNOFF_" + key.removeprefix("SAYSO_"): value for key, value in new.items()}
    assert not any(key.startswith("SAYSO_") for key in old)
    proc = spawn_service("api", infra.log_dir, old, name="api-old-names")
    client: AsyncMongoClient[Doc] = AsyncMongoClient(infra.mongo_url)
    try:
        wait_healthy(proc)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{proc.port}", timeout=30) as api:
            ready = await api.get("/readyz")
            assert ready.status_code == 200, ready.text
            login = await api.post("/api/v1/auth/login", json=admin)
            assert login.status_code == 200, login.text
        assert await client[database]["users"].count_documents({"email": admin["email"]}) == 1
        logged = proc.log_path.read_text()
        for name in ("MONGO_URL", "MONGO_DB", "SECRET_KEY", "KAFKA_BOOTSTRAP"):
            assert f"SIGNOFF_{name} is deprecated: rename it SAYSO_{name}" in logged
        assert new["SAYSO_SECRET_KEY"] not in logged
        assert admin["password"] not in logged
    finally:
        proc.popen.terminate()
        proc.popen.wait(30)
        await client.drop_database(database)
        await client.close()


def test_the_sdk_and_mcp_server_read_the_old_names_with_a_future_warning() -> None:
    with pytest.warns(FutureWarning, match="SIGNOFF_URL is deprecated: rename it SAYSO_URL"):
        assert sdk_config.env("SAYSO_URL", {"SIGNOFF_URL": "http://old"}) == "http://old"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new name, or none at all, warns of nothing
        assert (
            sdk_config.env("SAYSO_URL", {"SAYSO_URL": "http://new", "SIGNOFF_URL": "http://old"})
            == "http://new"
        )
        assert sdk_config.env("SAYSO_URL", {}) is None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        settings = mcp_config.load({"SIGNOFF_URL": "http://old/", "SIGNOFF_API_KEY": "hp_x"})
    assert {str(w.message).split(" is ")[0] for w in caught if w.category is FutureWarning} == {
        "SIGNOFF_URL",
        "SIGNOFF_API_KEY",
    }
    assert (settings.api_url, settings.api_key) == ("http://old", "hp_x")


def test_make_run_takes_over_the_old_state_directory_once(tmp_path: Path) -> None:
    old = tmp_path / legacy.OLD_STATE_DIR
    (old / "mongo").mkdir(parents=True)
    (old / "mongo" / "data").write_text("kept")
    (old / "local.env").write_text("SIGNOFF_URL=http://127.0.0.1:8000\nSIGNOFF_API_KEY=hp_abc\n")
    new = tmp_path / ".sayso"
    take_over_old_state(new)
    assert not old.exists()
    assert (new / "mongo" / "data").read_text() == "kept"
    assert load_env_file(new / "local.env") == {
        "SAYSO_URL": "http://127.0.0.1:8000",
        "SAYSO_API_KEY": "hp_abc",
    }
    assert (new / "local.env").stat().st_mode & 0o777 == 0o600
    assert (new / MONGO_DB_FILE).read_text().strip() == legacy.OLD_MONGO_DB
    # Once: with the new directory in place, an old one appearing again is left alone.
    old.mkdir()
    take_over_old_state(new)
    assert old.exists()
    assert (new / "mongo" / "data").read_text() == "kept"
