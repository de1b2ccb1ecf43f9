"""``sayso-api rotate-secrets``: re-seal every stored secret under the newest key.

Run it after putting a new key first in ``SAYSO_SECRET_KEYS`` (and restarting the services, so
they all can open both); when it reports 0 failures, the old key can be removed from the list.

Each document is rewritten with a compare-and-swap on the values it read, so a secret rotated or
replaced by a user meanwhile is never overwritten with a stale one; such a document is counted as
skipped and picked up by running the command again.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sayso_api.settings import ApiSettings
from sayso_common.mongo import (
    AGENTS,
    DELETED_AGENTS,
    DELIVERIES,
    ENDPOINTS,
    MESSAGES,
    NOTIFICATIONS,
    TRIGGERS,
    USERS,
    Database,
    Doc,
    create_client,
)
from sayso_common.secretbox import SecretBox

# collection -> (scalar paths holding a sealed value, array fields whose items carry ``secret_enc``)
SEALED: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    AGENTS: (("webhook_headers_enc", "webhook_auth_enc", "slack_webhook_enc"), ("signing_secrets",)),
    # A deleted channel's webhook settings, kept while the webhooks its deletion owes are retried:
    # left out, they would stop opening once the old key is dropped.
    DELETED_AGENTS: (("webhook_headers_enc", "webhook_auth_enc", "slack_webhook_enc"), ("signing_secrets",)),
    USERS: (("notifications.slack_webhook_enc",), ()),
    NOTIFICATIONS: (("response_url_enc",), ()),
    TRIGGERS: ((), ("secrets",)),
    MESSAGES: (("review.callback.headers_enc",), ()),
    DELIVERIES: (("headers_enc",), ()),
    ENDPOINTS: (("headers_enc", "auth_enc", "kafka.secrets_enc"), ("signing_secrets",)),
}


@dataclass
class Tally:
    rotated: int = 0
    skipped: int = 0
    failed: list[str] = field(default_factory=list)


def _get(doc: Doc, path: str) -> Any:
    value: Any = doc
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


async def rotate_collection(db: Database, box: SecretBox, name: str, tally: Tally) -> None:
    scalars, arrays = SEALED[name]
    query = {
        "$or": [{p: {"$type": "string"}} for p in scalars]
        + [{f"{a}.secret_enc": {"$exists": True}} for a in arrays]
    }
    projection = {p: 1 for p in (*scalars, *arrays)}
    async for doc in db[name].find(query, projection):
        where: Doc = {"_id": doc["_id"]}
        changes: Doc = {}
        try:
            for path in scalars:
                old = _get(doc, path)
                if isinstance(old, str):
                    where[path] = old
                    changes[path] = box.rotate(old)
            for array in arrays:
                items = doc.get(array) or []
                where[array] = items
                changes[array] = [
                    {**i, "secret_enc": box.rotate(i["secret_enc"])} if "secret_enc" in i else i
                    for i in items
                ]
        except ValueError as exc:  # a token none of the configured keys opens
            tally.failed.append(f"{name}/{doc['_id']}: {exc}")
            continue
        result = await db[name].update_one(where, {"$set": changes})
        if result.modified_count:
            tally.rotated += 1
        else:
            tally.skipped += 1


async def rotate_all(db: Database, box: SecretBox, report: Callable[[str], None] = print) -> Tally:
    tally = Tally()
    for name in SEALED:
        before = tally.rotated
        await rotate_collection(db, box, name, tally)
        report(f"{name}: {tally.rotated - before} documents re-sealed")
    return tally


async def _main() -> int:
    settings = ApiSettings()
    client = create_client(settings)
    try:
        tally = await rotate_all(client[settings.mongo_db], SecretBox(settings.box_keys()))
    finally:
        await client.close()
    print(
        f"done: {tally.rotated} re-sealed, {tally.skipped} changed meanwhile (run again), {len(tally.failed)} failed"
    )
    for line in tally.failed:
        print(f"  cannot open {line}", file=sys.stderr)
    return 1 if tally.failed else 0


def main() -> int:
    return asyncio.run(_main())
