"""Policies: rules that decide a review before a human sees it. Pure, no I/O.

A policy belongs to one channel or to one account (the owner's, for all their channels) and is
an ordered list of rules, read and replaced as a whole: ``{"rules": [rule, …]}``. A rule is::

    {"name": "staging deploys under 100",              # optional, at most 100 characters
     "match": {"metadata.env": "staging", "metadata.args.amount": {"$lt": 100}},
     "action": "approve",                              # approve | reject | ask
     "response": {"selectedOption": "approve"},        # optional: what approve/reject records
     "risk": "low"}                                    # optional: low | medium | high | critical

An ``ask`` rule may also change the review it leaves to people (:class:`AskOverrides`, applied
by :func:`apply_overrides`): ``quorum`` (``{"approvals": N}``), ``expiresInSeconds``,
``onExpire`` (``{"response": …}``) and ``notify`` (``"owner"`` or a list of reviewers' user
ids). A policy is the owner's word, so these win over what the agent asked for, but they never
loosen it: a quorum only raises the number of approvals, a deadline only shortens the review's,
and an ``onExpire`` that approves never replaces an agent's own default that does not.

``match`` is a filter (:mod:`sayso_common.filters`) over **the message as the agent sent it**::

    {"channel": "<channelId>", "text": "…", "review": {"type": "…", "payload": {…}},
     "metadata": {…}}

(``text`` and ``metadata`` are absent when the agent sent none; ``review.payload`` is the payload
as sent, before defaults are filled in.)

:func:`decide` tries the channel's rules, then the account's, in order; the **first** rule that
matches decides, and when none does the review is left to a human (``ask``). What an
``approve`` or ``reject`` records:

- on an **approval** review, the rule's ``response`` if it has one (a ``comment`` alone is
  completed with the option below), else the review's first option that approves (for
  ``approve``) or the first that does not (for ``reject``), by the one rule of
  :mod:`sayso_common.quorum` (ids ``approve``/``approved``/``accept``/``accepted``/``yes``/``ok``
  or styles ``primary``/``success`` approve). The response must then fit the review's options and
  agree with the action (an ``approve`` that records a rejecting option is not applied);
- on any other review type, the rule's ``response``, which it must carry.

The response is checked against the review exactly as a human's answer would be (``check``, the
API's ``validate_response``, passed in). A matching rule that cannot be applied this way does not
let a later rule decide instead: the review is left to a human (``ask``), and the decision says
why (:attr:`Decision.reason`). So a policy never makes a message fail to post, and a broken
``reject`` rule never lets a broader ``approve`` below it through.

Saving refuses a bad policy with :class:`PolicyError`, naming the rule and field in the API's
field format (``rules[3].match.metadata.amount.$gt``): a filter that does not compile, an unknown
action or field, a ``response`` on an ``ask`` rule, or a response whose shape cannot fit the
review type its rule pins with ``"review.type": …`` (checked against the options when a message
arrives, since only then are they known)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, cast, get_args

from sayso_common import quorum
from sayso_common.documents import DecidedByDoc, PolicyFallbackDoc
from sayso_common.filters import Filter, FilterError, compile_filter

Action = Literal["approve", "reject", "ask"]
Risk = Literal["low", "medium", "high", "critical"]
Scope = Literal["channel", "account"]
ACTIONS: Final = get_args(Action)
RISKS: Final = get_args(Risk)

MAX_RULES: Final = 200
MAX_NAME: Final = 100
MAX_RESPONSE_BYTES: Final = 16_384
OVERRIDE_FIELDS: Final = ("quorum", "expiresInSeconds", "onExpire", "notify")
RULE_FIELDS: Final = ("name", "match", "action", "response", "risk", *OVERRIDE_FIELDS)
# The longest deadline a rule may set (the API's SAYSO_REVIEW_MAX_TTL_SECONDS still caps it).
MAX_RULE_EXPIRES: Final = 7 * 86_400
MAX_QUORUM: Final = 101  # as review.quorum: the owner and at most 100 members
MAX_NOTIFY: Final = 20
# Severity order of risk labels: the inbox sorts on it (stored as review.risk_rank, 0 = none).
RISK_RANK: Final[dict[str, int]] = {"low": 1, "medium": 2, "high": 3, "critical": 4}

# What a response to each review type may hold, for the check when a rule is saved (the full
# check, against the review's options and fields, runs when a message arrives).
_RESPONSE_KEYS: Final[dict[str, frozenset[str] | None]] = {
    "approval": frozenset({"selectedOption", "comment"}),
    "selection": frozenset({"selectedIds"}),
    "text-input": frozenset({"text"}),
    "form": None,
    "freeform": None,
}

# ``check(review_type, payload, response)`` returns the response to store or raises ValueError
# with a message fit for a person: the API's ``reviews.validate_response``.
ResponseCheck = Callable[[str, dict[str, Any], Any], Any]


class PolicyError(ValueError):
    """A policy that cannot be saved: ``field`` names the place (``rules[2].action``)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


