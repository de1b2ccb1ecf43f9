"""The SSRF guard's resolver for aiohttp: every outbound request a user's URL leads to (a webhook,
a Slack message) resolves through it, so the connection goes only to addresses the guard checked
(``sayso_common.ssrf``). Apart from the checks, because it needs aiohttp, which the API does not
load."""

from __future__ import annotations

import socket
from collections.abc import Sequence

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from sayso_common.ssrf import Network, vet_addresses, vet_literal


class GuardedResolver(AbstractResolver):
    """Resolves (system resolver, or the pinned DNS servers), then refuses the host if any address is internal.
    Returning the checked records makes aiohttp connect to them and nothing else."""

    def __init__(
        self, allowed: Sequence[Network] = (), inner: AbstractResolver | None = None, setting: str = ""
    ) -> None:
        self._allowed = tuple(allowed)
        self._inner = inner or ThreadedResolver()
        self._setting = setting

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        literal = vet_literal(host, self._allowed, self._setting)
        if literal is not None:
            # A numeric spelling aiohttp did not recognise as a literal; never hand it to DNS.
            fam = socket.AF_INET if literal.version == 4 else socket.AF_INET6
            return [ResolveResult(hostname=host, host=str(literal), port=port, family=fam, proto=0, flags=0)]
        records = await self._inner.resolve(host, port, family)
        vet_addresses(host, (record["host"] for record in records), self._allowed, self._setting)
        return records

    async def close(self) -> None:
        await self._inner.close()
