"""``sayso-mcp``: the MCP server, over stdio (default) or streamable HTTP (``--http``)."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from dataclasses import replace

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse

import sayso
from sayso_mcp import config, http_access
from sayso_mcp.tools import Clients, add_plugin_tools, build_server, log

# Plugin tools are fetched at start-up; a slow or missing plugins endpoint must not hold it up.
PLUGIN_FETCH_SECONDS = 5.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="sayso-mcp",
        description="MCP server for Sayso, with the tools of Placet's MCP server. Configured from "
        "SAYSO_URL / SAYSO_API_KEY / SAYSO_DEFAULT_CHANNEL (or PLACET_API_URL / PLACET_API_KEY / "
        "PLACET_DEFAULT_CHANNEL).",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--stdio", action="store_const", const="stdio", dest="transport", help="stdio (default)"
    )
    mode.add_argument("--http", action="store_const", const="http", dest="transport", help="streamable HTTP")
    parser.add_argument("--host", help="HTTP: address to listen on (default 127.0.0.1, SAYSO_MCP_HOST)")
    parser.add_argument("--port", type=int, help="HTTP: port (default 3002, MCP_PORT)")
    parser.add_argument("--path", help="HTTP: endpoint path (default /mcp, MCP_PATH)")
    parser.add_argument(
        "--share-configured-key",
        action="store_true",
        default=None,
        help="HTTP: serve callers that send no x-api-key with SAYSO_API_KEY (off by default; "
        "SAYSO_MCP_SHARE_CONFIGURED_KEY)",
    )
    parser.add_argument(
        "--allowed-host",
        action="append",
        default=None,
        metavar="HOST[:PORT]",
        help="HTTP: a Host name callers use, besides loopback and the bound address (repeatable; "
        "SAYSO_MCP_ALLOWED_HOSTS)",
    )
    return parser.parse_args(argv)


async def serve(settings: config.Settings) -> None:
    clients = Clients(settings)
    server = build_server(settings, clients)

    @server.custom_route("/health", methods=["GET"])  # type: ignore[untyped-decorator]
    async def health(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    try:
        if settings.api_key:
            try:
                with anyio.fail_after(PLUGIN_FETCH_SECONDS):
                    manifests = await (await clients.get(None)).list_plugins()
                added = add_plugin_tools(server, settings, clients, manifests)
                if added:
                    log(f"plugin tools: {', '.join(added)}")
            except (sayso.SaysoError, TimeoutError, ValueError) as exc:
                log(f"no plugin tools ({exc})")
        if settings.transport == "stdio":
            log(f"serving over stdio for {settings.api_url}")
            await server.run_stdio_async()
        else:
            for warning in http_access.start_warnings(settings):
                log(warning)
            log(f"serving streamable HTTP on http://{settings.host}:{settings.port}{settings.path}")
            await server.run_streamable_http_async(
                host=settings.host,
                port=settings.port,
                streamable_http_path=settings.path,
                transport_security=http_access.transport_security(settings),
            )
    finally:
        await clients.aclose()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    env = dict(os.environ)
    if args.share_configured_key:
        env["SAYSO_MCP_SHARE_CONFIGURED_KEY"] = "true"
    if args.allowed_host:
        env["SAYSO_MCP_ALLOWED_HOSTS"] = ",".join(
            [env.get("SAYSO_MCP_ALLOWED_HOSTS", ""), *args.allowed_host]
        )
    try:
        settings = config.load(env, transport=args.transport)
    except config.ConfigError as exc:
        log(str(exc))
        sys.exit(2)
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port), ("path", args.path)) if v}
    if overrides:
        settings = replace(settings, **overrides)
    with contextlib.suppress(KeyboardInterrupt):
        anyio.run(serve, settings)


if __name__ == "__main__":
    main()