@dataclass(frozen=True)
class AskOverrides:
    """What an ``ask`` rule changes on the review it leaves to people (None: unchanged).
    ``notify`` is ``("owner",)`` or reviewers' user ids."""

    quorum: int | None = None
    expires_in_seconds: int | None = None
    on_expire: dict[str, Any] | None = None  # the default response
    notify: tuple[str, ...] | None = None

    def source(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.quorum is not None:
            out["quorum"] = {"approvals": self.quorum}
        if self.expires_in_seconds is not None:
            out["expiresInSeconds"] = self.expires_in_seconds
        if self.on_expire is not None:
            out["onExpire"] = {"response": self.on_expire}
        if self.notify is not None:
            out["notify"] = "owner" if self.notify == ("owner",) else list(self.notify)
        return out


@dataclass(frozen=True)
class Rule:
    index: int
    match: Filter
    action: Action
    name: str | None = None
    response: dict[str, Any] | None = None
    risk: Risk | None = None
    overrides: AskOverrides | None = None

    def source(self) -> dict[str, Any]:
        """The rule as it is stored and read back (absent fields left out)."""
        out: dict[str, Any] = {}
        if self.name is not None:
            out["name"] = self.name
        out["match"] = dict(self.match.source)
        out["action"] = self.action
        if self.response is not None:
            out["response"] = self.response
        if self.risk is not None:
            out["risk"] = self.risk
        if self.overrides is not None:
            out |= self.overrides.source()
        return out


@dataclass(frozen=True)
class Policy:
    """One saved policy, compiled: its id, whose it is, which version, its rules."""

    id: str
    scope: Scope
    version: int
    rules: tuple[Rule, ...]
    # Set when the stored rules no longer compile (a later release refusing what an earlier one
    # saved): the policy then decides nothing, and every review it reaches is left to a human.
    problem: str | None = None


@dataclass(frozen=True)
class Decision:
    """What the policies say about one message. ``action`` is what happens: ``approve`` and
    ``reject`` come with the ``response`` to record. ``policy``/``rule``/``version`` name the
    rule that matched (all None when none did); ``reason`` says why a matching approve/reject
    rule was not applied (the action is then ``ask``)."""

    action: Action
    policy: str | None = None
    scope: Scope | None = None
    rule: int | None = None
    rule_name: str | None = None
    version: int | None = None
    response: dict[str, Any] | None = None
    risk: Risk | None = None
    reason: str | None = None
    # The matching ask rule's changes to the review (None when it has none, or none matched).
    overrides: AskOverrides | None = None
    # The matching rule's own action, also when it could not be applied (``action`` is then ask).
    rule_action: Action | None = None

    @property
    def decides(self) -> bool:
        return self.action != "ask"


ASK: Final = Decision("ask")


# --- saving ---------------------------------------------------------------------------------------


def parse_rules(rules: Any) -> tuple[Rule, ...]:
    """Check the ``rules`` of a policy body and compile them; :class:`PolicyError` names the
    first problem."""
    if not isinstance(rules, list):
        raise PolicyError("rules", "must be a list of rules")
    if len(rules) > MAX_RULES:
        raise PolicyError("rules", f"a policy has at most {MAX_RULES} rules")
    return tuple(parse_rule(i, raw) for i, raw in enumerate(rules))


def parse_rule(index: int, raw: Any) -> Rule:
    where = f"rules[{index}]"
    if not isinstance(raw, Mapping):
        raise PolicyError(where, "a rule is an object with match and action")
    unknown = sorted(str(k) for k in raw if k not in RULE_FIELDS)
    if unknown:
        raise PolicyError(f"{where}.{unknown[0]}", f"is not a field of a rule ({', '.join(RULE_FIELDS)})")
    name = raw.get("name")
    if name is not None and (not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME):
        raise PolicyError(f"{where}.name", f"must be a non-empty string of at most {MAX_NAME} characters")
    if "match" not in raw:
        raise PolicyError(f"{where}.match", "is required (the empty filter {} matches every message)")
    try:
        match = compile_filter(raw["match"])
    except FilterError as exc:
        inner = f".{exc.where}" if exc.where else ""
        raise PolicyError(f"{where}.match{inner}", exc.problem) from None
    if raw.get("action") not in ACTIONS:
        raise PolicyError(f"{where}.action", f"must be one of {', '.join(ACTIONS)}")
    action = cast(Action, raw["action"])
    risk = raw.get("risk")
    if risk is not None and risk not in RISKS:
        raise PolicyError(f"{where}.risk", f"must be one of {', '.join(RISKS)}")
    response = raw.get("response")
    if response is not None:
        _check_saved_response(response, action, match, f"{where}.response")
    return Rule(index, match, action, name, response, risk, _parse_overrides(raw, action, match, where))


def _parse_overrides(raw: Mapping[str, Any], action: str, match: Filter, where: str) -> AskOverrides | None:
    given = [f for f in OVERRIDE_FIELDS if raw.get(f) is not None]
    if not given:
        return None
    if action != "ask":
        raise PolicyError(f"{where}.{given[0]}", "only an ask rule changes the review it leaves to people")
    pinned = pinned_review_type(match.source)
    quorum_n = None
    if raw.get("quorum") is not None:
        value = raw["quorum"]
        if not isinstance(value, Mapping) or set(value) != {"approvals"}:
            raise PolicyError(f"{where}.quorum", 'must be {"approvals": N}, as review.quorum')
        quorum_n = value["approvals"]
        if isinstance(quorum_n, bool) or not isinstance(quorum_n, int) or not 1 <= quorum_n <= MAX_QUORUM:
            raise PolicyError(f"{where}.quorum.approvals", f"must be a whole number from 1 to {MAX_QUORUM}")
        if pinned is not None and pinned != "approval":
            raise PolicyError(f"{where}.quorum", "only approval reviews take a quorum")
    expires = raw.get("expiresInSeconds")
    if expires is not None and (
        isinstance(expires, bool) or not isinstance(expires, int) or not 1 <= expires <= MAX_RULE_EXPIRES
    ):
        raise PolicyError(f"{where}.expiresInSeconds", f"must be a whole number from 1 to {MAX_RULE_EXPIRES}")
    on_expire = None
    if raw.get("onExpire") is not None:
        value = raw["onExpire"]
        if not isinstance(value, Mapping) or set(value) != {"response"}:
            raise PolicyError(f"{where}.onExpire", 'must be {"response": …}, as review.onExpire')
        _check_saved_response(value["response"], "reject", match, f"{where}.onExpire.response")
        on_expire = dict(value["response"])
    return AskOverrides(quorum_n, expires, on_expire, _parse_notify(raw.get("notify"), f"{where}.notify"))


def _parse_notify(value: Any, where: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if value == "owner":
        return ("owner",)
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_NOTIFY:
        raise PolicyError(where, f'must be "owner" or a list of 1 to {MAX_NOTIFY} reviewers\' user ids')
    for i, user_id in enumerate(value):
        if not isinstance(user_id, str) or not user_id.startswith("usr_") or len(user_id) > 100:
            raise PolicyError(f"{where}[{i}]", "must be a user id (usr_…) of the channel's owner or a member")
    return tuple(dict.fromkeys(value))


def _check_saved_response(response: Any, action: str, match: Filter, where: str) -> None:
    if action == "ask":
        raise PolicyError(where, "only an approve or reject rule records a response")
    if not isinstance(response, dict):
        raise PolicyError(where, "must be an object, the answer as a reviewer would send it")
    try:
        size = len(json.dumps(response, separators=(",", ":"), allow_nan=False))
    except (TypeError, ValueError):
        raise PolicyError(where, "must be plain JSON (finite numbers)") from None
    if size > MAX_RESPONSE_BYTES:
        raise PolicyError(where, f"must be at most {MAX_RESPONSE_BYTES} bytes of JSON")
    review_type = pinned_review_type(match.source)
    allowed = _RESPONSE_KEYS.get(review_type) if review_type else None
    if allowed is not None:
        extra = sorted(set(response) - allowed)
        if extra:
            raise PolicyError(
                f"{where}.{extra[0]}",
                f"is not part of a response to {review_type} reviews ({', '.join(sorted(allowed))})",
            )
    chosen = response.get("selectedOption", "-")
    if review_type == "approval" and (not isinstance(chosen, str) or not chosen):
        raise PolicyError(f"{where}.selectedOption", "must be an option id (a non-empty string)")
    if review_type == "selection":
        ids = response.get("selectedIds")
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
            raise PolicyError(f"{where}.selectedIds", "must be a non-empty list of item ids")
    if review_type == "text-input" and not isinstance(response.get("text"), str):
        raise PolicyError(f"{where}.text", "must be a string")


def pinned_review_type(match: Mapping[str, Any]) -> str | None:
    """The review type a filter requires at its top level (``"review.type": "approval"`` or
    ``{"$eq": "approval"}``), if any."""
    value = match.get("review.type")
    if isinstance(value, Mapping) and set(value) == {"$eq"}:
        value = value["$eq"]
    return value if isinstance(value, str) and value in _RESPONSE_KEYS else None


# --- deciding -------------------------------------------------------------------------------------


def subject(
    channel_id: str,
    text: str | None,
    review_type: str,
    payload: Mapping[str, Any] | None,
    metadata: Mapping[str, Any] | None,
    quorum: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The document rules match: the message as the agent sent it (``review.quorum`` when it asked
    for one, so a rule can tell such reviews apart)."""
    doc: dict[str, Any] = {"channel": channel_id, "review": {"type": review_type, "payload": payload or {}}}
    if quorum is not None:
        doc["review"]["quorum"] = dict(quorum)
    if text is not None:
        doc["text"] = text
    if metadata is not None:
        doc["metadata"] = metadata
    return doc


def decide(
    channel: Policy | None,
    account: Policy | None,
    message: Mapping[str, Any],
    review_payload: dict[str, Any],
    check: ResponseCheck,
) -> Decision:
    """The decision for ``message`` (see :func:`subject`): the channel's rules, then the
    account's, first match wins, default ``ask``. ``review_payload`` is the review's stored
    payload (defaults filled in: the options a response must pick from); ``check`` validates a
    response against the review as a human's answer is validated."""
    for policy in (channel, account):
        if policy is None:
            continue
        if policy.problem is not None:
            reason = f"the {policy.scope} policy cannot be used: {policy.problem}"
            return Decision("ask", policy.id, policy.scope, None, None, policy.version, reason=reason)
        for rule in policy.rules:
            if rule.match.matches(message):
                return _apply(policy, rule, message, review_payload, check)
    return ASK


def _apply(
    policy: Policy, rule: Rule, message: Mapping[str, Any], payload: dict[str, Any], check: ResponseCheck
) -> Decision:
    found = Decision(
        rule.action, policy.id, policy.scope, rule.index, rule.name, policy.version, None, rule.risk,
        overrides=rule.overrides, rule_action=rule.action,
    )  # fmt: skip
    if rule.action == "ask":
        return found
    review = message.get("review")
    review_type = str(review.get("type")) if isinstance(review, Mapping) else ""
    response, problem = _response(rule, review_type, payload)
    if response is not None:
        try:
            response = check(review_type, payload, response)
        except ValueError as exc:
            response, problem = None, f"the rule's response does not fit this review: {exc}"
    approving = rule.action == "approve"
    if response is not None and approving and isinstance(review, Mapping) and review.get("quorum"):
        # The agent asked for N people's approvals: one rule is not N people (a rule may still
        # reject, the safe direction).
        response, problem = None, "a quorum review is approved by its reviewers' votes, never by a rule"
    if response is not None and review_type == "approval" and quorum.approves(payload, response) != approving:
        chosen = response.get("selectedOption")
        kind = "does not approve" if approving else "approves"
        response, problem = None, f"the rule would {rule.action} with option {chosen!r}, which {kind}"
    if response is None:
        return Decision(
            "ask", policy.id, policy.scope, rule.index, rule.name, policy.version, None, rule.risk,
            f"rule {rule.index} ({rule.action}) was not applied: {problem}", rule_action=rule.action,
        )  # fmt: skip
    return Decision(
        rule.action, policy.id, policy.scope, rule.index, rule.name, policy.version, response, rule.risk,
        rule_action=rule.action,
    )  # fmt: skip


def _response(rule: Rule, review_type: str, payload: Mapping[str, Any]) -> tuple[Any, str]:
    """The response ``rule`` would record on a review of this type, or (None, why not)."""
    if review_type != "approval":
        if rule.response is None:
            return None, f"a rule that decides a {review_type} review must carry a response"
        return rule.response, ""
    if rule.response is not None and "selectedOption" in rule.response:
        return rule.response, ""
    option = _default_option(payload, approving=rule.action == "approve")
    if option is None:
        kind = "approves" if rule.action == "approve" else "does not approve"
        return None, f"the review has no option that {kind}; give the rule a response"
    return {"selectedOption": option, **(rule.response or {})}, ""


def _default_option(payload: Mapping[str, Any], *, approving: bool) -> str | None:
    for option in payload.get("options") or ():
        if (
            isinstance(option, Mapping)
            and isinstance(option.get("id"), str)
            and quorum.option_approves(option) == approving
        ):
            return str(option["id"])
    return None


def review_risk(metadata: Mapping[str, Any] | None, decision: Decision) -> Risk | None:
    """The risk a new review carries: the higher of the agent's ``metadata.risk`` (when it is one
    of the labels; anything else is ignored) and the matching rule's ``risk``. Neither side can
    lower the other: an agent cannot talk a review the owner labelled ``high`` down to ``low``,
    and a broad owner's rule cannot bury an agent's own ``critical`` flag."""
    found: list[Risk] = [] if decision.risk is None else [decision.risk]
    claimed = (metadata or {}).get("risk")
    if isinstance(claimed, str) and claimed in RISK_RANK:
        found.append(cast(Risk, claimed))
    if not found:
        return None
    highest: Risk = max(found, key=_rank)
    return highest


def _rank(label: Risk) -> int:
    return RISK_RANK[label]


@dataclass(frozen=True)
class Asked:
    """A review left to people, after an ask rule's overrides (:func:`apply_overrides`):
    ``approvals`` None for no quorum, ``lifetime`` in seconds, ``on_expire`` the default
    response (None: none), ``notify`` the user ids told (None: every reviewer), and why any
    override was not applied."""

    approvals: int | None
    lifetime: float
    on_expire: Any
    notify: tuple[str, ...] | None = None
    skipped: tuple[str, ...] = ()


def apply_overrides(
    overrides: AskOverrides,
    review_type: str,
    payload: Mapping[str, Any],
    asked: Asked,
    *,
    owner_id: str,
    longest: float,
    check: ResponseCheck,
) -> Asked:
    """``asked`` (what the agent asked for) with ``overrides`` applied, never loosening it (see
    the module's docstring). ``longest`` caps a rule's deadline as any deadline is capped;
    ``check`` validates a rule's ``onExpire`` against this review as a human's answer is."""
    approvals, lifetime, on_expire, skipped = asked.approvals, asked.lifetime, asked.on_expire, []
    if overrides.quorum is not None and overrides.quorum > (approvals or 1):
        if review_type != "approval" or not quorum.can_decide(payload):
            skipped.append(
                "quorum not applied: only approval reviews with an approving option and one that "
                "does not approve take a quorum"
            )
        elif payload.get("edit") is not None:
            # As the API refuses an agent's quorum on such a review (sayso_api.reviews).
            skipped.append(
                "quorum not applied: the review offers its action for editing, and each reviewer "
                "would approve different arguments"
            )
        else:
            approvals = overrides.quorum
    if overrides.expires_in_seconds is not None:
        lifetime = min(lifetime, float(min(overrides.expires_in_seconds, longest)))
    if overrides.on_expire is not None:
        try:
            default = check(review_type, dict(payload), overrides.on_expire)
        except ValueError as exc:
            skipped.append(f"onExpire not applied: it does not fit this review: {exc}")
        else:
            loosens = (
                review_type == "approval"
                and on_expire is not None
                and quorum.approves(payload, default)
                and not quorum.approves(payload, on_expire)
            )
            if loosens:
                skipped.append("onExpire not applied: it approves, and the agent's own default does not")
            else:
                on_expire = default
    notify = asked.notify
    if overrides.notify is not None:
        notify = (owner_id,) if overrides.notify == ("owner",) else overrides.notify
    return Asked(approvals, lifetime, on_expire, notify, tuple(skipped))


def fallback(decision: Decision) -> PolicyFallbackDoc | None:
    """What a review records when a matching rule could not decide it (None when none matched,
    or one decided)."""
    if decision.reason is None or decision.policy is None or decision.version is None:
        return None
    return {
        "policy": decision.policy,
        "rule": decision.rule,
        "version": decision.version,
        "reason": decision.reason,
    }


def decided_by(decision: Decision) -> DecidedByDoc:
    """What a review records of the rule that decided it: ``{policy, rule, version}``."""
    assert decision.policy is not None, "only a matched rule decides"
    assert decision.rule is not None, "only a matched rule decides"
    assert decision.version is not None, "only a matched rule decides"
    return {"policy": decision.policy, "rule": decision.rule, "version": decision.version}


__all__ = [
    "ACTIONS",
    "ASK",
    "MAX_RULES",
    "RISKS",
    "RISK_RANK",
    "Action",
    "AskOverrides",
    "Asked",
    "Decision",
    "Policy",
    "PolicyError",
    "ResponseCheck",
    "Risk",
    "Rule",
    "Scope",
    "apply_overrides",
    "decide",
    "decided_by",
    "fallback",
    "parse_rules",
    "pinned_review_type",
    "review_risk",
    "subject",
]
