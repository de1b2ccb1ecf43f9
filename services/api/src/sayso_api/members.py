"""Channel members: an owner shares a channel with other users, who then read it and answer and
vote on its reviews (see :mod:`sayso_common.membership` for what a member may do). Only the
channel's owner, signed in as a user, manages its members."""

from __future__ import annotations

from sayso_api import remembered
from sayso_api.auth import normalise_email
from sayso_common import notifications
from sayso_common.clock import utcnow
from sayso_common.documents import MemberDoc
from sayso_common.errors import ConflictError, ErrorCode, InvalidError, NotFoundError
from sayso_common.membership import MAX_MEMBERS
from sayso_common.mongo import AGENTS, NOTIFICATIONS, USERS, Database, collection


async def list_members(db: Database, owner_id: str, agent_id: str) -> list[MemberDoc]:
    agent = await collection(db, AGENTS).find_one({"_id": agent_id, "owner_id": owner_id}, {"members": 1})
    if agent is None:
        raise NotFoundError("agent")
    return agent.get("members", [])


async def add_member(db: Database, owner_id: str, agent_id: str, email: str) -> MemberDoc:
    agents = collection(db, AGENTS)
    # The channel first: whom an e-mail names is nobody's business but the channel's owner's.
    if await agents.find_one({"_id": agent_id, "owner_id": owner_id}, {"_id": 1}) is None:
        raise NotFoundError("agent")
    user = await collection(db, USERS).find_one({"email": normalise_email(email)}, {"email": 1})
    if user is None:
        raise NotFoundError("user", "email", message="no user has this e-mail")
    if user["_id"] == owner_id:
        raise InvalidError(ErrorCode.VALIDATION_ERROR, "you own this channel already", "email")
    member: MemberDoc = {"user_id": user["_id"], "email": user["email"], "added_at": utcnow()}
    # One conditional write: two owners' tabs adding the same person, or the hundred-and-first
    # member, cannot slip past each other.
    added = await agents.update_one(
        {
            "_id": agent_id,
            "owner_id": owner_id,
            "members.user_id": {"$ne": member["user_id"]},
            f"members.{MAX_MEMBERS - 1}": {"$exists": False},
        },
        {"$push": {"members": member}, "$set": {"updated_at": member["added_at"]}},
    )
    if added.modified_count:
        return member
    agent = await agents.find_one({"_id": agent_id, "owner_id": owner_id}, {"members.user_id": 1})
    if agent is None:
        raise NotFoundError("agent")
    if any(m["user_id"] == member["user_id"] for m in agent.get("members", [])):
        raise ConflictError(ErrorCode.ALREADY_MEMBER, "this user is already a member of the channel", "email")
    raise ConflictError(ErrorCode.TOO_MANY_MEMBERS, f"a channel has at most {MAX_MEMBERS} members", "email")


async def remove_member(db: Database, owner_id: str, agent_id: str, user_id: str) -> None:
    agents = collection(db, AGENTS)
    removed = await agents.update_one(
        {"_id": agent_id, "owner_id": owner_id, "members.user_id": user_id},
        {"$pull": {"members": {"user_id": user_id}}, "$set": {"updated_at": utcnow()}},
    )
    if removed.matched_count == 0:
        owned = await agents.find_one({"_id": agent_id, "owner_id": owner_id}, {"_id": 1})
        raise NotFoundError("member" if owned else "agent")
    # Removal revokes: nothing more is sent to them about this channel, and the links they were
    # sent answer nothing (answers through links also check membership when they are used).
    now = utcnow()
    sent = collection(db, NOTIFICATIONS)
    await sent.update_many(*notifications.cancel_for_removed_reviewer(agent_id, user_id, now))
    await sent.update_many(*notifications.links_revoked(agent_id, user_id, now))
    # And the approvals they remembered in the channel answer nothing more.
    await remembered.revoke_granted_by(db, owner_id, agent_id, user_id)
