"""Slack webhook URLs (a user's, a channel's) and Slack response URLs are sealed secrets:
``sayso-api rotate-secrets`` re-seals them under the newest key like every other, so the old
key can be dropped. Run on a scratch database of its own."""

from __future__ import annotations

import secrets

from pymongo import AsyncMongoClient

from sayso_api.rotation import rotate_all
from sayso_common.secretbox import SecretBox
from tests.conftest import Infra

OLD, NEW = "old-key-" + "o" * 24, "new-key-" + "n" * 24


async def test_rotation_reseals_slack_urls(infra: Infra) -> None:
    old = SecretBox([OLD])
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(
        infra.mongo_url, serverSelectionTimeoutMS=5000
    )
    db = client[f"rotate_{secrets.token_hex(3)}"]
    try:
        await db["users"].insert_one(
            {
                "_id": "usr_1",
                "email": "a@b.c",
                "notifications": {"slack_webhook_enc": old.seal("https://hooks/u")},
            }
        )
        await db["agents"].insert_one(
            {
                "_id": "agt_1",
                "owner_id": "usr_1",
                "signing_secrets": [],
                "slack_webhook_enc": old.seal("https://hooks/c"),
            }
        )
        await db["notifications"].insert_one(
            {"_id": "ntf_1", "response_url_enc": old.seal("https://hooks/r")}
        )
        tally = await rotate_all(db, SecretBox([NEW, OLD]), report=lambda _: None)
        assert tally.failed == []
        assert tally.rotated == 3
        only_new = SecretBox([NEW])
        user = await db["users"].find_one({"_id": "usr_1"})
        agent = await db["agents"].find_one({"_id": "agt_1"})
        note = await db["notifications"].find_one({"_id": "ntf_1"})
        assert user is not None
        assert agent is not None
        assert note is not None
        assert only_new.open(user["notifications"]["slack_webhook_enc"]) == "https://hooks/u"  # type: ignore[index]
        assert only_new.open(str(agent["slack_webhook_enc"])) == "https://hooks/c"
        assert only_new.open(str(note["response_url_enc"])) == "https://hooks/r"
    finally:
        await client.drop_database(db.name)
        await client.close()
