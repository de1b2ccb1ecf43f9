"""The review answer path: a person's answer to a review, a quorum vote, and iteration chains.

Every rule of that path is here, over a :class:`~sayso_api.reviewing.store.ReviewStore`; the
state changes themselves are built in ``sayso_common.review_state``. Errors are domain errors
(``sayso_common.errors``): the routes never see a status code, ``sayso_service.errors`` maps them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sayso_api import remembered
from sayso_api.reviewing.store import ReviewStore
from sayso_api.schemas import RememberIn
from sayso_common import membership, review_state, reviews
from sayso_common.clock import utcnow
from sayso_common.documents import MessageDoc, ReviewDoc
from sayso_common.errors import ConflictError, ErrorCode, ForbiddenError, InvalidError, NotFoundError
from sayso_common.membership import Reach
from sayso_common.principals import Principal
from sayso_common.reviews import ReviewError, validate_response
from sayso_common.views import MessageView, message_view, seen_by


def review_error(exc: ReviewError) -> InvalidError:
    """A review or response that does not fit its type, as the 422 naming the field at fault."""
    return InvalidError(
        ErrorCode.INVALID_REVIEW if exc.field.startswith("review") else ErrorCode.INVALID_RESPONSE,
        exc.message,
        exc.field,
    )


def ensure_open(review: ReviewDoc, now: datetime) -> None:
    """409 for a review that takes no answer any more, naming why."""
    closed = reviews.closure(review, now)
    if closed == "answered":
        raise ConflictError(ErrorCode.ALREADY_RESPONDED, "this review already has a response")
    if closed == "expired":
        raise ConflictError(ErrorCode.REVIEW_EXPIRED, "this review expired before it was answered")


class Reviewing:
    """Answers, votes and iteration chains over ``store``; ``clock`` tells the time (tests move
    it instead of sleeping past a deadline)."""

    def __init__(self, store: ReviewStore, clock: Callable[[], datetime] = utcnow) -> None:
        self._store = store
        self._clock = clock

    async def _answerable(self, access: Reach | Principal, message_id: str) -> tuple[MessageDoc, Reach]:
        """The message and the reach it was found under (404 when ``access`` does not cover it)."""
        if isinstance(access, Reach):
            doc = await self._store.message(message_id, access)
            if doc is None:
                raise NotFoundError("message")
            return doc, access
        # Read first, then check: the owner (most answers) needs no membership read at all.
        doc = await self._store.message(message_id)
        if doc is None:
            raise NotFoundError("message")
        owner_id, channel_id = doc["owner_id"], doc["channel_id"]

        async def is_member() -> bool:
            return await self._store.is_member(owner_id, channel_id, access.owner_id)

        reach = await membership.reach_over(access, owner_id, channel_id, is_member)
        if reach is None:
            raise NotFoundError("message")
        return doc, reach

    async def respond(
        self,
        access: Reach | Principal,
        message_id: str,
        responder_id: str,
        response: Any,
        feedback: str | None = None,
        modified_file_ids: dict[str, str] | None = None,
        *,
        remember: RememberIn | None = None,
        viewer_id: str | None = None,
        may_vote: bool = True,
    ) -> MessageView:
        """Record the first response to a pending review; 409 for any later one. On a quorum
        review the response is the responder's vote (refused unless ``may_vote``: a credential
        that is not a person's). The answer is shown as ``viewer_id`` (default: the responder)
        may see it. ``access`` is who answers (their channels and those shared with them) or, for
        a credential that names the review itself, a ready reach. With ``remember``, the answer
        and the remembered approval it makes (sayso_api.remembered) are one unit of work."""
        doc, reach = await self._answerable(access, message_id)
        review = doc.get("review")
        if not review:
            raise NotFoundError("review")
        now = self._clock()
        ensure_open(review, now)
        try:
            clean = validate_response(review["type"], review.get("payload") or {}, response)
        except ReviewError as exc:
            raise review_error(exc) from None
        viewer = viewer_id or responder_id
        if "quorum" in review:
            if not may_vote:
                raise ForbiddenError(
                    ErrorCode.VOTE_NOT_ALLOWED, "each vote on a quorum review is a person's", "response"
                )
            if remember is not None:
                raise InvalidError(
                    ErrorCode.INVALID_REMEMBER,
                    "a quorum vote cannot be remembered: one person is not N approvals",
                    "remember",
                )
            if feedback is not None or modified_file_ids is not None:
                field = "feedback" if feedback is not None else "modifiedFileIds"
                raise InvalidError(ErrorCode.INVALID_RESPONSE, "a quorum vote is its response alone", field)
            return seen_by(await self._vote(reach, doc, responder_id, clean), doc["owner_id"], viewer)
        entry = (
            remembered.entry_for(doc, clean, remember, responder_id, now) if remember is not None else None
        )
        answer = review_state.Answer(clean, responder_id, feedback, modified_file_ids)
        completion = review_state.completed(doc, answer, now)
        if not await self._store.complete(completion, entry):
            current = await self._store.message(message_id, reach)
            if current is None:
                raise NotFoundError("message")
            ensure_open(current["review"], now)
            raise ConflictError(ErrorCode.REVIEW_CLOSED, "the review is no longer pending")
        return seen_by(completion.view, doc["owner_id"], viewer)

    async def _vote(self, reach: Reach, doc: MessageDoc, voter_id: str, response: Any) -> MessageView:
        """Record ``voter_id``'s vote (see ``review_state.voted``). A concurrent vote makes the
        conditional update miss; the vote is then rebuilt from a fresh read. Each miss means
        another vote landed, and a review has at most one vote per reviewer, so this ends."""
        reviewers = await self._store.reviewers(doc["channel_id"])
        email = await self._store.email(voter_id)
        if reviewers is None or email is None:
            raise NotFoundError("review")
        for _ in range(2 * len(reviewers) + 2):
            now = self._clock()
            ensure_open(doc["review"], now)
            if any(v["user_id"] == voter_id for v in doc["review"].get("votes", [])):
                raise ConflictError(ErrorCode.ALREADY_VOTED, "you already voted on this review")
            ballot = review_state.voted(doc, review_state.Vote(voter_id, email, response), reviewers, now)
            if await self._store.cast(ballot):
                return ballot.view
            fresh = await self._store.message(doc["_id"], reach)
            if fresh is None:
                raise NotFoundError("message")
            doc = fresh
        raise ConflictError(
            ErrorCode.VOTE_CONTENTION, "too many votes landed at once; send it again", "response"
        )

    async def iteration(self, iteration_of: str | None, channel_id: str) -> tuple[str, int] | None:
        """(group id, iteration number) of a new message that follows up ``iteration_of``. As
        Placet: only a review that is closed (completed or expired) can be iterated on; the
        chain's root becomes iteration 1 and each follow-up takes the next number in the group
        (branches included). Two follow-ups racing for one number collide on the unique index
        when inserted; the loser asks again."""
        if not iteration_of:
            return None
        prev = await self._store.message(iteration_of, channel_id=channel_id)
        if prev is None:
            raise InvalidError(
                ErrorCode.INVALID_ITERATION, "iterationOf names no message in this channel", "iterationOf"
            )
        status = prev["review"]["status"] if "review" in prev else None
        if status not in ("completed", "expired"):
            # 400 and Placet's words: Placet's MCP server hands its error bodies to agents as they are.
            raise InvalidError(
                ErrorCode.ITERATION_NOT_ALLOWED,
                "iterationOf target must have a completed or expired review",
                "iterationOf",
            )
        group_id = prev.get("group_id") or prev["_id"]
        return group_id, await self._store.chain_root(group_id) + 1

    async def chain(
        self, owner_id: str, message_id: str, channel_id: str | None
    ) -> tuple[str, list[MessageView]]:
        """The iteration chain ``message_id`` belongs to (a message outside any chain is a chain
        of one): its group id and its messages by iteration."""
        doc = await self._store.message(message_id, Reach(owner_id), channel_id)
        if doc is None:
            raise NotFoundError("message")
        group_id = doc.get("group_id") or doc["_id"]
        return group_id, [message_view(d) for d in await self._store.chain(owner_id, group_id)]
