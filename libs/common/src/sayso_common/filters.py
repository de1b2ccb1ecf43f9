"""The filter language: a JSON filter over a JSON document, in MongoDB's query shape, compiled
once when it is saved and evaluated many times. Policies (which rule matches a message) and
webhook subscriptions (which events an endpoint gets) both use it.

A filter is an object. Each key is either a dotted path into the document with a condition, or a
logical operator::

    {"review.type": "approval",                        # a value: equal to it
     "metadata.args.amount": {"$lt": 100},              # operators on one path
     "text": {"$regex": "drop\\s+table", "$options": "i"},
     "$or": [{"metadata.env": "staging"}, {"metadata.risk": {"$in": ["low", "medium"]}}],
     "$not": {"metadata.tool": "shell"}}

Path operators: ``$eq $ne $in $nin $gt $gte $lt $lte $exists $regex`` (with ``$options``:
``i`` for case-insensitive) and ``$not`` (an operator object whose result is negated). Logical:
``$and $or`` (non-empty lists of filters) and ``$not`` (a filter). The empty filter matches
everything.

Semantics, chosen to be predictable rather than MongoDB's in every corner:

- A path walks objects by key and arrays by a decimal index (``args.files.0``); a path that does
  not exist is *missing*. A value is compared as a whole: an array is not searched element by
  element (``{"tags": "x"}`` matches ``["x"]`` only via ``{"tags": {"$in": [["x"]]}}``, or
  ``{"tags.0": "x"}``).
- Equality is JSON equality: ``true`` is not ``1``, ``1`` is ``1.0``. ``null`` equals a missing
  path too (as in MongoDB); ``$ne`` and ``$nin`` match a missing path.
- ``$gt $gte $lt $lte`` compare numbers with numbers and strings with strings (by code point);
  any other pair does not match (never an error).
- ``$regex`` runs on strings only, with RE2: time linear in the input, so no saved pattern can
  hang the process that evaluates it (Python's ``re`` could, with ``(a+)+$``).

Evaluation never raises on any JSON document. Compiling refuses a bad filter with
:class:`FilterError`, naming the path within the filter (``$or.1.metadata.amount.$gt``) and what
is wrong, for a 422 that names the field."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import re2

# Bounds on what one filter may hold (a policy holds up to hundreds of rules, each one filter).
MAX_DEPTH: Final = 12
MAX_NODES: Final = 256
MAX_PATTERN_CHARS: Final = 1_000
MAX_PATH_SEGMENTS: Final = 16
# RE2's memory budget per compiled pattern; a pattern that needs more is refused when saved.
REGEX_MAX_MEM: Final = 1 << 20

PATH_OPERATORS: Final = frozenset(
    {"$eq", "$ne", "$in", "$nin", "$gt", "$gte", "$lt", "$lte", "$exists", "$regex", "$options", "$not"}
)
LOGICAL_OPERATORS: Final = frozenset({"$and", "$or", "$not"})

_MISSING: Final = object()

Predicate = Callable[[Any], bool]


class FilterError(ValueError):
    """A filter that cannot be compiled: ``where`` is the dotted place in the filter."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where or 'filter'}: {problem}")
        self.where = where
        self.problem = problem


@dataclass(frozen=True)
class Filter:
    """A compiled filter: call :meth:`matches` with a JSON document (dicts, lists, str, int, float,
    bool, None)."""

    source: Mapping[str, Any]
    _test: Predicate

    def matches(self, document: Any) -> bool:
        return self._test(document)


def compile_filter(spec: Any) -> Filter:
    """Check ``spec`` and build its evaluator; :class:`FilterError` names the first problem."""
    budget = _Budget()
    return Filter(spec, _compile_filter(spec, "", 0, budget))


# --- evaluation helpers (pure, total) -------------------------------------------------------------


def resolve(document: Any, path: Sequence[str]) -> Any:
    """The value at ``path``, or ``_MISSING``."""
    value = document
    for segment in path:
        # ``type(...) is dict`` first: documents are plain dicts, and an ABC isinstance check was
        # a fifth of a 50-rule policy's evaluation time.
        if type(value) is dict or isinstance(value, Mapping):
            if segment not in value:
                return _MISSING
            value = value[segment]
        elif isinstance(value, list) and segment.isdecimal() and segment.isascii():
            index = int(segment)
            if index >= len(value):
                return _MISSING
            value = value[index]
        else:
            return _MISSING
    return value


