"""The HTTP side: one aiohttp session per process, guarded by the SSRF resolver, that turns a
request into an ``Attempt`` (never an exception)."""

from __future__ import annotations

import asyncio
import time

import aiohttp
from aiohttp.resolver import AsyncResolver
from yarl import URL

from sayso_common import attempts
from sayso_common.attempts import ErrorKind
from sayso_common.clock import utcnow
from sayso_common.deliveries import BODY_EXCERPT, Attempt
from sayso_common.resolver import GuardedResolver
from sayso_common.ssrf import AddressRefusedError, check_url
from sayso_dispatcher.settings import DispatcherSettings

# Response bytes read past the recorded excerpt to keep the connection reusable.
DRAIN_LIMIT = 64 * 1024
# URLs whose pre-connect verdict is remembered (a handful of receivers get most deliveries).
CHECKED_URLS = 10_000
# Named in an address refusal: the one setting that lifts it.
ALLOW_LIST_SETTING = "SAYSO_DISPATCHER_ALLOWED_NETWORKS"


class Sender:
    def __init__(self, settings: DispatcherSettings, instance: str) -> None:
        self._allowed = tuple(settings.allowed_networks)
        self._instance = instance
        # url -> (refusal reason, parsed URL): check_url is pure, and parsing the same URL with
        # yarl twice per request (the guard, then aiohttp) showed up in profiles.
        self._checked: dict[str, tuple[str | None, URL | None]] = {}
        connector = aiohttp.TCPConnector(
            resolver=GuardedResolver(
                self._allowed,
                AsyncResolver(nameservers=settings.dispatcher_dns_servers)
                if settings.dispatcher_dns_servers
                else None,
                setting=ALLOW_LIST_SETTING,
            ),
            limit=settings.concurrency,
            limit_per_host=settings.dispatcher_per_host_concurrency,
            # Vetted answers may be reused briefly; they were checked when resolved.
            ttl_dns_cache=30,
        )
        self.session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=settings.timeout_seconds),
            cookie_jar=aiohttp.DummyCookieJar(),
            skip_auto_headers=("User-Agent",),
        )

    async def close(self) -> None:
        await self.session.close()

    def _check(self, url: str) -> tuple[str | None, URL | None]:
        known = self._checked.get(url)
        if known is None:
            refused = check_url(url, self._allowed, ALLOW_LIST_SETTING)
            known = (refused, None if refused else URL(url))
            if len(self._checked) >= CHECKED_URLS:
                self._checked.clear()
            self._checked[url] = known
        return known

    @staticmethod
    async def _drain(resp: aiohttp.ClientResponse) -> None:
        """Read the rest of a modest body so the connection goes back to the pool; a large one
        is cut off (the connection is closed instead of reading it all)."""
        left = DRAIN_LIMIT
        while left > 0 and not resp.content.at_eof():
            chunk = await resp.content.read(min(left, 16 * 1024))
            if not chunk:
                break
            left -= len(chunk)

    @property
    def instance_name(self) -> str:
        return self._instance

    async def post(self, url: str, method: str, body: bytes, headers: dict[str, str]) -> Attempt:
        at = utcnow()
        started = time.perf_counter()

        def done(
            status: int | None,
            kind: ErrorKind | None,
            error: str | None,
            excerpt: str | None = None,
            retry_after: float | None = None,
        ) -> Attempt:
            return Attempt(
                at=at,
                duration_ms=(time.perf_counter() - started) * 1000,
                status_code=status,
                error_kind=kind,
                error=error,
                body=excerpt,
                retry_after=retry_after,
                by=self._instance,
            )

        refused, target = self._check(url)
        if refused or target is None:
            return done(None, ErrorKind.SSRF, f"refused by the SSRF guard: {refused}")
        try:
            # Redirects are never followed: the next hop could be anywhere, including inside.
            async with self.session.request(
                method, target, data=body, headers=headers, allow_redirects=False
            ) as resp:
                excerpt = (await resp.content.read(BODY_EXCERPT)).decode("utf-8", "replace")
                await self._drain(resp)
                status = resp.status
                kind = attempts.answer_kind(status)
                if kind is None:
                    return done(status, None, None, excerpt)
                if kind is ErrorKind.REDIRECT:
                    where = resp.headers.get("Location", "(no Location)")
                    return done(status, kind, f"redirect not followed: {status} to {where}", excerpt)
                after = attempts.retry_after(status, resp.headers.get("Retry-After"), at)
                return done(status, kind, f"HTTP {status}", excerpt, after)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Whatever goes wrong is still an attempt with a reason, never a lost outcome.
            kind = attempts.error_kind(exc)
            return done(None, kind, _describe(kind, exc))


def _describe(kind: ErrorKind, exc: Exception) -> str:
    """The attempt's error text (shown to the agent's owner: the receiver's host may appear, a
    secret of ours never does)."""
    if kind is ErrorKind.TIMEOUT:
        return "no complete answer within the timeout"
    if kind is ErrorKind.SSRF and isinstance(exc, aiohttp.ClientConnectorError):
        reason = exc.os_error.reason if isinstance(exc.os_error, AddressRefusedError) else exc
        return f"refused by the SSRF guard: {reason}"
    if kind is ErrorKind.INVALID_URL:
        return f"invalid URL: {exc}"
    if kind is ErrorKind.INVALID_REQUEST:
        return f"request refused before sending: {exc}"[:500]
    if kind is ErrorKind.TLS:
        return f"TLS failed: {exc}"[:500]
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect: {exc.os_error.strerror or exc}"
    return f"{type(exc).__name__}: {exc}"[:500]
