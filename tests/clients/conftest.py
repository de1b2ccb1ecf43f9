"""One owner per test module: the client tests isolate themselves by creating their own agents,
and creating a user (Argon2 hashing, a login, a key) costs more than most of these tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.stack import Owner, RunningStack


@pytest.fixture(scope="module")
async def owner(stack: RunningStack) -> AsyncIterator[Owner]:
    async with await stack.new_owner() as created:
        yield created
