"""Password hashing cost: the production default, the floor no setting goes below, and the stack
hashing at what its settings say (tests/conftest.py runs the test stacks at the floor)."""

from __future__ import annotations

from typing import Any

import pytest
from argon2 import PasswordHasher
from pydantic import ValidationError

from sayso_api.auth import Passwords
from sayso_api.settings import ApiSettings
from tests.support.stack import Owner, RunningStack

FLOOR: dict[str, Any] = {
    "password_hash_memory_kib": 19456,
    "password_hash_time_cost": 2,
    "password_hash_parallelism": 1,
}
SECRET: dict[str, Any] = {"secret_key": "a-secret-key-for-settings-tests-" + "x" * 32}


def test_the_default_is_rfc_9106s_low_memory_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in FLOOR:
        monkeypatch.delenv(f"SAYSO_{name.upper()}", raising=False)
    settings = ApiSettings(**SECRET)
    assert (
        settings.password_hash_memory_kib,
        settings.password_hash_time_cost,
        settings.password_hash_parallelism,
    ) == (65536, 3, 4)


@pytest.mark.parametrize(
    "below",
    [
        {"password_hash_memory_kib": 19455},
        {"password_hash_memory_kib": 8},
        {"password_hash_time_cost": 1},
        {"password_hash_parallelism": 0},
    ],
)
def test_no_setting_goes_below_owasps_minimum(below: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as refused:
        ApiSettings(**SECRET | FLOOR | below)
    [name] = below
    [error] = refused.value.errors()
    assert error["loc"] == (name,), error


async def test_hashes_carry_the_cost_and_others_still_verify() -> None:
    passwords = Passwords(ApiSettings(**SECRET | FLOOR))
    stored = await passwords.hash("correct horse")
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$"), stored
    assert await passwords.verify(stored, "correct horse")
    assert not await passwords.verify(stored, "wrong horse")
    assert not await passwords.verify(None, "correct horse")  # an unknown e-mail
    # A hash made at the default cost (before the setting changed) still verifies.
    older = PasswordHasher().hash("battery staple")
    assert older.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert await passwords.verify(older, "battery staple")


async def test_the_stack_hashes_at_its_setting(stack: RunningStack, owner: Owner) -> None:
    users = stack.mongo()[stack.mongo_db]["users"]
    try:
        # The bootstrap admin (the lifespan's) and a user created through the API.
        for email in ("admin@tests.local", owner.email):
            doc = await users.find_one({"email": email})
            assert doc is not None, email
            assert doc["password_hash"].startswith("$argon2id$v=19$m=19456,t=2,p=1$"), email
    finally:
        await users.database.client.close()
