"""``sayso-api migrate``: bring documents written by earlier releases up to the current shape.

Run once per deploy, before the new API starts (``make run`` does it, compose runs it as a
one-shot service the api waits for, Kubernetes as a Job); never by the API itself, so a
deploy with many replicas does not run it many times over, and a slow migration does not hold
the API's start-up (and its probes) back. Every migration is idempotent: a run finds only what
is still in the old shape, so running it again, or two runs at once, changes nothing twice.
Index creation is not a migration: each service creates its indexes at start, idempotently.

Selection payloads keep their two stored shapes (Placet's ``items``/``mode`` and the older
``options``/``multiple``): an agent reads its payload back exactly as it sent it, and a review's
``content_digest`` covers the payload, so rewriting one would change both.
``sayso_common.reviews.Selection`` is the one place that reads either.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sayso_api.settings import ApiSettings
from sayso_common.mongo import MESSAGES, Database, collection, create_client

Report = Callable[[str], None]
# How often a long migration says how far it got.
PROGRESS_EVERY = 1000


@dataclass(frozen=True)
class Migration:
    name: str
    what: str  # what it does, for a person
    run: Callable[[Database, Report], Awaitable[int]]  # returns how many documents it changed


async def number_iterations(db: Database, report: Report) -> int:
    """Number the follow-ups stored before messages carried ``iteration`` (root = 1, then each
    message one more than the one it follows)."""
    messages = collection(db, MESSAGES)
    groups = await messages.distinct(
        "group_id", {"group_id": {"$type": "string"}, "iteration": {"$exists": False}}
    )
    done = 0
    for seen, group_id in enumerate(groups, start=1):
        chain = (
            await messages.find({"$or": [{"_id": group_id}, {"group_id": group_id}]}, {"iteration": 1})
            .sort("_id", 1)
            .to_list()
        )
        # Numbered in creation order, as new follow-ups are; the root (1) joins its own group.
        for number, doc in enumerate(chain, start=1):
            if "iteration" not in doc:
                # Conditional, so a second run racing this one counts each message once.
                numbered = await messages.update_one(
                    {"_id": doc["_id"], "iteration": {"$exists": False}},
                    {"$set": {"iteration": number, "group_id": group_id}},
                )
                done += numbered.modified_count
        if seen % PROGRESS_EVERY == 0:
            report(f"  {seen} of {len(groups)} chains")
    return done


async def rank_risks(db: Database, report: Report) -> int:
    """Give pending reviews stored before reviews carried ``risk_rank`` the rank of no label, so
    the inbox sorted by risk pages over them too."""
    result = await collection(db, MESSAGES).update_many(
        {"review.status": "pending", "review.risk_rank": {"$exists": False}},
        {"$set": {"review.risk_rank": 0}},
    )
    return result.modified_count


MIGRATIONS = (
    Migration(
        "iterations", "number iteration chains stored before messages carried numbers", number_iterations
    ),
    Migration("risk-rank", "rank pending reviews stored before reviews carried a risk rank", rank_risks),
)


async def migrate(db: Database, report: Report = print) -> dict[str, int]:
    """Run every migration in order; returns the documents each changed."""
    changed: dict[str, int] = {}
    for migration in MIGRATIONS:
        report(f"{migration.name}: {migration.what} …")
        changed[migration.name] = await migration.run(db, report)
        report(f"{migration.name}: {changed[migration.name]} documents changed")
    return changed


async def _main() -> int:
    settings = ApiSettings()
    client = create_client(settings)
    try:
        changed = await migrate(client[settings.mongo_db], lambda line: print(line, flush=True))
    finally:
        await client.close()
    print(f"done: {sum(changed.values())} documents changed by {len(changed)} migrations", flush=True)
    return 0


def main() -> int:
    try:
        return asyncio.run(_main())
    except KeyboardInterrupt:
        print(
            "interrupted: run it again to finish (each migration resumes where it stopped)", file=sys.stderr
        )
        return 130
