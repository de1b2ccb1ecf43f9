"""Table tests for the SSRF guard's pure checks, and the resolver against the real system
resolver (``localhost`` resolves without a network)."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from sayso_common.resolver import GuardedResolver
from sayso_common.ssrf import (
    AddressRefusedError,
    check_url,
    embedded_ipv4,
    ip_literal,
    parse_ipv4_spelling,
    refusal,
    vet_host,
)

LOOPBACK = [ipaddress.ip_network("127.0.0.0/8")]


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("8.8.8.8", None),
        ("1.1.1.1", None),
        ("93.184.216.34", None),
        ("2606:4700:4700::1111", None),
        ("2a00:1450:4001:80b::200e", None),
        ("127.0.0.1", "loopback"),
        ("127.255.255.254", "loopback"),
        ("10.0.0.1", "private"),
        ("10.255.255.255", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.255", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),  # cloud metadata
        ("169.254.0.1", "link-local"),
        ("100.64.0.1", "CGNAT"),
        ("100.127.255.254", "CGNAT"),
        ("0.0.0.0", "unspecified"),
        ("0.1.2.3", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("192.0.0.8", "IETF protocol"),
        ("192.0.2.1", "documentation"),
        ("198.51.100.7", "documentation"),
        ("203.0.113.9", "documentation"),
        ("198.18.0.1", "benchmarking"),
        ("192.88.99.1", "6to4 relay"),
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fe80::1", "link-local"),
        ("fc00::1", "unique-local"),
        ("fd12:3456:789a::1", "unique-local"),
        ("fec0::1", "site-local"),
        ("ff02::1", "multicast"),
        ("2001:db8::1", "documentation"),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "IETF special-purpose"),  # Teredo
        ("100::1", "discard-only"),
        ("64:ff9b:1::a00:1", "NAT64 local-use"),
        # IPv6 forms that carry an IPv4 address are judged by that address.
        ("::ffff:127.0.0.1", "IPv4-mapped form of a loopback"),
        ("::ffff:7f00:1", "IPv4-mapped form of a loopback"),
        ("::ffff:10.1.2.3", "IPv4-mapped form of a private"),
        ("::ffff:169.254.169.254", "IPv4-mapped form of a link-local"),
        ("::ffff:8.8.8.8", None),
        ("64:ff9b::127.0.0.1", "NAT64 form of a loopback"),
        ("64:ff9b::a9fe:a9fe", "NAT64 form of a link-local"),
        ("64:ff9b::808:808", None),
        ("2002:7f00:1::", "6to4 form of a loopback"),
        ("2002:a00:1::1", "6to4 form of a private"),
        ("2002:c0a8:101::", "6to4 form of a private"),
        ("2002:808:808::1", None),
        ("::127.0.0.1", "IPv4-compatible form of a loopback"),
        ("::10.0.0.1", "IPv4-compatible form of a private"),
        ("::ffff:0:127.0.0.1", "IPv4-translated form of a loopback"),
    ],
)
def test_address_refusals(address: str, reason: str | None) -> None:
    got = refusal(ipaddress.ip_address(address))
    if reason is None:
        assert got is None
    else:
        assert got is not None
        assert reason in got


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::ffff:127.0.0.1", True),  # the allow-list applies to the embedded address too
        ("10.0.0.1", False),
        ("::1", False),  # only the IPv4 loopback network was allowed
        ("169.254.169.254", False),
    ],
)
def test_allow_list_is_explicit(address: str, allowed: bool) -> None:
    assert (refusal(ipaddress.ip_address(address), LOOPBACK) is None) is allowed


@pytest.mark.parametrize(
    ("spelling", "address"),
    [
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0X7F000001", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0x7f.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("167772161", "10.0.0.1"),
        ("0xa9fea9fe", "169.254.169.254"),
        ("0251.0376.0251.0376", "169.254.169.254"),
        ("8.8.8.8", "8.8.8.8"),
        ("0", "0.0.0.0"),
        ("127.0.0.1.", "127.0.0.1"),
    ],
)
def test_ipv4_spellings(spelling: str, address: str) -> None:
    assert parse_ipv4_spelling(spelling) == ipaddress.IPv4Address(address)


@pytest.mark.parametrize(
    "name", ["example.com", "hooks.example", "1.2.3.example", "0x7g", "08.1.1.1x", "a.b"]
)
def test_names_are_not_spellings(name: str) -> None:
    assert parse_ipv4_spelling(name) is None


@pytest.mark.parametrize("bad", ["256.0.0.1", "1.2.3.256", "4294967296", "1.16777216"])
def test_out_of_range_spellings_are_errors(bad: str) -> None:
    with pytest.raises(ValueError, match="out of range"):
        parse_ipv4_spelling(bad)


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("[::1]", "::1"),
        ("fe80::1%eth0", "fe80::1"),
        ("::ffff:127.0.0.1", "::ffff:127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("example.com", None),
    ],
)
def test_ip_literal(host: str, address: str | None) -> None:
    expected = ipaddress.ip_address(address) if address else None
    assert ip_literal(host) == expected


def test_embedded_forms_name_themselves() -> None:
    assert embedded_ipv4(ipaddress.IPv6Address("2606:4700::1111")) is None
    assert embedded_ipv4(ipaddress.IPv6Address("::1")) is None
    form = embedded_ipv4(ipaddress.IPv6Address("64:ff9b::c0a8:1"))
    assert form == ("NAT64", ipaddress.IPv4Address("192.168.0.1"))


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://hooks.example.com/x", None),  # names are checked by the resolver
        ("http://8.8.8.8/hook", None),
        ("http://127.0.0.1:8080/hook", "loopback"),
        ("http://[::1]/hook", "loopback"),
        ("http://[::ffff:127.0.0.1]/hook", "IPv4-mapped"),
        ("http://[::ffff:a9fe:a9fe]/latest/meta-data", "link-local"),
        ("http://[64:ff9b::a00:1]/", "NAT64"),
        ("http://[fd00::1]/", "unique-local"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://100.100.100.200/", "CGNAT"),  # Alibaba metadata
        ("http://2130706433/", "loopback"),
        ("http://0x7f000001/", "loopback"),
        ("http://0177.0.0.1/", "loopback"),
        ("http://167772161/", "private"),
        ("http://0xa9fea9fe/", "link-local"),
        ("http://10.1/", "private"),
        ("http://0/", "unspecified"),
        ("http://user:pw@192.168.0.10/", "private"),
        ("http://256.256.256.256/", "out of range"),
        ("ftp://example.com/", "scheme"),
        ("file:///etc/passwd", "scheme"),
        ("gopher://127.0.0.1/", "scheme"),
        ("http:///nohost", "no host"),
        ("http://example.com:99999/", "malformed"),
        # Spellings that only become an address after yarl's IDNA / Unicode normalisation: aiohttp
        # connects to such a literal without asking the resolver, so check_url must see it too.
        ("http://127\u30020\u30020\u30021:8080/", "loopback"),  # ideographic full stops
        ("http://10\uff0e0\uff0e0\uff0e5/", "private"),  # fullwidth full stops
        ("http://\u2460\u24ea.0.0.5/", "private"),  # enclosed digits one and zero
        ("http://\uff11\uff10.0.0.5/", "private"),  # fullwidth digits
        ("http://169.254.169.254.:80/", "link-local"),  # trailing dot
        ("http://127.0.0.1:0080/", "loopback"),  # port with leading zeros
        ("http://ok.example:%38%30/", "malformed"),  # percent-encoded port
        ("http://ok.example\\@127.0.0.1/", "malformed"),  # backslash in the authority
        ("http://b\u00fccher.example/", None),  # a real IDN name: resolved (and checked) as punycode
        # Once sent one by one through the whole stack (tests/dispatcher/test_delivery.py keeps
        # two), with the metadata URL above.
        ("http://10.0.0.7:8080/hook", "private"),
        ("http://192.168.1.20/hook", "private"),
        ("http://100.64.1.1/hook", "CGNAT"),
        ("http://167772161/hook", "private"),  # 10.0.0.1 spelt in decimal
        ("http://0xa9fea9fe/hook", "link-local"),  # 169.254.169.254 in hex
        ("http://[::ffff:a00:1]/hook", "IPv4-mapped"),
        ("http://[64:ff9b::a9fe:a9fe]/hook", "NAT64"),
        ("http://[::1]:9/hook", "loopback"),
        ("http://[fd00::1]/hook", "unique-local"),
    ],
)
def test_check_url(url: str, reason: str | None) -> None:
    got = check_url(url)
    if reason is None:
        assert got is None
    else:
        assert got is not None
        assert reason in got


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:9/x", None),
        ("http://2130706433:9/x", None),
        ("http://10.0.0.1/x", "private"),
        # The test stacks allow 127.0.0.0/8: the IPv6 loopback and every other table above stay out.
        ("http://[::1]:9/hook", "loopback"),
        ("http://[::ffff:a00:1]/hook", "IPv4-mapped"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[fd00::1]/hook", "unique-local"),
    ],
)
def test_check_url_allow_list(url: str, reason: str | None) -> None:
    refused = check_url(url, LOOPBACK)
    if reason is None:
        assert refused is None
    else:
        assert refused is not None
        assert reason in refused


async def test_resolver_refuses_a_name_that_resolves_inside() -> None:
    resolver = GuardedResolver()
    try:
        with pytest.raises(AddressRefusedError, match="loopback"):
            await resolver.resolve("localhost", 80)
        with pytest.raises(AddressRefusedError, match="loopback"):
            await resolver.resolve("2130706433", 80)  # a spelling aiohttp would hand to DNS
    finally:
        await resolver.close()


async def test_resolver_pins_vetted_addresses_when_allowed() -> None:
    resolver = GuardedResolver(LOOPBACK)
    try:
        records = await resolver.resolve("127.1", 8080)
        assert [(r["host"], r["port"]) for r in records] == [("127.0.0.1", 8080)]
    finally:
        await resolver.close()


@pytest.mark.parametrize(
    ("url", "named"),
    [
        # An address the allow-list could let through names the setting, with the network to add.
        ("http://127.0.0.1:9/hook", "SAYSO_X_ALLOWED_NETWORKS=127.0.0.1/32"),
        ("http://[::1]/hook", "SAYSO_X_ALLOWED_NETWORKS=::1/128"),
        ("http://0x7f000001/", "SAYSO_X_ALLOWED_NETWORKS=127.0.0.1/32"),
        ("http://[::ffff:10.1.2.3]/", "SAYSO_X_ALLOWED_NETWORKS=::ffff:a01:203/128"),
        # What no setting lifts names none.
        ("ftp://127.0.0.1/", None),
        ("http:///nohost", None),
        ("http://256.256.256.256/", None),
        ("http://example.com:99999/", None),
    ],
)
def test_an_address_refusal_names_the_setting_that_lifts_it(url: str, named: str | None) -> None:
    got = check_url(url, setting="SAYSO_X_ALLOWED_NETWORKS")
    assert got is not None
    if named is None:
        assert "SAYSO_X_ALLOWED_NETWORKS" not in got
    else:
        assert named in got, got
        assert "the server setting SAYSO_X_ALLOWED_NETWORKS lets it through" in got
    # Without a setting to name (a caller that has none), the reason alone.
    assert "ALLOWED_NETWORKS" not in (check_url(url) or "")


async def test_resolver_refusal_names_the_setting() -> None:
    resolver = GuardedResolver(setting="SAYSO_X_ALLOWED_NETWORKS")
    try:
        with pytest.raises(
            AddressRefusedError, match=r"localhost resolves to a loopback .*SAYSO_X_ALLOWED_NETWORKS"
        ):
            await resolver.resolve("localhost", 80, socket.AF_INET)
        with pytest.raises(AddressRefusedError, match=r"SAYSO_X_ALLOWED_NETWORKS=127\.0\.0\.1/32"):
            await resolver.resolve("2130706433", 80)
    finally:
        await resolver.close()


@pytest.mark.parametrize(
    ("host", "allowed", "refused"),
    [
        ("localhost", [], "localhost resolves to a loopback"),
        ("localhost", LOOPBACK, None),
        ("2130706433", [], "2130706433 is a loopback"),  # a numeric spelling, never sent to DNS
        ("127.0.0.1", LOOPBACK, None),
        ("93.184.215.14", [], None),
    ],
)
async def test_vet_host_gives_the_guarded_resolvers_verdict_without_aiohttp(
    host: str, allowed: list[ipaddress.IPv4Network], refused: str | None
) -> None:
    """The API's check when an endpoint is saved (it does not load aiohttp): the same verdict
    as the resolver the senders connect through, over the same system lookup."""
    resolver = GuardedResolver(list(allowed))
    try:
        if refused is None:
            await vet_host(host, list(allowed))
            await resolver.resolve(host, 0, socket.AF_UNSPEC)
            return
        with pytest.raises(AddressRefusedError, match=refused):
            await vet_host(host, list(allowed))
        with pytest.raises(AddressRefusedError, match=refused):
            await resolver.resolve(host, 0, socket.AF_UNSPEC)
    finally:
        await resolver.close()


async def test_vet_host_lets_a_name_that_does_not_resolve_fail_as_a_lookup() -> None:
    with pytest.raises(socket.gaierror) as caught:
        await vet_host("nothing.invalid")
    assert not isinstance(caught.value, AddressRefusedError)
