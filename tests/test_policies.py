"""Policies (``sayso_common.policies``) as units: which rule decides (channel before account,
first match wins, default ask), what approve and reject record on each review type, the rules
that cannot be applied and fall back to ask with a reason, and the refusals a save names by rule
and field. The response check is the API's own (``validate_response``), as in production."""

from __future__ import annotations

from typing import Any

import pytest

from sayso_common import policies
from sayso_common.policies import MAX_RULES, Decision, Policy, PolicyError, decide, parse_rules, subject
from sayso_common.reviews import normalise_payload, validate_response

SELECTION = {"mode": "single", "items": [{"id": "a", "label": "A"}, {"id": "b", "label": "B"}]}
FORM = {"fields": [{"name": "title", "label": "Title", "type": "text", "required": True}]}
CUSTOM = {
    "options": [
        {"id": "ship", "label": "Ship", "style": "success"},
        {"id": "hold", "label": "Hold", "style": "secondary"},
        {"id": "kill", "label": "Kill", "style": "danger"},
    ]
}
ONLY_OK = {"options": [{"id": "ok", "label": "OK"}]}


def policy(rules: list[dict[str, Any]], scope: policies.Scope = "channel", version: int = 1) -> Policy:
    return Policy(f"pol_{scope}", scope, version, parse_rules(rules))


