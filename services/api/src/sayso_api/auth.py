"""Users, passwords and login throttling.

Passwords use Argon2id (by default argon2-cffi's, RFC 9106 low-memory profile); hashing runs in a
thread so a login never stalls the event loop. Failed logins are counted in MongoDB per e-mail and
per client address, so throttling holds across API replicas.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from sayso_api.schemas import UserOut
from sayso_api.settings import ApiSettings
from sayso_common.clock import as_utc, utcnow
from sayso_common.documents import LoginAttemptsDoc, UserDoc
from sayso_common.errors import ConflictError, DomainError, ErrorCode, RateLimitedError
from sayso_common.ids import new_id
from sayso_common.mongo import LOGIN_ATTEMPTS, USERS, Database, Doc, collection


class Passwords:
    """Argon2id hashing at this deployment's cost (``SAYSO_PASSWORD_HASH_*``). A stored hash
    carries its own parameters, so hashes made at another cost still verify."""

    def __init__(self, settings: ApiSettings) -> None:
        self._hasher = PasswordHasher(
            time_cost=settings.password_hash_time_cost,
            memory_cost=settings.password_hash_memory_kib,
            parallelism=settings.password_hash_parallelism,
        )
        # Verified against when the e-mail is unknown, so both paths cost one Argon2 verification
        # at the same cost.
        self._dummy = self._hasher.hash("sayso-timing-equaliser")

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, stored: str | None, password: str) -> bool:
        def check() -> bool:
            try:
                return self._hasher.verify(stored or self._dummy, password) and stored is not None
            except (VerificationError, InvalidHashError):
                return False

        return await asyncio.to_thread(check)


def normalise_email(email: str) -> str:
    return email.strip().lower()


async def create_user(
    db: Database, passwords: Passwords, email: str, password: str, is_admin: bool = False
) -> UserDoc:
    doc: UserDoc = {
        "_id": new_id("usr"),
        "email": normalise_email(email),
        "password_hash": await passwords.hash(password),
        "is_admin": is_admin,
        "created_at": utcnow(),
    }
    try:
        await collection(db, USERS).insert_one(doc)
    except DuplicateKeyError:
        raise ConflictError(
            ErrorCode.EMAIL_TAKEN, "a user with this e-mail already exists", "email"
        ) from None
    return doc


async def ensure_admin(db: Database, passwords: Passwords, email: str, password: str) -> None:
    if await collection(db, USERS).find_one({"email": normalise_email(email)}, {"_id": 1}):
        return
    with contextlib.suppress(DomainError):  # another replica created it first
        await create_user(db, passwords, email, password, is_admin=True)


# Argon2 verifications running at once in this process: a burst of logins queues here instead of
# taking every core (each costs ~50 ms of CPU).
_VERIFYING = asyncio.Semaphore(2)


def _counted(now: datetime, window_seconds: int, step: int) -> list[Doc]:
    """An update pipeline adding ``step`` to a key's failures within its window (a new window
    starts at ``step``)."""
    live = {"$gt": ["$expire_at", now]}
    return [
        {
            "$set": {
                "failures": {"$cond": [live, {"$add": [{"$ifNull": ["$failures", 0]}, step]}, max(step, 0)]},
                "expire_at": {"$cond": [live, "$expire_at", now + timedelta(seconds=window_seconds)]},
            }
        }
    ]


async def _count(db: Database, key: str, now: datetime, window_seconds: int) -> LoginAttemptsDoc | None:
    return await collection(db, LOGIN_ATTEMPTS).find_one_and_update(
        {"_id": key}, _counted(now, window_seconds, 1), upsert=True, return_document=ReturnDocument.AFTER
    )


async def reserve_attempt(db: Database, limits: dict[str, int], window_seconds: int) -> None:
    """Count this login attempt as a failure *before* the password is checked (one atomic update per
    throttle key), so parallel guesses cannot all pass a check made earlier; a success gives it
    back (``release_attempt``). ``limits`` maps a key (e-mail or address) to the failures allowed."""
    now = utcnow()
    for key, limit in limits.items():
        try:
            doc = await _count(db, key, now, window_seconds)
        except DuplicateKeyError:  # two first attempts raced to create the counter
            doc = await _count(db, key, now, window_seconds)
        if doc is not None and doc["failures"] > limit:
            retry = max(1, int((as_utc(doc["expire_at"]) - now).total_seconds()))
            raise RateLimitedError(
                ErrorCode.TOO_MANY_ATTEMPTS,
                "too many failed logins; try again later (SAYSO_LOGIN_MAX_FAILURES per account, "
                "SAYSO_LOGIN_MAX_FAILURES_PER_ADDRESS per address, within SAYSO_LOGIN_WINDOW_SECONDS)",
                retry_after=retry,
            )


async def release_attempt(db: Database, keys: list[str], window_seconds: int) -> None:
    now = utcnow()
    for key in keys:
        await collection(db, LOGIN_ATTEMPTS).update_one({"_id": key}, _counted(now, window_seconds, -1))


async def verify_bounded(passwords: Passwords, stored: str | None, password: str) -> bool:
    async with _VERIFYING:
        return await passwords.verify(stored, password)


def user_view(doc: UserDoc) -> UserOut:
    return UserOut(
        id=doc["_id"], email=doc["email"], is_admin=bool(doc.get("is_admin")), created_at=doc["created_at"]
    )
