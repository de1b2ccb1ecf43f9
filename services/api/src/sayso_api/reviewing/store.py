"""What the review answer path reads and writes, as a port: :class:`ReviewStore`.

Two implementations keep the same semantics: :class:`~sayso_api.reviewing.mongo.MongoReviewStore`
(production) and :class:`~sayso_api.reviewing.memory.InMemoryReviewStore` (unit tests of the
rules). ``tests/api/test_review_store_contract.py`` runs the same cases against both.

Each write is one unit of work: the message's state change and its events (in the message's
own ``outbox``) land together or not at all, and only while the change's guard
(:class:`sayso_common.review_state.Guard`) holds, so of two racing answers exactly one lands.
"""

from __future__ import annotations

from typing import Protocol

from sayso_common.documents import MessageDoc, RememberedDoc
from sayso_common.membership import Reach
from sayso_common.review_state import Ballot, Completion

# The most messages one iteration chain lists.
CHAIN_LIMIT = 1000


class ReviewStore(Protocol):
    async def message(
        self, message_id: str, reach: Reach | None = None, channel_id: str | None = None
    ) -> MessageDoc | None:
        """The message as readers see it (no outbox, no request hash); with ``reach``, only if it
        is in a channel ``reach`` covers; with ``channel_id``, only in that channel."""
        ...

    async def is_member(self, owner_id: str, channel_id: str, user_id: str) -> bool:
        """Whether ``user_id`` is a member of ``owner_id``'s channel ``channel_id`` now."""
        ...

    async def reviewers(self, channel_id: str) -> frozenset[str] | None:
        """The user ids that may answer the channel's reviews now (owner and members); None when
        the channel does not exist."""
        ...

    async def email(self, user_id: str) -> str | None:
        """The user's e-mail address, None for no such user."""
        ...

    async def complete(self, completion: Completion, remember: RememberedDoc | None = None) -> bool:
        """Apply ``completion`` if its guard holds, and with it store ``remember`` (a remembered
        approval) in the same unit of work. False when the guard no longer held (nothing written)."""
        ...

    async def cast(self, ballot: Ballot) -> bool:
        """Apply ``ballot`` (a vote, and the completion it decides) if its guard holds; False when
        it no longer held (another vote or answer landed since the read)."""
        ...

    async def chain_root(self, group_id: str) -> int:
        """Make ``group_id`` (a chain's first message) iteration 1 of its own group unless it
        already is, and return the highest iteration number the group holds."""
        ...

    async def chain(self, owner_id: str, group_id: str) -> list[MessageDoc]:
        """``owner_id``'s messages of the chain ``group_id``, by iteration then id (at most
        :data:`CHAIN_LIMIT`), as readers see them."""
        ...
