"""SSRF guard: which addresses an outbound request (a webhook, a Slack message) may reach.

Checked at connect time, not when the URL is saved: DNS can change between the two. The
resolver (``sayso_common.resolver.GuardedResolver``) resolves every A/AAAA record, refuses the
whole host if any record is internal, and hands aiohttp the vetted addresses, so the connection goes to exactly
what was checked (no second lookup to rebind). aiohttp skips the resolver for IP literals, so
those are checked on the URL before the request (``check_url``), including the odd IPv4
spellings ``inet_aton`` accepts (``2130706433``, ``0x7f.1``, ``0177.0.0.1``).

This module needs no aiohttp (8 MB resident at import): the API, which only vets a URL when an
endpoint is saved (``vet_host``) and sends nothing, does not load it (issue #36).

The allow-list (``SAYSO_DISPATCHER_ALLOWED_NETWORKS``, ``SAYSO_NOTIFIER_ALLOWED_NETWORKS``) is
the only way past the guard; it is empty in production and holds loopback in tests and
benchmarks. It lives in the contracts library because every service that sends to a URL a user
typed (the dispatcher, the notifier) must refuse the same addresses.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable, Sequence
from typing import Final

from yarl import URL

from sayso_common import numerals

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# No part of a hostname is longer (the whole name is at most 253 characters).
_PART_DIGITS: Final = 253
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class AddressRefusedError(OSError):
    """Raised instead of connecting; ``reason`` is shown to the agent's owner as is."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _nets(*cidrs: str) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(c) for c in cidrs)


# Named so a refusal says why. Order matters only for the name reported.
_V4_BLOCKED: Final[tuple[tuple[str, tuple[Network, ...]], ...]] = (
    ("unspecified", _nets("0.0.0.0/8")),
    ("loopback", _nets("127.0.0.0/8")),
    ("private", _nets("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")),
    ("link-local", _nets("169.254.0.0/16")),
    ("CGNAT", _nets("100.64.0.0/10")),
    ("IETF protocol assignments", _nets("192.0.0.0/24")),
    ("documentation", _nets("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")),
    ("benchmarking", _nets("198.18.0.0/15")),
    ("6to4 relay anycast", _nets("192.88.99.0/24")),
    ("multicast", _nets("224.0.0.0/4")),
    ("reserved", _nets("240.0.0.0/4")),
)

_V6_BLOCKED: Final[tuple[tuple[str, tuple[Network, ...]], ...]] = (
    ("unspecified", _nets("::/128")),
    ("loopback", _nets("::1/128")),
    ("NAT64 local-use", _nets("64:ff9b:1::/48")),
    ("discard-only", _nets("100::/64")),
    # Teredo (2001::/32) hides its IPv4 address XOR-ed; refuse the whole special block.
    ("IETF special-purpose", _nets("2001::/23")),
    ("documentation", _nets("2001:db8::/32", "3fff::/20")),
    ("unique-local", _nets("fc00::/7")),
    ("link-local", _nets("fe80::/10")),
    ("site-local", _nets("fec0::/10")),
    ("multicast", _nets("ff00::/8")),
)

_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_IPV4_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def embedded_ipv4(ip: ipaddress.IPv6Address) -> tuple[str, ipaddress.IPv4Address] | None:
    """The IPv4 address an IPv6 form carries, with the form's name; None if it carries none."""
    if ip.ipv4_mapped is not None:
        return "IPv4-mapped", ip.ipv4_mapped
    if ip.sixtofour is not None:
        return "6to4", ip.sixtofour
    low32 = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in _NAT64:
        return "NAT64", low32
    if ip in _IPV4_TRANSLATED:
        return "IPv4-translated", low32
    # ::a.b.c.d (deprecated IPv4-compatible); :: and ::1 are named on their own.
    if ip in _IPV4_COMPATIBLE and int(ip) > 1:
        return "IPv4-compatible", low32
    return None


def _blocked_name(ip: IPAddress) -> str | None:
    table = _V4_BLOCKED if ip.version == 4 else _V6_BLOCKED
    for name, networks in table:
        if any(ip in net for net in networks):
            return name
    # Anything else the IANA registries mark as not globally reachable.
    if not ip.is_global:
        return "not globally routable"
    return None


def _allowed(ip: IPAddress, allowed: Sequence[Network]) -> bool:
    return any(ip.version == net.version and ip in net for net in allowed)


def refusal(ip: IPAddress, allowed: Sequence[Network] = ()) -> str | None:
    """Why ``ip`` must not be reached, or None if it may be."""
    if _allowed(ip, allowed):
        return None
    if ip.version == 6:
        assert isinstance(ip, ipaddress.IPv6Address)
        inner = embedded_ipv4(ip)
        if inner is not None:
            form, v4 = inner
            if _allowed(v4, allowed):
                return None
            why = _blocked_name(v4)
            return f"{form} form of a {why} address ({v4})" if why else None
    why = _blocked_name(ip)
    return f"{why} address {ip}" if why else None


