"""Policies: rules that decide a review before a human sees it. Pure, no I/O.

A policy belongs to one channel or to one account (the owner's, for all their channels) and is
an ordered list of rules, read and replaced as a whole: ``{"rules": [rule, …]}``. A rule is::

    {"name": "staging deploys under 100",              # optional, at most 100 characters
     "match": {"metadata.env": "staging", "metadata.args.amount": {"$lt": 100}},
     "action": "approve",                              # approve | reject | ask
     "response": {"selectedOption": "approve"},        # optional: what approve/reject records
     "risk": "low"}                                    # optional: low | medium | high | critical

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
RULE_FIELDS: Final = ("name", "match", "action", "response", "risk")

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
class Rule:
    index: int
    match: Filter
    action: Action
    name: str | None = None
    response: dict[str, Any] | None = None
    risk: Risk | None = None

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
    return Rule(index, match, action, name, response, risk)


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
        rule.action, policy.id, policy.scope, rule.index, rule.name, policy.version, None, rule.risk
    )
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
            f"rule {rule.index} ({rule.action}) was not applied: {problem}",
        )  # fmt: skip
    return Decision(
        rule.action, policy.id, policy.scope, rule.index, rule.name, policy.version, response, rule.risk
    )


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
    "Action",
    "Decision",
    "Policy",
    "PolicyError",
    "ResponseCheck",
    "Risk",
    "Rule",
    "Scope",
    "decide",
    "decided_by",
    "fallback",
    "parse_rules",
    "pinned_review_type",
    "subject",
]
