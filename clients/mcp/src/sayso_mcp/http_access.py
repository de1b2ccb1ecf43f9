"""Who may use the MCP server over HTTP: the Host and Origin a request may carry, and what the
operator is told at start when the listener reaches further than this machine.

The ``mcp`` library checks Host and Origin (DNS-rebinding protection) only when it is bound to a
loopback address and given no settings; bound to ``0.0.0.0`` it checks nothing, so a web page
on any site could make a visitor's browser call the tools. Here the check is always on: loopback
names, the address the server is bound to, and the names the operator lists.
"""

from __future__ import annotations

import ipaddress

from mcp.server.transport_security import TransportSecuritySettings

from sayso_mcp.config import Settings

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
WILDCARD_BINDS = ("", "0.0.0.0", "::", "[::]")


def is_loopback(host: str) -> bool:
    bare = host.strip("[]")
    if bare == "localhost":
        return True
    try:
        return ipaddress.ip_address(bare).is_loopback
    except ValueError:
        return False


def _host_name(bind: str) -> str:
    """How a bound address appears in a Host header (IPv6 in brackets)."""
    bare = bind.strip("[]")
    try:
        return f"[{bare}]" if ipaddress.ip_address(bare).version == 6 else bare
    except ValueError:
        return bare.lower()


def allowed_hosts(settings: Settings) -> list[str]:
    names = list(LOOPBACK_HOSTS)
    if settings.host not in WILDCARD_BINDS:
        names.append(_host_name(settings.host))
    names.extend(settings.allowed_hosts)
    out: list[str] = []
    for name in dict.fromkeys(names):
        # A name without a port matches that name on any port; host:port only itself.
        has_port = "]:" in name if name.startswith("[") else ":" in name
        out.extend([name] if has_port else [name, f"{name}:*"])
    return out


def transport_security(settings: Settings) -> TransportSecuritySettings:
    hosts = allowed_hosts(settings)
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=hosts,
        allowed_origins=[f"{scheme}://{host}" for host in hosts for scheme in ("http", "https")],
    )


def start_warnings(settings: Settings) -> list[str]:
    """What the operator must know before HTTP callers arrive (printed at start)."""
    if settings.transport != "http":
        return []
    warnings: list[str] = []
    listener = f"http://{_host_name(settings.host) or '0.0.0.0'}:{settings.port}{settings.path}"
    if not is_loopback(settings.host):
        hosts = ", ".join(h for h in allowed_hosts(settings) if not h.endswith(":*"))
        warnings.append(
            f"WARNING: {listener} is reachable from other machines; callers must send their own "
            f"x-api-key, and a request's Host must be one of: {hosts} "
            "(add the names callers use in SAYSO_MCP_ALLOWED_HOSTS)"
        )
    if settings.share_configured_key:
        warnings.append(
            "WARNING: SAYSO_MCP_SHARE_CONFIGURED_KEY is on: any caller of "
            f"{listener} that sends no x-api-key acts with the configured SAYSO_API_KEY "
            "(its owner's channels, messages and reviews)"
        )
    return warnings