def json_equal(a: Any, b: Any) -> bool:
    """JSON equality: booleans are not numbers, numbers compare by value, containers deeply."""
    if type(a) is str and type(b) is str:  # the common case, without the checks below
        return a == b
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if _is_number(a) and _is_number(b):
        return bool(a == b)
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    return False


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _ordered(a: Any, b: Any, test: Callable[[Any, Any], bool]) -> bool:
    if _is_number(a) and _is_number(b):
        return test(a, b)
    if isinstance(a, str) and isinstance(b, str):
        return test(a, b)
    return False


_COMPARE: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "$gt": lambda a, b: bool(a > b),
    "$gte": lambda a, b: bool(a >= b),
    "$lt": lambda a, b: bool(a < b),
    "$lte": lambda a, b: bool(a <= b),
}


# --- compiling ------------------------------------------------------------------------------------


class _Budget:
    def __init__(self) -> None:
        self.nodes = 0

    def spend(self, where: str) -> None:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise FilterError(where, f"the filter has more than {MAX_NODES} conditions")


def _join(where: str, part: str | int) -> str:
    return f"{where}.{part}" if where else str(part)


def _compile_filter(spec: Any, where: str, depth: int, budget: _Budget) -> Predicate:
    if not isinstance(spec, Mapping):
        raise FilterError(where, "a filter must be an object")
    if depth > MAX_DEPTH:
        raise FilterError(where, f"filters nest at most {MAX_DEPTH} deep")
    tests: list[Predicate] = []
    for key, value in spec.items():
        if not isinstance(key, str):
            raise FilterError(where, "keys must be strings")
        here = _join(where, key)
        budget.spend(here)
        if key.startswith("$"):
            tests.append(_compile_logical(key, value, here, depth, budget))
        else:
            tests.append(_compile_path(key, value, here, depth, budget))
    return _all(tests)


def _all(tests: list[Predicate]) -> Predicate:
    # Loops rather than all()/any() over a generator: a policy evaluates up to hundreds of these
    # per message, and the generator was a measurable share of that.
    if not tests:
        return lambda _doc: True
    if len(tests) == 1:
        return tests[0]
    if len(tests) == 2:
        first, second = tests
        return lambda doc: first(doc) and second(doc)
    frozen = tuple(tests)

    def every(doc: Any) -> bool:
        for test in frozen:  # noqa: SIM110 (see above)
            if not test(doc):
                return False
        return True

    return every


def _any(tests: list[Predicate]) -> Predicate:
    frozen = tuple(tests)

    def some(value: Any) -> bool:
        for test in frozen:  # noqa: SIM110 (see above)
            if test(value):
                return True
        return False

    return some


def _compile_logical(key: str, value: Any, where: str, depth: int, budget: _Budget) -> Predicate:
    if key not in LOGICAL_OPERATORS:
        known = ", ".join(sorted(LOGICAL_OPERATORS))
        raise FilterError(where, f"unknown operator {key!r} at the top of a filter (known there: {known})")
    if key == "$not":
        inner = _compile_filter(value, where, depth + 1, budget)
        return lambda doc: not inner(doc)
    if not isinstance(value, list) or not value:
        raise FilterError(where, f"{key} takes a non-empty list of filters")
    parts = [_compile_filter(item, _join(where, i), depth + 1, budget) for i, item in enumerate(value)]
    if key == "$and":
        return _all(parts)
    return _any(parts)


def _split_path(key: str, where: str) -> tuple[str, ...]:
    segments = tuple(key.split("."))
    if any(not s for s in segments):
        raise FilterError(where, "a path has no empty segment (no leading, trailing or double dot)")
    if len(segments) > MAX_PATH_SEGMENTS:
        raise FilterError(where, f"a path has at most {MAX_PATH_SEGMENTS} segments")
    if any(s.startswith("$") for s in segments):
        raise FilterError(where, "a path segment cannot start with $")
    return segments


def _is_operator_object(value: Any) -> bool:
    return (
        isinstance(value, Mapping)
        and bool(value)
        and all(isinstance(k, str) and k.startswith("$") for k in value)
    )


def _compile_path(key: str, value: Any, where: str, depth: int, budget: _Budget) -> Predicate:
    path = _split_path(key, where)
    condition = _compile_condition(value, where, depth, budget)
    return lambda doc: condition(resolve(doc, path))


def _compile_condition(value: Any, where: str, depth: int, budget: _Budget) -> Predicate:
    """A predicate over the value at a path (``_MISSING`` when absent)."""
    if isinstance(value, Mapping) and any(isinstance(k, str) and k.startswith("$") for k in value):
        if not _is_operator_object(value):
            raise FilterError(where, "an object mixes operators ($…) and plain keys")
        return _compile_operators(value, where, depth, budget)
    _check_json(value, where)
    return _equals(value)


