"""The HTTP side: one aiohttp session per process, guarded by the SSRF resolver, that turns a
request into an ``Attempt`` (never an exception)."""

from __future__ import annotations

import asyncio
import time

import aiohttp
from aiohttp.resolver import AsyncResolver
from yarl import URL

from sayso_common import numerals
from sayso_common.clock import utcnow
from sayso_common.deliveries import BODY_EXCERPT, Attempt
from sayso_common.ssrf import AddressRefusedError, GuardedResolver, check_url
from sayso_dispatcher import retry
from sayso_dispatcher.settings import DispatcherSettings

# Response bytes read past the recorded excerpt to keep the connection reusable.
DRAIN_LIMIT = 64 * 1024
# URLs whose pre-connect verdict is remembered (a handful of receivers get most deliveries).
CHECKED_URLS = 10_000
# Named in an address refusal: the one setting that lifts it.
ALLOW_LIST_SETTING = "SAYSO_DISPATCHER_ALLOWED_NETWORKS"


class Sender:
    def __init__(self, settings: DispatcherSettings, instance: str) -> None:
        self._allowed = tuple(settings.dispatcher_allowed_networks)
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
            limit=settings.dispatcher_concurrency,
            limit_per_host=settings.dispatcher_per_host_concurrency,
            # Vetted answers may be reused briefly; they were checked when resolved.
            ttl_dns_cache=30,
        )
        self.session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=settings.dispatcher_timeout_seconds),
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
            kind: str | None,
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
            return done(None, retry.SSRF, f"refused by the SSRF guard: {refused}")
        try:
            # Redirects are never followed: the next hop could be anywhere, including inside.
            async with self.session.request(
                method, target, data=body, headers=headers, allow_redirects=False
            ) as resp:
                excerpt = (await resp.content.read(BODY_EXCERPT)).decode("utf-8", "replace")
                await self._drain(resp)
                status = resp.status
                after = numerals.retry_after_seconds(resp.headers.get("Retry-After"), at)
                if 300 <= status < 400:
                    where = resp.headers.get("Location", "(no Location)")
                    return done(
                        status, retry.REDIRECT, f"redirect not followed: {status} to {where}", excerpt
                    )
                if 200 <= status < 300:
                    return done(status, None, None, excerpt)
                return done(status, retry.HTTP, f"HTTP {status}", excerpt, after)
        except TimeoutError:
            return done(None, retry.TIMEOUT, "no complete answer within the timeout")
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, AddressRefusedError):
                return done(None, retry.SSRF, f"refused by the SSRF guard: {exc.os_error.reason}")
            return done(None, retry.CONNECT, f"cannot connect: {exc.os_error.strerror or exc}")
        except aiohttp.InvalidURL as exc:
            return done(None, "invalid_url", f"invalid URL: {exc}")
        except (aiohttp.ClientError, OSError) as exc:
            return done(None, retry.CONNECT, f"{type(exc).__name__}: {exc}"[:500])
        except asyncio.CancelledError:
            raise
        except (ValueError, TypeError) as exc:
            # The request cannot be built (aiohttp refuses a header, say): trying again will not help.
            return done(None, retry.INVALID_REQUEST, f"request refused before sending: {exc}"[:500])
        except Exception as exc:
            # Whatever else goes wrong is still an attempt with a reason, never a lost outcome.
            return done(None, retry.INTERNAL, f"{type(exc).__name__}: {exc}"[:500])
