"""``@require_approval``: a function that runs only after a human approved that very call.

>>> @sayso.require_approval(channel="agt_…")
... def deploy(version: str, env: str = "production") -> None: ...
>>> deploy("2.1")          # posts "deploy(version='2.1', env='production')" for approval,
...                        # waits, runs it if approved, raises Denied (with the comment) if not

Works on ``async def`` functions too (then with :class:`sayso.AsyncClient`). An expired
review is a denial unless ``on_expire="allow"``.

Each call is bound to its approval: the review carries ``metadata.tool`` (the function) and
``metadata.args`` (its arguments) and the ``actionDigest`` of them and the review payload; an
answer whose review carries another digest raises :class:`DigestMismatch` and the function
does not run.

With ``editable=True`` the reviewer may change the arguments before approving:

>>> @sayso.require_approval(channel="agt_…", editable=True)
... def transfer(to: str, amount: float) -> None: ...
>>> transfer("alice", 120)  # the reviewer approves amount=90: transfer("alice", 90) runs

The review's ``payload.edit`` holds the call's arguments as JSON (so they must be JSON values)
and a JSON Schema for them: ``schema=`` if given, else one drawn from the function's signature
(each ``str``/``int``/``float``/``bool`` parameter typed, those without a default required, no
unknown ones unless the function takes ``**kwargs``). The digest still binds the call as
proposed and is checked first; then the function runs with the reviewer's ``editedArgs`` in
place of its arguments (an answer without them runs it as called).
"""

# The exception names are the SDK's public vocabulary (NotFound, Conflict, Expired, Denied …),
# as the HTTP statuses and review outcomes are called, not FooError.
# ruff: noqa: N818

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import logging
import typing
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any, Literal, ParamSpec, TypeVar, cast

from sayso import config
from sayso.aio import AsyncClient
from sayso.client import Client, Timeout
from sayso.errors import ConfigurationError, Expired, SaysoError
from sayso.models import Answer
from sayso.reviews import Approval, ApprovalAnswer, Edit, Option

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")
OnExpire = Literal["deny", "allow"]

# Each rendered argument is cut to this many characters (the message text has a size limit).
MAX_ARG_CHARS = 2000


class Denied(SaysoError):
    """The call was not approved. ``comment`` is the reviewer's comment (if any), ``answer`` the
    whole answer (None when the review expired), ``expired`` whether nobody answered in time,
    ``decided_by`` the policy rule that rejected it (None when a person did)."""

    def __init__(
        self,
        function: str,
        message_id: str,
        *,
        answer: Answer | None = None,
        comment: str | None = None,
        expired: bool = False,
    ) -> None:
        self.decided_by = answer.decided_by if answer is not None else None
        by = self.decided_by
        rule = f" by policy {by.policy} rule {by.rule} (version {by.version})" if by else ""
        why = "the review expired" if expired else f"rejected{rule}" + (f": {comment}" if comment else "")
        super().__init__(f"{function} was not approved ({why})")
        self.function = function
        self.message_id = message_id
        self.answer = answer
        self.comment = comment
        self.expired = expired


class DigestMismatch(SaysoError):
    """The answered review is not bound to the call that asked: its ``actionDigest``
    (``answered``, None when the server sent none) differs from the one computed for the call
    (``expected``). The function was not run."""

    def __init__(self, function: str, message_id: str, expected: str, answered: str | None) -> None:
        super().__init__(
            f"{function} was not run: review {message_id} was answered with actionDigest "
            f"{answered or '(none)'}, but this call's is {expected}"
        )
        self.function = function
        self.message_id = message_id
        self.expected = expected
        self.answered = answered