def parse_ipv4_spelling(host: str) -> ipaddress.IPv4Address | None:
    """Read ``host`` the way ``inet_aton`` does: 1-4 parts, each decimal, ``0x`` hex or
    leading-zero octal, the last part filling the remaining bytes. None if it is not numeric.
    Raises ValueError for numeric forms out of range (not an address, and not a hostname)."""
    parts = host.split(".")
    if host.endswith("."):
        parts = parts[:-1]
    if not 1 <= len(parts) <= 4 or not all(parts):
        return None
    values: list[int] = []
    for part in parts:
        p = part.lower()
        if p.startswith("0x"):
            value = numerals.parse_uint(p[2:] or "0", _PART_DIGITS, 16)
        elif len(p) > 1 and p.startswith("0"):
            value = numerals.parse_uint(p[1:], _PART_DIGITS, 8)
        else:
            value = numerals.parse_uint(p, _PART_DIGITS)
        if value is None:
            return None
        values.append(value)
    *head, last = values
    if any(v > 255 for v in head) or last >= 256 ** (4 - len(head)):
        raise ValueError(f"numeric host {host!r} is out of range")
    number = 0
    for v in head:
        number = number << 8 | v
    number = number << (8 * (4 - len(head))) | last
    return ipaddress.IPv4Address(number)


def ip_literal(host: str) -> IPAddress | None:
    """The address ``host`` spells, in any form a resolver or aiohttp would accept; None for a
    name that needs DNS."""
    bare = host.strip("[]").split("%", 1)[0]  # drop a zone id: fe80::1%eth0
    try:
        return ipaddress.ip_address(bare)
    except ValueError:
        pass
    return parse_ipv4_spelling(bare)


def lifted_by(why: str, ip: IPAddress, setting: str) -> str:
    """An address refusal, naming the allow-list ``setting`` that would let ``ip`` through (the
    refusal is shown to the agent's owner, who would otherwise not know a setting exists)."""
    if not setting:
        return why
    return (
        f"{why}; the server setting {setting} lets it through "
        f"(e.g. {setting}={ipaddress.ip_network(ip)}, then restart)"
    )


def check_url(url: str, allowed: Sequence[Network] = (), setting: str = "") -> str | None:
    """Refusal reason for a URL before any connection, or None to go ahead (names are then
    checked by the resolver when aiohttp connects). ``setting`` names the allow-list an address
    refusal should point at.

    The URL is read with yarl, the parser aiohttp itself uses, so the host checked is the host
    connected to: yarl applies IDNA and Unicode normalisation, which turns ``127。0。0。1``
    (ideographic full stops) or ``①②⑦.0.0.1`` (enclosed digits) into an IP literal that aiohttp
    then connects to without asking the resolver."""
    try:
        parts = URL(url)
        host = parts.raw_host
        _ = parts.port  # raises on a bad port
    except (ValueError, TypeError) as exc:
        return f"malformed URL: {exc}"
    if parts.scheme not in ("http", "https"):
        return f"scheme {parts.scheme or '(none)'!r} is not allowed; use http or https"
    if not host:
        return "URL has no host"
    try:
        literal = ip_literal(host)
    except ValueError as exc:
        return str(exc)
    if literal is None:
        return None
    why = refusal(literal, allowed)
    return lifted_by(why, literal, setting) if why else None


def vet_literal(host: str, allowed: Sequence[Network] = (), setting: str = "") -> IPAddress | None:
    """The address ``host`` spells, once the guard lets it through; None for a name that needs
    DNS. Raises AddressRefusedError for an internal address or a malformed numeric spelling."""
    try:
        literal = ip_literal(host)
    except ValueError as exc:
        raise AddressRefusedError(str(exc)) from None
    if literal is not None:
        why = refusal(literal, allowed)
        if why:
            raise AddressRefusedError(lifted_by(f"{host} is a {why}", literal, setting))
    return literal


def vet_addresses(
    host: str, addresses: Iterable[str], allowed: Sequence[Network] = (), setting: str = ""
) -> None:
    """Refuse ``host`` (AddressRefusedError) if any address it resolved to is internal: one
    internal record is enough, since a connection may go to any of them."""
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        why = refusal(ip, allowed)
        if why:
            raise AddressRefusedError(lifted_by(f"{host} resolves to a {why}", ip, setting))


async def vet_host(host: str, allowed: Sequence[Network] = (), setting: str = "") -> None:
    """The guard's verdict on ``host`` now, through the system resolver (the lookup aiohttp's
    ThreadedResolver makes, the guarded resolver's default): AddressRefusedError if refused,
    OSError if the name does not resolve."""
    if vet_literal(host, allowed, setting) is not None:
        return
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, 0, family=socket.AF_UNSPEC, type=socket.SOCK_STREAM, flags=socket.AI_ADDRCONFIG
    )
    vet_addresses(host, (str(info[4][0]) for info in infos), allowed, setting)