def _equals(expected: Any) -> Predicate:
    if expected is None:
        return lambda actual: actual is _MISSING or actual is None
    return lambda actual: actual is not _MISSING and json_equal(actual, expected)


def _compile_operators(ops: Mapping[str, Any], where: str, depth: int, budget: _Budget) -> Predicate:
    if depth > MAX_DEPTH:
        raise FilterError(where, f"filters nest at most {MAX_DEPTH} deep")
    tests: list[Predicate] = []
    if "$options" in ops and "$regex" not in ops:
        raise FilterError(_join(where, "$options"), "$options goes with $regex")
    for op, arg in ops.items():
        here = _join(where, op)
        budget.spend(here)
        if op not in PATH_OPERATORS:
            known = ", ".join(sorted(PATH_OPERATORS))
            raise FilterError(here, f"unknown operator {op!r} (known on a path: {known})")
        if op == "$options":
            continue
        if op == "$regex":
            tests.append(_regex(arg, ops.get("$options", ""), here))
        elif op == "$not":
            if not _is_operator_object(arg):
                raise FilterError(here, '$not on a path takes an object of operators, e.g. {"$gt": 5}')
            inner = _compile_operators(arg, here, depth + 1, budget)
            tests.append(_negated(inner))
        elif op == "$exists":
            if not isinstance(arg, bool):
                raise FilterError(here, "$exists takes true or false")
            tests.append(_exists(arg))
        elif op in ("$in", "$nin"):
            if not isinstance(arg, list):
                raise FilterError(here, f"{op} takes a list of values")
            for i, item in enumerate(arg):
                _check_json(item, _join(here, i))
            among = _among([_equals(item) for item in arg])
            tests.append(among if op == "$in" else _negated(among))
        elif op in ("$eq", "$ne"):
            _check_json(arg, here)
            same = _equals(arg)
            tests.append(same if op == "$eq" else _negated(same))
        else:  # $gt $gte $lt $lte
            if not (_is_number(arg) or isinstance(arg, str)):
                raise FilterError(here, f"{op} compares with a number or a string")
            _check_json(arg, here)
            tests.append(_compared(arg, _COMPARE[op]))
    return _all(tests)


def _negated(test: Predicate) -> Predicate:
    return lambda actual: not test(actual)


def _exists(want: bool) -> Predicate:
    return lambda actual: (actual is not _MISSING) is want


def _among(tests: list[Predicate]) -> Predicate:
    return _any(tests)


def _compared(bound: Any, compare: Callable[[Any, Any], bool]) -> Predicate:
    return lambda actual: actual is not _MISSING and _ordered(actual, bound, compare)


def _regex(pattern: Any, options: Any, where: str) -> Predicate:
    if not isinstance(pattern, str):
        raise FilterError(where, "$regex takes a string")
    if len(pattern) > MAX_PATTERN_CHARS:
        raise FilterError(where, f"a pattern has at most {MAX_PATTERN_CHARS} characters")
    if not isinstance(options, str) or set(options) - {"i"}:
        raise FilterError(where, '$options may only be "i" (case-insensitive)')
    settings = re2.Options()
    settings.log_errors = False
    settings.max_mem = REGEX_MAX_MEM
    settings.case_sensitive = "i" not in options
    try:
        compiled = re2.compile(pattern, options=settings)
    except re2.error as exc:
        detail = (
            exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        )
        raise FilterError(where, f"the pattern is not one RE2 accepts ({detail})") from None
    return lambda actual: isinstance(actual, str) and compiled.search(actual) is not None


def _check_json(value: Any, where: str, depth: int = 0) -> None:
    """A literal in a filter is JSON: no NaN or infinity (they equal nothing, not even
    themselves), nothing nested deeper than the document limit."""
    if depth > MAX_DEPTH:
        raise FilterError(where, f"a value nests at most {MAX_DEPTH} deep")
    if isinstance(value, float) and not math.isfinite(value):
        raise FilterError(where, "numbers must be finite")
    if isinstance(value, list):
        for item in value:
            _check_json(item, where, depth + 1)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise FilterError(where, "object keys must be strings")
            _check_json(item, where, depth + 1)
    elif value is not None and not isinstance(value, str | int | float | bool):
        raise FilterError(where, f"{type(value).__name__} is not a JSON value")


__all__ = ["Filter", "FilterError", "compile_filter", "json_equal", "resolve"]