def action_digest(payload: Mapping[str, Any] | None, metadata: Mapping[str, Any] | None) -> str:
    """sha256 (hex) of the canonical JSON of ``{"payload", "tool", "args"}``: the review payload
    as sent and ``metadata.tool``/``metadata.args`` (null when missing); keys sorted, no
    whitespace, UTF-8 with ``ensure_ascii=False``. The server's twin is
    ``sayso_common.action_digest``; the two must agree."""
    meta = metadata or {}
    action = {"payload": dict(payload or {}), "tool": meta.get("tool"), "args": meta.get("args")}
    canonical = json.dumps(action, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= MAX_ARG_CHARS else text[: MAX_ARG_CHARS - 1] + "…"


def display_name(fn: Callable[..., Any]) -> str:
    """``Class.method`` or ``function``, without the ``<locals>`` of nested definitions."""
    return fn.__qualname__.rsplit("<locals>.", 1)[-1]


def describe_call(
    fn: Callable[..., Any], args: Sequence[Any], kwargs: dict[str, Any]
) -> tuple[str, dict[str, str]]:
    """``name(arg=value, …)`` as Python would write it, and the arguments by name."""
    bound = inspect.signature(fn).bind(*args, **kwargs)
    bound.apply_defaults()
    parts: list[str] = []
    named: dict[str, str] = {}
    for name, value in bound.arguments.items():
        kind = bound.signature.parameters[name].kind
        if kind is inspect.Parameter.VAR_POSITIONAL:
            parts.extend(_short(v) for v in value)
            named[f"*{name}"] = _short(value)
        elif kind is inspect.Parameter.VAR_KEYWORD:
            parts.extend(f"{k}={_short(v)}" for k, v in value.items())
            named.update({k: _short(v) for k, v in value.items()})
        elif kind is inspect.Parameter.POSITIONAL_ONLY:
            parts.append(_short(value))
            named[name] = _short(value)
        else:
            parts.append(f"{name}={_short(value)}")
            named[name] = _short(value)
    return f"{display_name(fn)}({', '.join(parts)})", named


class _Gate:
    def __init__(
        self,
        fn: Callable[..., Any],
        channel: str | None,
        text: str | None,
        options: Sequence[Option] | None,
        approve: Collection[str],
        allow_comment: bool,
        expires_in: Timeout,
        on_expire: OnExpire,
        editable: bool = False,
        schema: Mapping[str, Any] | None = None,
        on_answer: Callable[[Answer], None] | None = None,
    ) -> None:
        if on_expire not in ("deny", "allow"):
            raise ValueError('on_expire must be "deny" or "allow"')
        if schema is not None and not editable:
            raise ValueError("schema= describes editable arguments: pass editable=True too")
        if editable and any(
            p.kind is inspect.Parameter.VAR_POSITIONAL for p in inspect.signature(fn).parameters.values()
        ):
            raise TypeError(f"{fn.__qualname__} takes *args, which a reviewer cannot edit by name")
        self.editable = editable
        self.schema = dict(schema) if schema is not None else (signature_schema(fn) if editable else None)
        self.fn = fn
        self.channel = channel
        self.text = text
        self.review = Approval(
            options=list(options) if options else Approval().options, allow_comment=allow_comment
        )
        self.approve = set(approve)
        self.expires_in = expires_in
        self.on_expire = on_expire
        self.on_answer = on_answer

    def target(self) -> str:
        channel = self.channel or config.env("SAYSO_DEFAULT_CHANNEL")
        if not channel:
            raise ConfigurationError("require_approval needs channel=... (or SAYSO_DEFAULT_CHANNEL)")
        return channel

    def request(self, args: Sequence[Any], kwargs: dict[str, Any]) -> tuple[dict[str, Any], str]:
        """The review request for this call, and the actionDigest it is bound to."""
        call, named = describe_call(self.fn, args, kwargs)
        heading = self.text or f"Approve this call of `{display_name(self.fn)}`?"
        function = f"{self.fn.__module__}.{self.fn.__qualname__}"
        metadata = {"function": function, "arguments": named, "tool": function, "args": named}
        review = self.review.body()
        if self.editable:
            edit = Edit(args=call_arguments(self.fn, args, kwargs), json_schema=self.schema)
            review = self.review.model_copy(update={"edit": edit}).body()
        digest = action_digest(review.get("payload"), metadata)
        request = {
            "review": {**review, "actionDigest": digest},
            "text": f"{heading}\n\n```python\n{call}\n```",
            "expires_in": self.expires_in,
            "metadata": metadata,
        }
        return request, digest

    def decide(self, answer: Answer, digest: str) -> dict[str, Any] | None:
        """Raise unless ``answer`` approves this very call; the reviewer's edited arguments, if
        any (only an editable gate uses them)."""
        if answer.review.action_digest != digest:
            raise DigestMismatch(
                display_name(self.fn), answer.message_id, digest, answer.review.action_digest
            )
        if self.on_answer is not None:
            self.on_answer(answer)
        value = answer.value
        if isinstance(value, ApprovalAnswer) and value.selected_option in self.approve:
            by = answer.decided_by
            log.info(
                "%s approved %s",
                display_name(self.fn),
                f"by policy {by.policy} rule {by.rule} (version {by.version})" if by else "by a person",
                extra={"message_id": answer.message_id, "decided_by": by.model_dump() if by else None},
            )
            return value.edited_args if self.editable else None
        comment = value.comment if isinstance(value, ApprovalAnswer) else None
        raise Denied(
            display_name(self.fn), answer.message_id, answer=answer, comment=comment or answer.feedback
        )

    def expired(self, exc: Expired, digest: str) -> None:
        if self.on_expire == "deny":
            raise Denied(display_name(self.fn), exc.message.id, expired=True) from exc
        answered = exc.message.review.action_digest if exc.message.review else None
        if answered != digest:  # on_expire="allow" runs it: only for the call that asked
            raise DigestMismatch(display_name(self.fn), exc.message.id, digest, answered) from exc


def call_arguments(fn: Callable[..., Any], args: Sequence[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The call's arguments by name as JSON values (``**kwargs`` spread out): what the reviewer
    may edit. Refuses arguments JSON cannot carry."""
    bound = inspect.signature(fn).bind(*args, **kwargs)
    bound.apply_defaults()
    out: dict[str, Any] = {}
    for name, value in bound.arguments.items():
        if bound.signature.parameters[name].kind is inspect.Parameter.VAR_KEYWORD:
            out.update(value)
        else:
            out[name] = value
    for name, value in out.items():
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            raise TypeError(
                f"{display_name(fn)}: argument {name!r} ({type(value).__name__}) is not a JSON value, "
                "so it cannot be offered for editing"
            ) from None
    return out


_JSON_TYPES: dict[Any, str] = {str: "string", bool: "boolean", int: "integer", float: "number"}


def signature_schema(fn: Callable[..., Any]) -> dict[str, Any]:
    """A JSON Schema for ``fn``'s arguments drawn from its signature: ``str``, ``int``, ``float``
    and ``bool`` annotations become types (any other parameter may hold any JSON value), those
    without a default are required, and no other names are allowed unless it takes ``**kwargs``."""
    try:
        hints = typing.get_type_hints(fn)
    except Exception:
        hints = {}
    properties: dict[str, Any] = {}
    required: list[str] = []
    open_ended = False
    for name, param in inspect.signature(fn).parameters.items():
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            open_ended = True
            continue
        hint = hints.get(name)
        kind = _JSON_TYPES.get(hint) if isinstance(hint, type) else None
        properties[name] = {"type": kind} if kind else {}
        if param.default is inspect.Parameter.empty:
            required.append(name)
        elif kind and not _fits(param.default, kind):
            properties[name] = {}  # a default of another type (None for "not given") stays allowed
    schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": open_ended}
    if required:
        schema["required"] = required
    return schema


def _fits(value: Any, kind: str) -> bool:
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "string":
        return isinstance(value, str)
    number = isinstance(value, int | float) and not isinstance(value, bool)
    return number and (kind == "number" or isinstance(value, int))


def rebind(fn: Callable[..., Any], edited: Mapping[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    """Positional and keyword arguments that call ``fn`` with ``edited`` (arguments by name, as
    :func:`call_arguments` gives them). A name ``fn`` has no parameter for goes to its
    ``**kwargs``; without one, :class:`TypeError`."""
    rest = dict(edited)
    positional: list[Any] = []
    keywords: dict[str, Any] = {}
    spread = False
    for name, param in inspect.signature(fn).parameters.items():
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            spread = True
        elif name in rest and param.kind is inspect.Parameter.POSITIONAL_ONLY:
            positional.append(rest.pop(name))
        elif name in rest:
            keywords[name] = rest.pop(name)
    if rest and not spread:
        raise TypeError(
            f"{display_name(fn)} has no parameter {sorted(rest)[0]!r} (from the edited arguments)"
        )
    keywords.update(rest)
    inspect.signature(fn).bind(*positional, **keywords)  # missing required ones: TypeError here
    return positional, keywords


def require_approval(
    channel: str | None = None,
    *,
    client: Client | AsyncClient | None = None,
    text: str | None = None,
    options: Sequence[Option] | None = None,
    approve: Collection[str] = ("approve",),
    allow_comment: bool = True,
    expires_in: Timeout = None,
    on_expire: OnExpire = "deny",
    editable: bool = False,
    schema: Mapping[str, Any] | None = None,
    on_answer: Callable[[Answer], None] | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Gate a function (sync or async) behind a human's approval of each call.

    Every call posts an approval review into ``channel`` (default ``SAYSO_DEFAULT_CHANNEL``)
    showing the function's name and arguments, then waits. An option in ``approve`` runs the
    function and returns its result; any other answer raises :class:`Denied` carrying the
    reviewer's comment. An expired review (``expires_in``, default the server's 24 h) raises
    :class:`Denied` with ``expired=True``, or runs the function with ``on_expire="allow"``.
    ``client`` defaults to one built from ``SAYSO_URL``/``SAYSO_API_KEY`` for each call;
    pass a :class:`Client` for sync functions and an :class:`AsyncClient` for async ones.

    ``editable=True`` offers the call's arguments for editing (``review.payload.edit``), checked
    against ``schema`` (a JSON Schema; default: drawn from the signature, see
    :func:`signature_schema`); an approval with edited arguments runs the function with them,
    after the digest of the call as proposed was checked.

    Who decided is reported: ``on_answer`` is called with each answer before the function runs
    or :class:`Denied` is raised (``answer.decided_by`` is the policy rule that answered, None
    for a person), :class:`Denied` carries ``decided_by`` too, and each approval is logged on
    the ``sayso.approval`` logger with ``decided_by``.
    """

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        gate = _Gate(
            fn,
            channel,
            text,
            options,
            approve,
            allow_comment,
            expires_in,
            on_expire,
            editable,
            schema,
            on_answer,
        )
        if inspect.iscoroutinefunction(fn):
            if client is not None and not isinstance(client, AsyncClient):
                raise TypeError(f"{fn.__qualname__} is async: pass an AsyncClient")
            return cast(Callable[P, R], _async_gate(gate, cast(Callable[..., Awaitable[Any]], fn), client))
        if client is not None and not isinstance(client, Client):
            raise TypeError(f"{fn.__qualname__} is not async: pass a Client")
        return _sync_gate(gate, fn, client)

    return decorate


def _sync_gate(gate: _Gate, fn: Callable[P, R], client: Client | None) -> Callable[P, R]:
    @functools.wraps(fn)
    def gated(*args: P.args, **kwargs: P.kwargs) -> R:
        own = client or Client()
        try:
            channel = gate.target()
            request, digest = gate.request(args, kwargs)
            message = own.request_review(channel, **request)
            edited = None
            try:
                edited = gate.decide(own.wait(message.id, channel), digest)
            except Expired as exc:
                gate.expired(exc, digest)
        finally:
            if client is None:
                own.close()
        if edited is not None:
            positional, keywords = rebind(fn, edited)
            return fn(*positional, **keywords)
        return fn(*args, **kwargs)

    return gated


def _async_gate(
    gate: _Gate, fn: Callable[..., Awaitable[Any]], client: AsyncClient | None
) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(fn)
    async def gated(*args: Any, **kwargs: Any) -> Any:
        own = client or AsyncClient()
        try:
            channel = gate.target()
            request, digest = gate.request(args, kwargs)
            message = await own.request_review(channel, **request)
            edited = None
            try:
                edited = gate.decide(await own.wait(message.id, channel), digest)
            except Expired as exc:
                gate.expired(exc, digest)
        finally:
            if client is None:
                await own.aclose()
        if edited is not None:
            positional, keywords = rebind(fn, edited)
            return await fn(*positional, **keywords)
        return await fn(*args, **kwargs)

    return gated