def message(
    review_type: str = "approval",
    payload: dict[str, Any] | None = None,
    text: str | None = "deploy web",
    metadata: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the document rules see, the stored payload)."""
    sent = payload or {}
    return subject("agt_1", text, review_type, sent, metadata), normalise_payload(review_type, sent)


def decided(
    channel: list[dict[str, Any]] | None,
    account: list[dict[str, Any]] | None,
    review_type: str = "approval",
    payload: dict[str, Any] | None = None,
    text: str | None = "deploy web",
    metadata: dict[str, Any] | None = None,
) -> Decision:
    doc, stored = message(review_type, payload, text, metadata)
    return decide(
        policy(channel) if channel is not None else None,
        policy(account, "account", 7) if account is not None else None,
        doc,
        stored,
        validate_response,
    )


STAGING = {"metadata.env": "staging"}
ALL: dict[str, Any] = {}


@pytest.mark.parametrize(
    ("channel", "account", "metadata", "expected"),
    [
        # No policy, or no rule matching: a person decides.
        (None, None, {"env": "staging"}, ("ask", None, None)),
        ([], [], {"env": "staging"}, ("ask", None, None)),
        ([{"match": STAGING, "action": "approve"}], None, {"env": "prod"}, ("ask", None, None)),
        # First match wins, in order.
        (
            [{"match": STAGING, "action": "approve"}, {"match": ALL, "action": "reject"}],
            None,
            {"env": "staging"},
            ("approve", "channel", 0),
        ),
        (
            [{"match": ALL, "action": "reject"}, {"match": STAGING, "action": "approve"}],
            None,
            {"env": "staging"},
            ("reject", "channel", 0),
        ),
        (
            [
                {"match": {"metadata.env": "prod"}, "action": "approve"},
                {"match": STAGING, "action": "reject"},
            ],
            None,
            {"env": "staging"},
            ("reject", "channel", 1),
        ),
        # An ask rule stops the search too (it shadows the account's approve).
        (
            [{"match": STAGING, "action": "ask"}],
            [{"match": ALL, "action": "approve"}],
            {"env": "staging"},
            ("ask", "channel", 0),
        ),
        # The channel's rules before the account's; the account's when the channel's miss.
        (
            [{"match": STAGING, "action": "reject"}],
            [{"match": ALL, "action": "approve"}],
            {"env": "staging"},
            ("reject", "channel", 0),
        ),
        (
            [{"match": STAGING, "action": "reject"}],
            [{"match": ALL, "action": "approve"}],
            {"env": "prod"},
            ("approve", "account", 0),
        ),
        (None, [{"match": ALL, "action": "approve"}], None, ("approve", "account", 0)),
        # Rules see the channel, text, review type and metadata.
        ([{"match": {"channel": "agt_1"}, "action": "approve"}], None, None, ("approve", "channel", 0)),
        ([{"match": {"channel": "agt_2"}, "action": "approve"}], None, None, ("ask", None, None)),
        (
            [{"match": {"text": {"$regex": "^deploy"}}, "action": "approve"}],
            None,
            None,
            ("approve", "channel", 0),
        ),
        (
            [{"match": {"review.type": "selection"}, "action": "approve"}],
            None,
            None,
            ("ask", None, None),
        ),
        (
            [{"match": {"metadata.args.amount": {"$lt": 100}}, "action": "approve"}],
            None,
            {"args": {"amount": 250}},
            ("ask", None, None),
        ),
        (
            [{"match": {"metadata.args.amount": {"$lt": 100}}, "action": "approve"}],
            None,
            {"args": {"amount": 99.5}},
            ("approve", "channel", 0),
        ),
    ],
)
def test_which_rule_decides(
    channel: list[dict[str, Any]] | None,
    account: list[dict[str, Any]] | None,
    metadata: dict[str, Any] | None,
    expected: tuple[str, str | None, int | None],
) -> None:
    decision = decided(channel, account, metadata=metadata)
    assert (decision.action, decision.scope, decision.rule) == expected
    assert decision.reason is None
    assert policies.fallback(decision) is None
    if decision.scope is not None:
        assert decision.policy == f"pol_{decision.scope}"
        assert decision.version == (1 if decision.scope == "channel" else 7)


@pytest.mark.parametrize(
    ("rule", "review_type", "payload", "response"),
    [
        # Approval reviews: the review's own approving / non-approving option by default.
        ({"action": "approve"}, "approval", None, {"selectedOption": "approve"}),
        ({"action": "reject"}, "approval", None, {"selectedOption": "reject"}),
        ({"action": "approve"}, "approval", CUSTOM, {"selectedOption": "ship"}),
        ({"action": "reject"}, "approval", CUSTOM, {"selectedOption": "hold"}),
        ({"action": "approve"}, "approval", ONLY_OK, {"selectedOption": "ok"}),
        # A comment alone is completed with that option; a full response is recorded as given.
        (
            {"action": "reject", "response": {"comment": "never on Fridays"}},
            "approval",
            None,
            {"selectedOption": "reject", "comment": "never on Fridays"},
        ),
        (
            {"action": "reject", "response": {"selectedOption": "kill", "comment": "no"}},
            "approval",
            CUSTOM,
            {"selectedOption": "kill", "comment": "no"},
        ),
        # Other review types record the rule's response, checked like a person's answer.
        (
            {"action": "approve", "response": {"selectedIds": ["b"]}},
            "selection",
            SELECTION,
            {"selectedIds": ["b"]},
        ),
        ({"action": "approve", "response": {"title": "Hi"}}, "form", FORM, {"title": "Hi"}),
        ({"action": "reject", "response": {"text": "no"}}, "text-input", {}, {"text": "no"}),
        ({"action": "approve", "response": {"anything": [1]}}, "freeform", {}, {"anything": [1]}),
    ],
)
def test_what_a_decision_records(
    rule: dict[str, Any], review_type: str, payload: dict[str, Any] | None, response: dict[str, Any]
) -> None:
    decision = decided([{"match": ALL, **rule}], None, review_type, payload)
    assert decision.action == rule["action"]
    assert decision.response == response
    assert policies.decided_by(decision) == {"policy": "pol_channel", "rule": 0, "version": 1}


@pytest.mark.parametrize(
    ("rule", "review_type", "payload", "why"),
    [
        ({"action": "approve"}, "selection", SELECTION, "must carry a response"),
        ({"action": "reject"}, "text-input", {}, "must carry a response"),
        (
            {"action": "approve", "response": {"selectedIds": ["zz"]}},
            "selection",
            SELECTION,
            "unknown option id",
        ),
        (
            {"action": "approve", "response": {"selectedIds": ["a", "b"]}},
            "selection",
            SELECTION,
            "exactly one",
        ),
        ({"action": "approve", "response": {}}, "form", FORM, "Title is required"),
        ({"action": "approve", "response": {"selectedOption": "nope"}}, "approval", None, "must be one of"),
        # The action and the option disagree.
        (
            {"action": "approve", "response": {"selectedOption": "reject"}},
            "approval",
            None,
            "does not approve",
        ),
        ({"action": "reject", "response": {"selectedOption": "ship"}}, "approval", CUSTOM, "which approves"),
        # Nothing to choose by default.
        ({"action": "reject"}, "approval", ONLY_OK, "no option that does not approve"),
        (
            {"action": "approve"},
            "approval",
            {"options": [{"id": "x", "label": "X"}]},
            "no option that approves",
        ),
    ],
)
def test_a_rule_that_cannot_apply_leaves_it_to_a_person(
    rule: dict[str, Any], review_type: str, payload: dict[str, Any] | None, why: str
) -> None:
    # The broader approve below must not decide instead: the first match stands, as ask.
    decision = decided(
        [{"match": ALL, **rule}, {"match": ALL, "action": "approve"}], None, review_type, payload
    )
    assert decision.action == "ask"
    assert decision.rule == 0
    assert decision.response is None
    assert decision.reason is not None
    assert why in decision.reason
    assert policies.fallback(decision) == {
        "policy": "pol_channel", "rule": 0, "version": 1, "reason": decision.reason,
    }  # fmt: skip


def test_a_policy_that_no_longer_compiles_decides_nothing() -> None:
    broken = Policy("pol_c", "channel", 3, (), problem="rules[0].match: unknown operator")
    doc, stored = message()
    account = policy([{"match": ALL, "action": "approve"}], "account")
    decision = decide(broken, account, doc, stored, validate_response)
    assert (decision.action, decision.policy, decision.version) == ("ask", "pol_c", 3)
    assert decision.reason is not None
    assert "unknown operator" in decision.reason


def test_rules_see_the_message_as_sent() -> None:
    doc = subject("agt_9", None, "approval", {"options": None}, None)
    assert doc == {"channel": "agt_9", "review": {"type": "approval", "payload": {"options": None}}}
    full = subject("agt_9", "hi", "form", FORM, {"tool": "x"})
    assert full == {
        "channel": "agt_9",
        "text": "hi",
        "review": {"type": "form", "payload": FORM},
        "metadata": {"tool": "x"},
    }


def test_rules_read_back_as_saved() -> None:
    saved = [
        {"name": "staging", "match": STAGING, "action": "approve", "risk": "low"},
        {"match": ALL, "action": "reject", "response": {"comment": "no"}},
    ]
    assert [rule.source() for rule in parse_rules(saved)] == saved


@pytest.mark.parametrize(
    ("rules", "field", "problem"),
    [
        ({"match": {}}, "rules", "must be a list"),
        ([{"match": {}, "action": "approve"}] * (MAX_RULES + 1), "rules", f"at most {MAX_RULES}"),
        (["approve"], "rules[0]", "is an object"),
        ([{"action": "approve"}], "rules[0].match", "is required"),
        ([{"match": [], "action": "approve"}], "rules[0].match", "must be an object"),
        ([{"match": {}}], "rules[0].action", "must be one of approve, reject, ask"),
        ([{"match": {}, "action": "allow"}], "rules[0].action", "must be one of"),
        ([{"match": {}, "action": "ask", "priority": 2}], "rules[0].priority", "is not a field of a rule"),
        # An ask rule's overrides.
        ([{"match": {}, "action": "ask", "quorum": 2}], "rules[0].quorum", '{"approvals": N}'),
        (
            [{"match": {}, "action": "ask", "quorum": {"approvals": 0}}],
            "rules[0].quorum.approvals",
            "1 to 101",
        ),
        (
            [{"match": {}, "action": "ask", "quorum": {"approvals": True}}],
            "rules[0].quorum.approvals",
            "1 to",
        ),
        (
            [{"match": {"review.type": "form"}, "action": "ask", "quorum": {"approvals": 2}}],
            "rules[0].quorum",
            "only approval reviews",
        ),
        (
            [{"match": {}, "action": "approve", "quorum": {"approvals": 2}}],
            "rules[0].quorum",
            "only an ask rule",
        ),
        ([{"match": {}, "action": "reject", "notify": "owner"}], "rules[0].notify", "only an ask rule"),
        ([{"match": {}, "action": "ask", "expiresInSeconds": 0}], "rules[0].expiresInSeconds", "1 to 604800"),
        ([{"match": {}, "action": "ask", "expiresInSeconds": 1.5}], "rules[0].expiresInSeconds", "whole"),
        (
            [{"match": {}, "action": "ask", "onExpire": {"selectedOption": "x"}}],
            "rules[0].onExpire",
            "response",
        ),
        (
            [{"match": {}, "action": "ask", "onExpire": {"response": "no"}}],
            "rules[0].onExpire.response",
            "object",
        ),
        (
            [
                {
                    "match": {"review.type": "approval"},
                    "action": "ask",
                    "onExpire": {"response": {"text": "x"}},
                }
            ],
            "rules[0].onExpire.response.text",
            "not part of a response",
        ),
        ([{"match": {}, "action": "ask", "notify": "everyone"}], "rules[0].notify", '"owner" or a list'),
        ([{"match": {}, "action": "ask", "notify": []}], "rules[0].notify", "1 to 20"),
        ([{"match": {}, "action": "ask", "notify": ["usr_a", 3]}], "rules[0].notify[1]", "user id"),
        ([{"match": {}, "action": "ask", "name": ""}], "rules[0].name", "non-empty string"),
        ([{"match": {}, "action": "ask", "name": "x" * 101}], "rules[0].name", "at most 100"),
        ([{"match": {}, "action": "ask", "risk": "extreme"}], "rules[0].risk", "low, medium, high, critical"),
        (
            [
                {"match": {}, "action": "ask"},
                {"match": {}, "action": "ask"},
                {"match": {}, "action": "ask"},
                {"match": {"metadata.amount": {"$gt": [1]}}, "action": "approve"},
            ],
            "rules[3].match.metadata.amount.$gt",
            "compares with a number or a string",
        ),
        (
            [{"match": {"$or": [{"a": 1}, {"b": {"$foo": 1}}]}, "action": "ask"}],
            "rules[0].match.$or.1.b.$foo",
            "unknown operator",
        ),
        ([{"match": {"text": {"$regex": "(a"}}, "action": "ask"}], "rules[0].match.text.$regex", "RE2"),
        (
            [{"match": {}, "action": "ask", "response": {"text": "x"}}],
            "rules[0].response",
            "only an approve or reject",
        ),
        ([{"match": {}, "action": "approve", "response": "yes"}], "rules[0].response", "must be an object"),
        (
            [{"match": {}, "action": "approve", "response": {"x": "y" * 20_000}}],
            "rules[0].response",
            "at most",
        ),
        # A response whose shape cannot fit the review type its rule pins is refused on save.
        (
            [{"match": {"review.type": "approval"}, "action": "approve", "response": {"selectedIds": ["a"]}}],
            "rules[0].response.selectedIds",
            "not part of a response to approval reviews",
        ),
        (
            [
                {
                    "match": {"review.type": {"$eq": "selection"}},
                    "action": "approve",
                    "response": {"selectedIds": []},
                }
            ],
            "rules[0].response.selectedIds",
            "non-empty list",
        ),
        (
            [{"match": {"review.type": "text-input"}, "action": "reject", "response": {"text": 5}}],
            "rules[0].response.text",
            "must be a string",
        ),
        (
            [{"match": {"review.type": "approval"}, "action": "reject", "response": {"selectedOption": 3}}],
            "rules[0].response.selectedOption",
            "option id",
        ),
    ],
)
def test_refusals_name_the_rule_and_field(rules: Any, field: str, problem: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_rules(rules)
    assert caught.value.field == field
    assert problem in caught.value.problem


def test_a_response_is_only_checked_against_options_when_a_message_arrives() -> None:
    # The options are the agent's, known only then: saved fine, not applied to a review without it.
    rules = [
        {"match": {"review.type": "approval"}, "action": "approve", "response": {"selectedOption": "ship"}}
    ]
    assert parse_rules(rules)[0].response == {"selectedOption": "ship"}
    assert decided(rules, None, "approval", CUSTOM).action == "approve"
    assert decided(rules, None, "approval", None).action == "ask"


def test_a_rule_never_approves_a_quorum_review_but_may_reject_it() -> None:
    # The agent asked for two people's approvals: an approving rule leaves the review to them
    # (and a broader rule below does not approve instead); a rejecting rule still applies.
    doc = subject("agt_1", "deploy web", "approval", {}, None, {"approvals": 2})
    stored = normalise_payload("approval", {})
    assert doc["review"]["quorum"] == {"approvals": 2}  # rules can match it
    approving = decide(
        policy([{"match": ALL, "action": "approve"}, {"match": ALL, "action": "approve"}]),
        None, doc, stored, validate_response,
    )  # fmt: skip
    assert (approving.action, approving.rule) == ("ask", 0)
    assert approving.reason is not None
    assert "quorum" in approving.reason
    rejecting = decide(policy([{"match": ALL, "action": "reject"}]), None, doc, stored, validate_response)
    assert rejecting.action == "reject"
    # A rule can leave quorum reviews out by matching on it.
    alone = decide(
        policy([{"match": {"review.quorum": {"$exists": False}}, "action": "approve"}]),
        None, doc, stored, validate_response,
    )  # fmt: skip
    assert (alone.action, alone.rule) == ("ask", None)


def test_overrides_read_back_as_saved() -> None:
    saved = [
        {
            "match": {"metadata.env": "production"},
            "action": "ask",
            "risk": "high",
            "quorum": {"approvals": 2},
            "expiresInSeconds": 600,
            "onExpire": {"response": {"selectedOption": "reject"}},
            "notify": ["usr_a", "usr_b"],
        },
        {"match": {}, "action": "ask", "notify": "owner"},
    ]
    assert [rule.source() for rule in parse_rules(saved)] == saved


@pytest.mark.parametrize(
    ("label", "rule_risk", "expected"),
    [
        (None, None, None),
        ("low", None, "low"),
        (None, "high", "high"),
        ("low", "high", "high"),  # an agent cannot talk the owner's label down
        ("critical", "low", "critical"),  # a broad rule cannot bury the agent's own flag
        ("urgent", "medium", "medium"),  # not a label: ignored
        (5, None, None),
        ("LOW", None, None),
    ],
)
def test_a_review_carries_the_higher_risk(label: Any, rule_risk: str | None, expected: str | None) -> None:
    rules = [{"match": {}, "action": "ask", **({"risk": rule_risk} if rule_risk else {})}]
    metadata = {"risk": label} if label is not None else None
    decision = decided(rules, None, metadata=metadata)
    assert policies.review_risk(metadata, decision) == expected


DEFAULT = {
    "options": [
        {"id": "approve", "label": "Approve", "style": "primary"},
        {"id": "reject", "label": "Reject"},
    ]
}


def overrides(**raw: Any) -> policies.AskOverrides:
    rule = parse_rules([{"match": {}, "action": "ask", **raw}])[0]
    assert rule.overrides is not None
    return rule.overrides


@pytest.mark.parametrize(
    ("raw", "review_type", "asked", "expected"),
    [
        # A quorum raises, never lowers; 1 adds nothing.
        ({"quorum": {"approvals": 3}}, "approval", (None, 600, None), (3, 600, None, ())),
        ({"quorum": {"approvals": 2}}, "approval", (4, 600, None), (4, 600, None, ())),
        ({"quorum": {"approvals": 1}}, "approval", (None, 600, None), (None, 600, None, ())),
        ({"quorum": {"approvals": 2}}, "text-input", (None, 600, None), (None, 600, None, ("quorum",))),
        # A deadline shortens, never lengthens, and is capped like any deadline.
        ({"expiresInSeconds": 60}, "approval", (None, 600, None), (None, 60, None, ())),
        ({"expiresInSeconds": 6000}, "approval", (None, 600, None), (None, 600, None, ())),
        ({"expiresInSeconds": 500_000}, "approval", (None, 90_000, None), (None, 86_400, None, ())),
        # A default on timeout: set, or replacing the agent's, unless it would approve instead.
        (
            {"onExpire": {"response": {"selectedOption": "reject"}}},
            "approval",
            (None, 600, None),
            (None, 600, {"selectedOption": "reject"}, ()),
        ),
        (
            {"onExpire": {"response": {"selectedOption": "reject"}}},
            "approval",
            (None, 600, {"selectedOption": "approve"}),
            (None, 600, {"selectedOption": "reject"}, ()),
        ),
        (
            {"onExpire": {"response": {"selectedOption": "approve"}}},
            "approval",
            (None, 600, {"selectedOption": "reject"}),
            (None, 600, {"selectedOption": "reject"}, ("onExpire",)),
        ),
        (
            {"onExpire": {"response": {"selectedOption": "maybe"}}},
            "approval",
            (None, 600, None),
            (None, 600, None, ("onExpire",)),
        ),
    ],
)
def test_ask_overrides_never_loosen(
    raw: dict[str, Any], review_type: str, asked: tuple[Any, ...], expected: tuple[Any, ...]
) -> None:
    payload = normalise_payload(review_type, DEFAULT if review_type == "approval" else {})
    done = policies.apply_overrides(
        overrides(**raw), review_type, payload, policies.Asked(*asked),
        owner_id="usr_owner", longest=86_400, check=validate_response,
    )  # fmt: skip
    approvals, lifetime, on_expire, skipped = expected
    assert (done.approvals, done.lifetime, done.on_expire) == (approvals, lifetime, on_expire)
    assert tuple(why.split(" ", 1)[0] for why in done.skipped) == skipped


def test_an_ask_rule_puts_no_quorum_on_an_editable_action() -> None:
    """Found in the review read: a rule's quorum landed on a review offering its arguments for
    editing, which the API refuses an agent (each reviewer would approve other arguments)."""
    payload = normalise_payload("approval", {**DEFAULT, "edit": {"args": {"n": 1}}})
    done = policies.apply_overrides(
        overrides(quorum={"approvals": 2}), "approval", payload, policies.Asked(None, 600, None),
        owner_id="usr_owner", longest=86_400, check=validate_response,
    )  # fmt: skip
    assert done.approvals is None
    assert [why.split(":")[0] for why in done.skipped] == ["quorum not applied"]


def test_notify_owner_names_the_owner() -> None:
    asked = policies.Asked(None, 600, None)
    done = policies.apply_overrides(
        overrides(notify="owner"),
        "approval",
        DEFAULT,
        asked,
        owner_id="usr_o",
        longest=900,
        check=validate_response,
    )
    assert done.notify == ("usr_o",)
    listed = overrides(notify=["usr_b", "usr_a", "usr_b"])
    assert listed.notify == ("usr_b", "usr_a")


def test_an_ask_rule_carries_its_overrides_and_a_fallen_back_rule_its_action() -> None:
    asked = decided([{"match": {}, "action": "ask", "quorum": {"approvals": 2}}], None)
    assert asked.overrides == policies.AskOverrides(quorum=2)
    assert asked.rule_action == "ask"
    fell_back = decided([{"match": {}, "action": "reject"}], None, payload=ONLY_OK)
    assert (fell_back.action, fell_back.rule_action) == ("ask", "reject")
    assert decided(None, None).rule_action is None
