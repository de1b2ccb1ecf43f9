"""The API serves the web app at / (through the edge) without disturbing the JSON API."""

from __future__ import annotations

import re

from tests.support.stack import RunningStack


async def test_page_and_assets_are_served_locally(stack: RunningStack) -> None:
    async with stack.client() as client:
        page = await client.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp
        assert "object-src 'none'" in csp
        # Every script and stylesheet is local: no CDN.
        refs = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert refs
        assert all(ref.startswith("/") for ref in refs), refs
        for ref in refs:
            asset = await client.get(ref)
            assert asset.status_code == 200, ref
        script = await client.get("/static/app.js")
        assert script.headers["content-type"].split(";")[0] in ("text/javascript", "application/javascript")
        assert script.headers["cache-control"] == "no-cache"
        imports = re.findall(r'from "\./([\w.]+)"', script.text)
        assert "live.js" in imports
        for name in imports:
            assert (await client.get(f"/static/{name}")).status_code == 200, name
        missing = await client.get("/static/nope.js")
        assert missing.status_code == 404


async def test_json_api_is_unchanged(stack: RunningStack) -> None:
    async with stack.client() as client:
        assert (await client.get("/docs")).status_code == 200
        schema = (await client.get("/openapi.json")).json()
        assert "/" not in schema["paths"]
        assert "/api/v1/stats/overview" in schema["paths"]
        unknown = await client.get("/api/v1/nothing-here")
        assert unknown.status_code == 404
        assert unknown.json()["error"]["code"] == "not_found"
        assert (await client.post("/api/v1/auth/login", json={})).status_code == 422
