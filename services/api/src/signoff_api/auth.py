"""Users, passwords and login throttling.

Passwords use Argon2id (argon2-cffi defaults, RFC 9106 low-memory profile); hashing runs in a
thread so a login never stalls the event loop. Failed logins are counted in MongoDB per e-mail and
per client address, so throttling holds across API replicas.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pymongo.errors import DuplicateKeyError

from signoff_common.clock import utcnow
from signoff_common.http_errors import ApiError
from signoff_common.ids import new_id
from signoff_common.mongo import LOGIN_ATTEMPTS, USERS, Database, Doc

_hasher = PasswordHasher()
# Verified against when the e-mail is unknown, so both paths cost one Argon2 verification.
_DUMMY_HASH = _hasher.hash("signoff-timing-equaliser")


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(stored: str | None, password: str) -> bool:
    def check() -> bool:
        try:
            return _hasher.verify(stored or _DUMMY_HASH, password) and stored is not None
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(check)


def normalise_email(email: str) -> str:
    return email.strip().lower()


async def create_user(db: Database, email: str, password: str, is_admin: bool = False) -> Doc:
    doc = {
        "_id": new_id("usr"),
        "email": normalise_email(email),
        "password_hash": await hash_password(password),
        "is_admin": is_admin,
        "created_at": utcnow(),
    }
    try:
        await db[USERS].insert_one(doc)
    except DuplicateKeyError:
        raise ApiError(409, "email_taken", "a user with this e-mail already exists", "email") from None
    return doc


async def ensure_admin(db: Database, email: str, password: str) -> None:
    if await db[USERS].find_one({"email": normalise_email(email)}, {"_id": 1}):
        return
    with contextlib.suppress(ApiError):  # another replica created it first
        await create_user(db, email, password, is_admin=True)


async def check_throttle(db: Database, limits: dict[str, int]) -> None:
    """``limits`` maps a throttle key (e-mail or address) to the failures it may accumulate."""
    now = utcnow()
    async for doc in db[LOGIN_ATTEMPTS].find({"_id": {"$in": list(limits)}, "expire_at": {"$gt": now}}):
        if doc.get("failures", 0) >= limits[doc["_id"]]:
            retry = max(1, int((doc["expire_at"] - now).total_seconds()))
            raise ApiError(
                429,
                "too_many_attempts",
                "too many failed logins; try again later",
                headers={"Retry-After": str(retry)},
            )


async def record_failure(db: Database, keys: list[str], window_seconds: int) -> None:
    now = utcnow()
    for key in keys:
        await db[LOGIN_ATTEMPTS].update_one(
            {"_id": key},
            [
                {
                    "$set": {
                        "failures": {
                            "$cond": [
                                {"$gt": ["$expire_at", now]},
                                {"$add": [{"$ifNull": ["$failures", 0]}, 1]},
                                1,
                            ]
                        },
                        "expire_at": {
                            "$cond": [
                                {"$gt": ["$expire_at", now]},
                                "$expire_at",
                                now + timedelta(seconds=window_seconds),
                            ]
                        },
                    }
                }
            ],
            upsert=True,
        )


def user_view(doc: Doc) -> dict[str, Any]:
    return {
        "id": doc["_id"],
        "email": doc["email"],
        "isAdmin": bool(doc.get("is_admin")),
        "createdAt": doc["created_at"],
    }
