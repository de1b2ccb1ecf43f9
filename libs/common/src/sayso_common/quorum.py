"""Which answers to an approval review approve, and when a quorum review is decided.

One rule, used by quorum reviews and by the Processa webhook format alike: an option **approves**
when its id is one of ``approve``, ``approved``, ``accept``, ``accepted``, ``yes``, ``ok``, or its
style is ``primary`` or ``success``. Every other option (and a dismissal) does not.

A quorum review (``review.quorum: {approvals: N}``) collects one vote per reviewer — the channel's
owner and its members. It is **approved** once N distinct reviewers chose an approving option,
and **rejected** as soon as that can no longer happen: the approvals so far plus the reviewers
who have not voted yet fall short of N. Both are checked after every vote, against the reviewers
the channel has at that moment, so a quorum larger than the channel's reviewers is rejected by its
first vote (unless enough members are added before anyone votes).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # documents.py imports views.py, which counts approvals with this module
    from sayso_common.documents import VoteDoc

APPROVING_IDS = frozenset({"approve", "approved", "accept", "accepted", "yes", "ok"})
APPROVING_STYLES = frozenset({"primary", "success"})

Outcome = Literal["approved", "rejected"]


def option_approves(option: Mapping[str, Any]) -> bool:
    return option.get("id") in APPROVING_IDS or option.get("style") in APPROVING_STYLES


def _options(payload: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [o for o in payload.get("options") or () if isinstance(o, Mapping)]


def approves(payload: Mapping[str, Any], response: Any) -> bool:
    """Whether ``response`` to an approval review with ``payload`` chose an approving option."""
    if not isinstance(response, Mapping):
        return False
    chosen = response.get("selectedOption")
    if not isinstance(chosen, str):
        return False
    option = next((o for o in _options(payload) if o.get("id") == chosen), {"id": chosen})
    return option_approves(option)


def can_decide(payload: Mapping[str, Any]) -> bool:
    """A quorum needs an option to approve with and one to reject with."""
    kinds = {option_approves(o) for o in _options(payload)}
    return kinds == {True, False}


def rejecting_option(payload: Mapping[str, Any]) -> str:
    """The first option that does not approve: what a rejected quorum answers when its deciding
    vote approved (too few reviewers were left to reach the quorum)."""
    return str(next(o["id"] for o in _options(payload) if not option_approves(o)))


def decide(required: int, approvals: int, undecided: int) -> Outcome | None:
    if approvals >= required:
        return "approved"
    if approvals + undecided < required:
        return "rejected"
    return None


def approvals(payload: Mapping[str, Any], votes: Sequence[VoteDoc]) -> int:
    """Distinct reviewers whose vote approves."""
    return len({v["user_id"] for v in votes if approves(payload, v["response"])})


def outcome(
    required: int, payload: Mapping[str, Any], votes: Sequence[VoteDoc], reviewers: Collection[str]
) -> Outcome | None:
    """The quorum's outcome after ``votes``, or None while it is open. ``reviewers`` are the user
    ids that may vote now; a vote by someone no longer among them still counts."""
    undecided = len(set(reviewers) - {v["user_id"] for v in votes})
    return decide(required, approvals(payload, votes), undecided)
