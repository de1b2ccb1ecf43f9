"""JSON Schema (draft 2020-12) for an editable action's arguments: checking a schema, and checking
arguments against it.

The one adapter over ``jsonschema``. Two of its defaults do not suit a schema an agent sends and
arguments a human types, so they are changed here:

* **No network.** A ``$ref`` to anything but the schema itself would make jsonschema fetch the
  URL (deprecated, but still its default). Validators here get an empty registry that retrieves
  nothing: a remote ``$ref`` is an unresolvable one, answered as a bad schema.
* **No backtracking.** ``pattern``, ``patternProperties`` and ``additionalProperties`` (which
  consults ``patternProperties``) match with RE2, as the filter language does, so a pattern like
  ``(a+)+$`` cannot stall the API. Every pattern must therefore be one RE2 accepts; a schema
  that pairs ``unevaluatedProperties`` with ``patternProperties`` is refused, because jsonschema
  matches those with Python's ``re`` inside its own helpers.

Errors carry a path into the checked value (``("amount",)``, ``("items", 0)``) so callers can name
the field at fault.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import re2
from jsonschema import Draft202012Validator, ValidationError, validators
from jsonschema.exceptions import SchemaError, best_match
from referencing import Registry
from referencing.exceptions import Unresolvable

REGEX_MAX_MEM = 1 << 20
MAX_PATTERN_CHARS = 1000
Path = tuple[str | int, ...]


class BadSchemaError(ValueError):
    """The schema itself is unusable; ``message`` says why, for a person."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadArgsError(ValueError):
    """The arguments do not satisfy the schema; ``path`` is where, inside them."""

    def __init__(self, path: Path, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


@functools.lru_cache(maxsize=256)
def _compiled(pattern: str) -> re2._Regexp[str]:
    settings = re2.Options()
    settings.log_errors = False
    settings.max_mem = REGEX_MAX_MEM
    return re2.compile(pattern, options=settings)


def _search(pattern: str, text: str) -> bool:
    return _compiled(pattern).search(text) is not None


def _pattern(
    validator: Any, pattern: str, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not _search(pattern, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(
    validator: Any, patterns: Mapping[str, Any], instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            if _search(pattern, key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional_properties(
    validator: Any, additional: Any, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    known = schema.get("properties", {})
    patterns = list(schema.get("patternProperties", {}))
    extras = [k for k in instance if k not in known and not any(_search(p, k) for p in patterns)]
    if validator.is_type(additional, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], additional, path=extra)
    elif additional is False and extras:
        listed = ", ".join(repr(e) for e in sorted(extras))
        yield ValidationError(f"additional properties are not allowed ({listed} unexpected)")


# jsonschema's extend() carries no annotations; what it returns is a Draft202012Validator class.
_Validator: type[Draft202012Validator] = validators.extend(  # type: ignore[no-untyped-call]
    Draft202012Validator,
    validators={
        "pattern": _pattern,
        "patternProperties": _pattern_properties,
        "additionalProperties": _additional_properties,
    },
)
_NO_RETRIEVAL: Registry[Any] = Registry()


def _patterns(schema: Any) -> Iterator[str]:
    """Every regular expression a schema holds (``pattern`` values, ``patternProperties`` keys).
    A walk over the whole value: a ``pattern`` inside an ``enum`` is checked too, which can only
    refuse a pattern RE2 does not accept anyway."""
    stack = [schema]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if isinstance(item.get("pattern"), str):
                yield item["pattern"]
            if isinstance(item.get("patternProperties"), dict):
                yield from item["patternProperties"]
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _uses(schema: Any, keyword: str) -> bool:
    stack = [schema]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if keyword in item:
                return True
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


# Deeper schemas are refused before jsonschema walks them (it recurses, and ~150 levels of
# nested ``items`` overflowed Python's stack inside check_schema: a 500).
MAX_SCHEMA_DEPTH = 32


def _depth(value: Any) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def checker(schema: Any) -> Callable[[Any], None]:
    """Check ``schema`` and return a function that checks arguments against it (raising
    :class:`BadArgsError`). Raises :class:`BadSchemaError` for a schema that is not a valid draft
    2020-12 schema or that these rules cannot use."""
    if not isinstance(schema, dict | bool):
        raise BadSchemaError("must be a JSON Schema (an object)")
    if _depth(schema) > MAX_SCHEMA_DEPTH:
        raise BadSchemaError(f"is nested more than {MAX_SCHEMA_DEPTH} levels deep")
    try:
        _Validator.check_schema(schema)
    except RecursionError:
        raise BadSchemaError("is nested too deeply") from None
    except SchemaError as exc:
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in exc.path)
        raise BadSchemaError(
            f"is not a valid JSON Schema (draft 2020-12){f' at {where[1:]}' if where else ''}: {exc.message}"
        ) from None
    for pattern in _patterns(schema):
        if len(pattern) > MAX_PATTERN_CHARS:
            raise BadSchemaError(f"a pattern has at most {MAX_PATTERN_CHARS} characters")
        try:
            _compiled(pattern)
        except re2.error:
            raise BadSchemaError(f"the pattern {pattern!r} is not one RE2 accepts") from None
    if _uses(schema, "unevaluatedProperties") and _uses(schema, "patternProperties"):
        raise BadSchemaError("unevaluatedProperties cannot be combined with patternProperties")
    validator = _Validator(schema, registry=_NO_RETRIEVAL, format_checker=Draft202012Validator.FORMAT_CHECKER)

    def check(args: Any) -> None:
        try:
            error = best_match(validator.iter_errors(args))
        except Unresolvable as exc:
            raise BadSchemaError(
                f"has a $ref that cannot be resolved here ({exc}); only local ones work"
            ) from None
        except RecursionError:
            raise BadSchemaError("refers to itself without end") from None
        if error is not None:
            raise BadArgsError(_where(error), error.message)

    return check


def _where(error: ValidationError) -> Path:
    """The failing place, one step further than jsonschema says where that is clear: a missing
    required property, or the first one ``additionalProperties: false`` refused."""
    path: Path = tuple(error.absolute_path)
    instance = error.instance
    if (
        error.validator == "required"
        and isinstance(instance, dict)
        and isinstance(error.validator_value, list)
    ):
        missing = [k for k in error.validator_value if isinstance(k, str) and k not in instance]
        if missing:
            return (*path, missing[0])
    if error.validator == "additionalProperties" and isinstance(instance, dict):
        schema = error.schema if isinstance(error.schema, dict) else {}
        known = schema.get("properties", {})
        patterns = list(schema.get("patternProperties", {}))
        extras = sorted(k for k in instance if k not in known and not any(_search(p, k) for p in patterns))
        if extras:
            return (*path, extras[0])
    return path
