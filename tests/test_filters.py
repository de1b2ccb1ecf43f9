"""The filter language (``sayso_common.filters``) as units: a table of matches, a table of
refusals naming their place, a pattern that would hang Python's ``re``, and a property test: on
any JSON document a valid filter never raises and agrees with a plain reading of the rules
(``reference`` below, written from the module's documentation, not from its code)."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sayso_common.filters import MAX_NODES, FilterError, compile_filter

MESSAGE: dict[str, Any] = {
    "channel": "agt_1",
    "text": "Please DROP   TABLE users; thanks",
    "review": {"type": "approval"},
    "metadata": {
        "tool": "deploy",
        "env": "staging",
        "risk": "low",
        "args": {"amount": 42, "ratio": 0.5, "dry": False, "files": ["a.txt", "b.txt"], "owner": None},
        "tags": ["x", "y"],
    },
}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({}, True),
        ({"metadata.tool": "deploy"}, True),
        ({"metadata.tool": "Deploy"}, False),
        ({"review.type": "approval", "metadata.env": "staging"}, True),
        ({"review.type": "approval", "metadata.env": "production"}, False),
        ({"metadata.args.amount": {"$lt": 100}}, True),
        ({"metadata.args.amount": {"$gt": 41, "$lte": 42}}, True),
        ({"metadata.args.amount": {"$gte": 42.5}}, False),
        ({"metadata.args.amount": 42.0}, True),  # 42 == 42.0
        ({"metadata.args.amount": {"$gt": "1"}}, False),  # a number is not ordered against a string
        ({"metadata.args.dry": 0}, False),  # false is not 0
        ({"metadata.args.dry": False}, True),
        ({"metadata.args.files.1": "b.txt"}, True),  # arrays by index
        ({"metadata.args.files.2": {"$exists": True}}, False),
        ({"metadata.args.files": ["a.txt", "b.txt"]}, True),  # an array as a whole
        ({"metadata.tags": "x"}, False),  # not searched element by element
        ({"metadata.tags": {"$in": [["x", "y"], "z"]}}, True),
        ({"metadata.args.owner": None}, True),  # null
        ({"metadata.args.nobody": None}, True),  # null equals missing, as in MongoDB
        ({"metadata.args.nobody": {"$exists": False}}, True),
        ({"metadata.args.owner": {"$exists": True}}, True),  # present, though null
        ({"metadata.args.nobody": {"$ne": "x"}}, True),  # $ne matches a missing path
        ({"metadata.args.nobody": {"$nin": ["x"]}}, True),
        ({"metadata.args.nobody": {"$gt": 0}}, False),
        ({"metadata.risk": {"$in": ["low", "medium"]}}, True),
        ({"metadata.risk": {"$nin": ["low", "medium"]}}, False),
        ({"text": {"$regex": r"drop\s+table", "$options": "i"}}, True),
        ({"text": {"$regex": r"drop\s+table"}}, False),  # case-sensitive by default
        ({"metadata.args.amount": {"$regex": "4"}}, False),  # regex on strings only
        ({"metadata.args.amount": {"$not": {"$gt": 100}}}, True),
        ({"$not": {"metadata.tool": "shell"}}, True),
        ({"$or": [{"metadata.env": "production"}, {"metadata.risk": "low"}]}, True),
        ({"$and": [{"metadata.env": "staging"}, {"metadata.risk": "high"}]}, False),
        ({"metadata": {"$exists": True}, "metadata.args": {"ratio": 0.5}}, False),  # whole object
        ({"text.0": "P"}, False),  # a string is not walked
        ({"review": {"type": "approval"}}, True),
    ],
)
def test_matches(spec: dict[str, Any], expected: bool) -> None:
    assert compile_filter(spec).matches(MESSAGE) is expected
    assert reference(spec, MESSAGE) is expected  # the reference reads the rules the same way


@pytest.mark.parametrize(
    ("spec", "where", "problem"),
    [
        ([], "", "must be an object"),
        ({"metadata.tool": {"$like": "x"}}, "metadata.tool.$like", "unknown operator '$like'"),
        ({"$xor": []}, "$xor", "unknown operator '$xor'"),
        ({"$or": []}, "$or", "non-empty list"),
        ({"$or": [{"a": 1}, 5]}, "$or.1", "must be an object"),
        ({"$or": [{"a": {"$gt": [1]}}]}, "$or.0.a.$gt", "compares with a number or a string"),
        ({"a..b": 1}, "a..b", "empty segment"),
        ({"a.$b": 1}, "a.$b", "cannot start with $"),
        ({"a": {"$gt": 1, "b": 2}}, "a", "mixes operators"),
        ({"a": {"$in": "x"}}, "a.$in", "list of values"),
        ({"a": {"$exists": 1}}, "a.$exists", "true or false"),
        ({"a": {"$regex": "(?<=x)y"}}, "a.$regex", "not one RE2 accepts"),
        ({"a": {"$regex": 5}}, "a.$regex", "takes a string"),
        ({"a": {"$regex": "x" * 1001}}, "a.$regex", "at most 1000 characters"),
        ({"a": {"$regex": "x", "$options": "s"}}, "a.$regex", '"i"'),
        ({"a": {"$options": "i"}}, "a.$options", "goes with $regex"),
        ({"a": {"$not": 5}}, "a.$not", "object of operators"),
        ({"a": float("nan")}, "a", "finite"),
        ({"a": {"$in": [1, float("inf")]}}, "a.$in.1", "finite"),
        ({"a": {"$eq": {1: 2}}}, "a.$eq", "keys must be strings"),
        ({"a": {"$eq": object()}}, "a.$eq", "not a JSON value"),
    ],
)
def test_refusals_name_their_place(spec: Any, where: str, problem: str) -> None:
    with pytest.raises(FilterError) as caught:
        compile_filter(spec)
    assert caught.value.where == where, caught.value
    assert problem in caught.value.problem, caught.value


def test_size_and_depth_are_bounded() -> None:
    wide = {f"k{i}": i for i in range(MAX_NODES + 1)}
    with pytest.raises(FilterError, match="more than"):
        compile_filter(wide)
    deep: dict[str, Any] = {"a": 1}
    for _ in range(20):
        deep = {"$not": deep}
    with pytest.raises(FilterError, match="nest at most"):
        compile_filter(deep)


def test_a_pattern_that_hangs_python_re_runs_in_linear_time() -> None:
    # With Python's re, (a+)+$ against "a"*n + "b" backtracks exponentially (n = 30 is minutes);
    # RE2 answers at once. No clock is asserted: if this regressed, the test would not finish.
    evil = compile_filter({"text": {"$regex": "(a+)+$"}})
    assert evil.matches({"text": "a" * 100_000 + "b"}) is False
    assert evil.matches({"text": "a" * 100_000}) is True


# --- the property: never raises, agrees with a plain reading -------------------------------------

KEYS = ("a", "b", "c", "0", "1")
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.floats(-3, 3, allow_nan=False).map(lambda f: round(f, 1)),
    st.sampled_from(["", "a", "b", "ab", "A", "0"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(KEYS), inner, max_size=4)
    ),
    max_leaves=12,
)
# Mostly objects at the top, with most keys present, so that paths find values.
documents = st.one_of(values, st.dictionaries(st.sampled_from(KEYS), values, min_size=2, max_size=5))
# A document may also hold what no filter literal can: NaN and infinities.
hostile_documents = st.recursive(
    st.one_of(scalars, st.floats()),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=3), inner, max_size=4)
    ),
    max_leaves=12,
)
paths = st.lists(st.sampled_from(KEYS), min_size=1, max_size=3).map(".".join)
comparable = st.one_of(st.integers(-3, 3), st.sampled_from(["", "a", "b"]))
patterns = st.sampled_from(["a", "^a", "b$", "a|b", "^$", "[0-9]", "A"])


def operator_objects(values: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    single = st.one_of(
        st.tuples(st.sampled_from(["$eq", "$ne"]), values),
        st.tuples(st.sampled_from(["$in", "$nin"]), st.lists(values, max_size=3)),
        st.tuples(st.sampled_from(["$gt", "$gte", "$lt", "$lte"]), comparable),
        st.tuples(st.just("$exists"), st.booleans()),
        st.tuples(st.just("$regex"), patterns),
    )
    return (
        st.lists(single, min_size=1, max_size=3)
        .map(dict)
        .flatmap(
            lambda ops: st.one_of(
                st.just(ops),
                st.just({"$not": ops}),
                st.just({**ops, "$options": "i"}) if "$regex" in ops else st.just(ops),
            )
        )
    )


# Operators two times in three: the rules worth checking are theirs.
conditions = st.one_of(operator_objects(scalars), operator_objects(values), values)
filters = st.recursive(
    st.dictionaries(paths, conditions, max_size=3),
    lambda inner: st.one_of(
        st.tuples(st.sampled_from(["$and", "$or"]), st.lists(inner, min_size=1, max_size=3)).map(
            lambda t: {t[0]: t[1]}
        ),
        inner.map(lambda f: {"$not": f}),
    ),
    max_leaves=6,
)


@settings(max_examples=400, deadline=None)
@given(spec=filters, document=documents)
def test_agrees_with_the_plain_reading(spec: dict[str, Any], document: Any) -> None:
    # A generated condition may be an object with $-keys mixed with plain ones: compile refuses
    # those; the property is about filters that compile.
    try:
        compiled = compile_filter(spec)
    except FilterError:
        return
    assert compiled.matches(document) is reference(spec, document)


@settings(max_examples=300, deadline=None)
@given(spec=filters, document=hostile_documents)
def test_never_raises_on_any_json_document(spec: dict[str, Any], document: Any) -> None:
    try:
        compiled = compile_filter(spec)
    except FilterError:
        return
    assert compiled.matches(document) in (True, False)


MISSING = object()


def reference(spec: dict[str, Any], doc: Any) -> bool:
    """The rules read literally, one at a time; slow and obvious."""
    for key, value in spec.items():
        if key == "$and":
            ok = all(reference(f, doc) for f in value)
        elif key == "$or":
            ok = any(reference(f, doc) for f in value)
        elif key == "$not":
            ok = not reference(value, doc)
        else:
            ok = ref_condition(ref_lookup(doc, key.split(".")), value)
        if not ok:
            return False
    return True


def ref_lookup(doc: Any, segments: list[str]) -> Any:
    for seg in segments:
        if isinstance(doc, dict):
            if seg not in doc:
                return MISSING
            doc = doc[seg]
        elif isinstance(doc, list) and re.fullmatch("[0-9]+", seg):
            if int(seg) >= len(doc):
                return MISSING
            doc = doc[int(seg)]
        else:
            return MISSING
    return doc


def ref_same(a: Any, b: Any) -> bool:
    kinds = (type(a) is bool, type(b) is bool)
    if any(kinds):
        return all(kinds) and a == b
    if isinstance(a, float) and math.isnan(a):
        return False
    if isinstance(a, dict) and isinstance(b, dict):
        return sorted(a) == sorted(b) and all(ref_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(ref_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict | list) or isinstance(b, dict | list):
        return False
    if a is None or b is None:
        return a is b
    if isinstance(a, str) != isinstance(b, str):
        return False
    return bool(a == b)


def ref_eq(actual: Any, expected: Any) -> bool:
    if expected is None:
        return actual is MISSING or actual is None
    return actual is not MISSING and ref_same(actual, expected)


def ref_condition(actual: Any, cond: Any) -> bool:
    if not (isinstance(cond, dict) and cond and all(k.startswith("$") for k in cond)):
        return ref_eq(actual, cond)
    for op, arg in cond.items():
        if op == "$eq":
            ok = ref_eq(actual, arg)
        elif op == "$ne":
            ok = not ref_eq(actual, arg)
        elif op == "$in":
            ok = any(ref_eq(actual, x) for x in arg)
        elif op == "$nin":
            ok = not any(ref_eq(actual, x) for x in arg)
        elif op == "$exists":
            ok = (actual is not MISSING) == arg
        elif op == "$not":
            ok = not ref_condition(actual, arg)
        elif op == "$options":
            ok = True
        elif op == "$regex":
            flags = re.IGNORECASE if "i" in cond.get("$options", "") else 0
            ok = isinstance(actual, str) and re.search(arg, actual, flags) is not None
        else:
            both_numbers = all(isinstance(x, int | float) and type(x) is not bool for x in (actual, arg))
            both_strings = isinstance(actual, str) and isinstance(arg, str)
            if not (both_numbers or both_strings):
                ok = False
            else:
                ok = {"$gt": actual > arg, "$gte": actual >= arg, "$lt": actual < arg, "$lte": actual <= arg}[
                    op
                ]
        if not ok:
            return False
    return True
