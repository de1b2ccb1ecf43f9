"""The plugin list (freeform renderers) as Placet's agents and MCP server read it."""

from __future__ import annotations

import re

from sayso_api import plugins
from tests.support.stack import Owner, RunningStack

SHIPPED = {"json", "markdown", "table", "status-badge"}
# Placet's PluginManifestSchema: what its MCP server reads to build send_<name>_message tools.
MANIFEST_KEYS = {
    "name",
    "displayName",
    "description",
    "version",
    "author",
    "icon",
    "inputSchema",
    "permissions",
}


async def test_list_is_a_bare_array_of_manifests(owner: Owner) -> None:
    for client in (owner.agent, owner.human):
        resp = await client.get("/api/v1/plugins")
        assert resp.status_code == 200, resp.text
        listed = resp.json()
        assert isinstance(listed, list)
        assert {p["name"] for p in listed} == SHIPPED
    for manifest in listed:
        assert set(manifest) == MANIFEST_KEYS
        assert manifest["displayName"]
        assert manifest["description"]
        assert re.fullmatch(r"\d+\.\d+\.\d+", manifest["version"])
        schema = manifest["inputSchema"]
        assert schema["type"] == "object"
        assert set(schema["required"]) <= set(schema["properties"])
        assert manifest["permissions"] == {"httpRequests": False}


async def test_get_one_and_404(owner: Owner) -> None:
    badge = await owner.agent.get("/api/v1/plugins/status-badge")
    assert badge.status_code == 200, badge.text
    assert badge.json()["inputSchema"]["required"] == ["label", "variant"]
    assert badge.json()["inputSchema"]["properties"]["variant"]["enum"] == [
        "success",
        "warning",
        "error",
        "info",
        "neutral",
    ]
    missing = await owner.agent.get("/api/v1/plugins/kroki-diagram")
    assert missing.status_code == 404
    assert missing.json() == {"error": {"code": "not_found", "message": 'plugin "kroki-diagram" not found'}}


async def test_needs_credentials(stack: RunningStack) -> None:
    async with stack.client() as anonymous:
        for path in ("/api/v1/plugins", "/api/v1/plugins/json"):
            resp = await anonymous.get(path)
            assert resp.status_code == 401, resp.text
            assert resp.json()["error"]["code"] == "unauthorized"


async def test_freeform_review_names_a_plugin(owner: Owner) -> None:
    """The flow Placet's MCP plugin tools use: payload = {plugin, ...data}; the inbox finds the
    renderer in metadata.plugin."""
    channel = (await owner.create_agent())["id"]
    message = await owner.post_message(
        channel,
        text="Pick the rollout",
        review={
            "type": "freeform",
            "payload": {"plugin": "table", "columns": ["region", "pods"], "rows": [["eu", 3], ["us", 5]]},
        },
    )
    assert message["metadata"]["plugin"] == "table"
    assert message["review"]["payload"]["rows"] == [["eu", 3], ["us", 5]]


def test_registry_names_are_unique_and_findable() -> None:
    names = [p.name for p in plugins.PLUGINS]
    assert len(names) == len(set(names))
    assert all(plugins.find(n) is not None for n in names)
    assert plugins.find("JSON") is None
