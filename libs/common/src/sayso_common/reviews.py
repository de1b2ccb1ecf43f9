"""The review types, each rule once: what a payload may hold, the answers one click can give
(an e-mail link, a Slack button), the response such a click records, what a human's response
must look like, and whether a review is still open.

A stored review reads as one of five typed models, a union told apart by ``type``
(:data:`Review`: :class:`Approval`, :class:`Selection`, :class:`Form`, :class:`TextInput`,
:class:`Freeform`), built by :func:`of` / :func:`kind`. The API validates new payloads with
:func:`normalise_payload` and responses with :func:`validate_response`; the notifier asks the same
models for its links and buttons. Everything here is a pure function over plain data: a bad
payload or response raises :class:`ReviewError` naming the field at fault (the API answers 422).

Selection payloads come in two stored shapes, Placet's ``{items, mode}`` and the older
``{options, multiple}``; both are kept as the agent sent them (an agent reads its payload back
unchanged, and a review's ``content_digest`` covers it), and :class:`Selection` is the one place
that reads either.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import TYPE_CHECKING, Any, Literal, NotRequired, TypedDict

from sayso_common.clock import as_utc
from sayso_common.documents import ReviewDoc
from sayso_common.quorum import option_approves
from sayso_common.views import ReviewType

if TYPE_CHECKING:
    # Loaded where a schema is checked, not with this module: it brings jsonschema and re2
    # (3-4 MB resident), and the services that only read reviews (the notifier) never check
    # one. The API loads it at start (sayso_api.__main__), so no request pays the import.
    from sayso_common import arg_schema

MAX_OPTIONS = 100
MAX_FIELDS = 100
MAX_LABEL = 200
MAX_ID = 100
MAX_COMMENT = 4000
MAX_TEXT = 20_000
# An editable action's arguments, as proposed (``review.payload.edit.args``) or as edited
# (``response.editedArgs``): compact JSON of at most this many bytes. The proposed ones also count
# towards the payload's own limit (SAYSO_MAX_PAYLOAD_BYTES).
MAX_EDIT_BYTES = 64 * 1024
EDIT_KEYS = frozenset({"args", "schema"})
REVIEW_TYPES: tuple[ReviewType, ...] = ("approval", "selection", "form", "text-input", "freeform")
OPTION_STYLES = ("primary", "secondary", "success", "danger", "warning", "default", "ghost")
FieldType = Literal[
    "text", "textarea", "number", "email", "url", "select", "checkbox", "date", "time", "datetime", "range",
    "password",
]  # fmt: skip
# Placet's twelve form field types.
FIELD_TYPES: tuple[FieldType, ...] = (
    "text", "textarea", "number", "email", "url", "select", "checkbox", "date", "time", "datetime", "range",
    "password",
)  # fmt: skip
SELECTION_MODES = ("single", "multi")
# Accepted as an answer to any review whose payload has a dismissLabel.
DISMISSED = {"_dismissed": True}


class OptionDoc(TypedDict):
    """An approval option, or a selection item (which has no style)."""

    id: str
    label: str
    style: NotRequired[str]
    description: NotRequired[str]


# As Placet's review card (``payload.options ?? [Approve, Reject]``).
DEFAULT_APPROVAL_OPTIONS: list[OptionDoc] = [
    {"id": "approve", "label": "Approve", "style": "primary"},
    {"id": "reject", "label": "Reject", "style": "danger"},
]


class SelectOptionDoc(TypedDict):
    """A form select field's option as stored; ``value`` is the answer."""

    value: str
    label: str


class FieldDoc(TypedDict, total=False):
    """A form field as stored: the known keys checked, any other key kept as sent."""

    name: str
    label: str
    type: FieldType
    required: bool
    options: list[SelectOptionDoc]
    min: float
    max: float
    step: float
    placeholder: str
    description: str
    unit: str


_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_URL = re.compile(r"^https?://[^\s/$.?#][^\s]*$", re.IGNORECASE)


class ReviewError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Choice:
    """One answer a link or button gives: an approval option, or one item of a single selection."""

    option: str
    label: str
    style: str | None = None


# ---------------------------------------------------------------------------------------------
# The five types. Each model is read from a stored payload (tolerantly: documents written by an
# older version read too) and answers the questions every service asks of a review.


@dataclass(frozen=True)
class _Kind:
    payload: Mapping[str, Any]

    @property
    def editable(self) -> bool:
        """The review offers its action's arguments for editing (only approvals do)."""
        return False

    def choices(self) -> list[Choice]:
        """The answers one click can give. Types that need the inbox (a form, text, JSON,
        several items) have none."""
        return []

    def label(self, option: str) -> str:
        """What ``option`` reads as to a person (the option itself when it is not one)."""
        return option

    def one_click(self, option: str) -> dict[str, Any]:
        """The response an answer link or a Slack button for ``option`` records, shaped as the
        inbox sends it (checked afterwards by :meth:`validate`, as any response is)."""
        raise ReviewError("response", "this review cannot be answered in one click")

    def validate(self, response: dict[str, Any]) -> Any:
        """Check a response (already known to be an object) and return what is stored."""
        raise NotImplementedError


def _labelled(options: Sequence[Mapping[str, Any]], option: str) -> str:
    found = [str(o["label"]) for o in options if o.get("id") == option and "label" in o]
    return found[0] if found else option


@dataclass(frozen=True)
class Approval(_Kind):
    type: Literal["approval"] = "approval"
    options: tuple[OptionDoc, ...] = ()

    @staticmethod
    def read(payload: Mapping[str, Any]) -> Approval:
        # As Placet's card: no options (a payload stored before they were filled in) means the
        # two defaults, as the inbox shows them.
        return Approval(payload, options=tuple(payload.get("options") or DEFAULT_APPROVAL_OPTIONS))

    @staticmethod
    def parse(payload: dict[str, Any], quorum: bool) -> dict[str, Any]:
        raw = payload.get("options")
        # As Placet's review card (``payload.options ?? [Approve, Reject]``): absent or null means
        # the two defaults. An empty list is refused like any other bad value, not replaced: in
        # Placet it shows no button at all, and a caller who sent [] did not ask for Approve.
        if raw is None:
            options = DEFAULT_APPROVAL_OPTIONS
        elif raw == []:
            raise ReviewError(
                "review.payload.options",
                "must list at least one option; leave options out (or null) for Approve and Reject",
            )
        else:
            options = _options(raw, "review.payload.options", styled=True)
        _bool(payload.get("allowComment"), "review.payload.allowComment")
        if payload.get("edit") is not None:
            if quorum:
                raise ReviewError(
                    "review.payload.edit",
                    "a quorum review cannot offer its action for editing: each reviewer would approve "
                    "different arguments",
                )
            _check_edit(payload["edit"])
        return {**payload, "options": options}

    @property
    def editable(self) -> bool:
        """The review offers its action's arguments for editing (``payload.edit``)."""
        edit = self.payload.get("edit")
        return isinstance(edit, dict) and isinstance(edit.get("args"), dict)

    def choices(self) -> list[Choice]:
        return [Choice(o["id"], o["label"], o.get("style")) for o in self.options]

    def label(self, option: str) -> str:
        return _labelled(self.options, option)

    def one_click(self, option: str) -> dict[str, Any]:
        return {"selectedOption": option}

    def validate(self, response: dict[str, Any]) -> Any:
        ids = [o["id"] for o in self.options]
        selected = response.get("selectedOption")
        if not isinstance(selected, str) or selected not in ids:
            raise ReviewError("response.selectedOption", f"must be one of {', '.join(ids)}")
        out: dict[str, Any] = {"selectedOption": selected}
        comment = _str(response.get("comment"), "response.comment", MAX_COMMENT, required=False)
        if comment is not None:
            out["comment"] = comment
        _no_extra(response, {"selectedOption", "comment", "editedArgs"})
        if "editedArgs" in response:
            out["editedArgs"] = self._edited_args(selected, response["editedArgs"])
        return out

    def _edited_args(self, selected: str, edited: Any) -> dict[str, Any]:
        """``response.editedArgs``: only on a review that offers its action for editing, only
        with an option that approves, and satisfying the review's schema (when it has one)."""
        field = "response.editedArgs"
        edit = self.payload.get("edit")
        if not isinstance(edit, dict):
            raise ReviewError(field, "this review does not offer its action for editing")
        option = next((o for o in self.options if o.get("id") == selected), {"id": selected})
        if not option_approves(option):
            raise ReviewError(
                field, f"only an approving answer carries edited arguments, and {selected!r} does not approve"
            )
        args = _args(edited, field)
        if edit.get("schema") is None:
            return args
        from sayso_common import arg_schema

        check = _schema_checker(edit["schema"], field)
        try:
            check(args)
        except arg_schema.BadSchemaError as exc:  # a path the proposed arguments never reached
            raise ReviewError(field, f"cannot be checked: the review's schema {exc.message}") from None
        except arg_schema.BadArgsError as exc:
            raise ReviewError(_path(field, exc.path), exc.message) from None
        return args


@dataclass(frozen=True)
class Selection(_Kind):
    type: Literal["selection"] = "selection"
    items: tuple[OptionDoc, ...] = ()
    multi: bool = False

    @staticmethod
    def read(payload: Mapping[str, Any]) -> Selection:
        """Either stored shape: Placet's (``items``, ``mode``) or the older alias (``options``,
        ``multiple``)."""
        if "items" in payload:
            return Selection(
                payload, items=tuple(payload["items"] or ()), multi=payload.get("mode") == "multi"
            )
        return Selection(
            payload, items=tuple(payload.get("options") or ()), multi=bool(payload.get("multiple"))
        )

    @staticmethod
    def parse(payload: dict[str, Any]) -> dict[str, Any]:
        if "items" in payload or "options" not in payload:
            # Placet's shape is stored as sent (agents read their own payload back unchanged).
            _options(payload.get("items"), "review.payload.items", styled=False)
            mode = payload.get("mode", "single")
            if mode not in SELECTION_MODES:
                raise ReviewError("review.payload.mode", "must be single or multi")
            return payload
        return {
            **payload,
            "options": _options(payload.get("options"), "review.payload.options", styled=False),
            "multiple": _bool(payload.get("multiple"), "review.payload.multiple"),
        }

    def choices(self) -> list[Choice]:
        if self.multi:
            return []
        return [Choice(i["id"], i["label"]) for i in self.items]

    def label(self, option: str) -> str:
        return _labelled(self.items, option)

    def one_click(self, option: str) -> dict[str, Any]:
        return {"selectedIds": [option]}

    def validate(self, response: dict[str, Any]) -> Any:
        known = {o["id"] for o in self.items}
        chosen = response.get("selectedIds")
        if not isinstance(chosen, list) or not chosen or not all(isinstance(c, str) for c in chosen):
            raise ReviewError("response.selectedIds", "must be a non-empty list of option ids")
        unknown = [c for c in chosen if c not in known]
        if unknown:
            raise ReviewError("response.selectedIds", f"unknown option id {unknown[0]!r}")
        if len(set(chosen)) != len(chosen):
            raise ReviewError("response.selectedIds", "ids must not repeat")
        if not self.multi and len(chosen) != 1:
            raise ReviewError("response.selectedIds", "exactly one option must be selected")
        _no_extra(response, {"selectedIds"})
        return {"selectedIds": chosen}


@dataclass(frozen=True)
class Form(_Kind):
    type: Literal["form"] = "form"
    fields: tuple[FieldDoc, ...] = ()

    @staticmethod
    def read(payload: Mapping[str, Any]) -> Form:
        return Form(payload, fields=tuple(payload.get("fields", [])))

    @staticmethod
    def parse(payload: dict[str, Any]) -> dict[str, Any]:
        return {**payload, "fields": _form_fields(payload.get("fields"))}

    def validate(self, response: dict[str, Any]) -> Any:
        _no_extra(response, {f["name"] for f in self.fields})
        out: dict[str, Any] = {}
        for spec in self.fields:
            name = spec["name"]
            value = response.get(name)
            if value is None or value == "":
                if spec.get("required"):
                    raise ReviewError(f"response.{name}", f"{spec.get('label', name)} is required")
                continue
            _check_field(spec, f"response.{name}", value)
            out[name] = value
        return out


def _check_field(spec: FieldDoc, where: str, value: Any) -> None:
    """One form field's value (present and not empty) against its kind."""
    ftype = spec["type"]
    if ftype in ("text", "textarea", "password"):
        if not isinstance(value, str):
            raise ReviewError(where, "must be a string")
        if len(value) > MAX_TEXT:
            raise ReviewError(where, f"must be at most {MAX_TEXT} characters")
    elif ftype in ("number", "range"):
        if not _is_number(value):
            raise ReviewError(where, "must be a number")
        if spec.get("min") is not None and value < spec["min"]:
            raise ReviewError(where, f"must be at least {spec['min']}")
        if spec.get("max") is not None and value > spec["max"]:
            raise ReviewError(where, f"must be at most {spec['max']}")
    elif ftype == "email":
        if not isinstance(value, str) or not _EMAIL.match(value):
            raise ReviewError(where, "must be an e-mail address")
    elif ftype == "url":
        if not isinstance(value, str) or not _URL.match(value):
            raise ReviewError(where, "must be an http(s) URL")
    elif ftype == "select":
        options: list[Mapping[str, Any]] = list(spec.get("options", []))
        ids = [o.get("value", o.get("id")) for o in options]
        if value not in ids:
            raise ReviewError(where, f"must be one of {', '.join(str(i) for i in ids)}")
    elif ftype == "checkbox":
        if not isinstance(value, bool):
            raise ReviewError(where, "must be true or false")
    elif ftype == "date":
        if not _parses(date.fromisoformat, value):
            raise ReviewError(where, "must be a date (YYYY-MM-DD)")
    elif ftype in ("time", "datetime"):
        parse, shape = (
            (time.fromisoformat, "HH:MM") if ftype == "time" else (datetime.fromisoformat, "YYYY-MM-DDTHH:MM")
        )
        if not _parses(parse, value):
            raise ReviewError(where, f"must be a {ftype} ({shape})")


@dataclass(frozen=True)
class TextInput(_Kind):
    type: Literal["text-input"] = "text-input"
    min_length: int = 0
    max_length: int = MAX_TEXT

    @staticmethod
    def read(payload: Mapping[str, Any]) -> TextInput:
        return TextInput(
            payload,
            min_length=payload.get("minLength") or 0,
            max_length=min(payload.get("maxLength") or MAX_TEXT, MAX_TEXT),
        )

    @staticmethod
    def parse(payload: dict[str, Any]) -> dict[str, Any]:
        out = dict(payload)
        _str(payload.get("placeholder"), "review.payload.placeholder", 1000, required=False)
        if payload.get("prefill") is not None and not isinstance(payload["prefill"], str):
            raise ReviewError("review.payload.prefill", "must be a string")
        _bool(payload.get("markdown"), "review.payload.markdown")
        out["multiline"] = _bool(payload.get("multiline"), "review.payload.multiline")
        for key in ("minLength", "maxLength"):
            if payload.get(key) is not None and (
                not isinstance(payload[key], int) or isinstance(payload[key], bool) or payload[key] < 0
            ):
                raise ReviewError(f"review.payload.{key}", "must be a non-negative integer")
        return out

    def validate(self, response: dict[str, Any]) -> Any:
        text = response.get("text")
        if not isinstance(text, str):
            raise ReviewError("response.text", "must be a string")
        shortest = max(self.min_length, 1)
        if len(text) < shortest:
            raise ReviewError("response.text", f"must be at least {shortest} characters")
        if len(text) > self.max_length:
            raise ReviewError("response.text", f"must be at most {self.max_length} characters")
        _no_extra(response, {"text"})
        return {"text": text}


@dataclass(frozen=True)
class Freeform(_Kind):
    type: Literal["freeform"] = "freeform"

    @staticmethod
    def read(payload: Mapping[str, Any]) -> Freeform:
        return Freeform(payload)

    def validate(self, response: dict[str, Any]) -> Any:
        return response


Review = Approval | Selection | Form | TextInput | Freeform


def kind(review_type: str, payload: Mapping[str, Any] | None) -> Review:
    """The typed model of a stored review's payload."""
    payload = payload or {}
    match review_type:
        case "approval":
            return Approval.read(payload)
        case "selection":
            return Selection.read(payload)
        case "form":
            return Form.read(payload)
        case "text-input":
            return TextInput.read(payload)
        case "freeform":
            return Freeform.read(payload)
    raise ReviewError("review.type", f"unknown review type {review_type!r}")


def of(review: ReviewDoc) -> Review:
    """The typed model of a stored review."""
    return kind(review["type"], review.get("payload"))


# ---------------------------------------------------------------------------------------------
# Open or closed.

Closure = Literal["answered", "expired"]


def closure(review: ReviewDoc, now: datetime) -> Closure | None:
    """Why a review takes no answer any more, or None while it is open. The deadline counts as
    well as the status: an overdue review the expirer has not reached yet is already closed (as
    the conditional update in ``review_state`` also requires)."""
    if review["status"] == "completed":
        return "answered"
    if review["status"] != "pending" or as_utc(review["expires_at"]) <= now:
        return "expired"
    return None


def is_open(review: ReviewDoc, now: datetime) -> bool:
    return closure(review, now) is None


def open_query(now: datetime) -> dict[str, Any]:
    """:func:`is_open` as a MongoDB condition on a message document: the guard of every
    conditional update that answers or votes on a review, so a review the expirer has not reached
    yet cannot be answered after its deadline."""
    return {"review.status": "pending", "review.expires_at": {"$gt": now}}


# ---------------------------------------------------------------------------------------------
# A new review's payload, and a human's response.


def normalise_payload(review_type: str, payload: Any, quorum: bool = False) -> dict[str, Any]:
    """Validate a review payload and return its stored form. ``quorum``: the review takes a
    quorum of votes (``review.quorum``), which an editable action cannot have."""
    if payload is None:
        payload = {}
    if not isinstance(payload, dict):
        raise ReviewError("review.payload", "must be an object")
    for key in ("submitLabel", "dismissLabel"):
        _str(payload.get(key), f"review.payload.{key}", MAX_LABEL, required=False)
    if payload.get("edit") is not None and review_type in ("selection", "form", "text-input"):
        # Freeform payloads are anything (Placet's contract), so an ``edit`` there stays data.
        raise ReviewError("review.payload.edit", "only approval reviews offer their action for editing")
    match review_type:
        case "approval":
            return Approval.parse(payload, quorum)
        case "selection":
            return Selection.parse(payload)
        case "form":
            return Form.parse(payload)
        case "text-input":
            return TextInput.parse(payload)
        case "freeform":
            return payload
    raise ReviewError("review.type", f"must be one of {', '.join(REVIEW_TYPES)}")


def validate_response(review_type: str, payload: Mapping[str, Any], response: Any) -> Any:
    """Check a human's response against its review; returns the response to store."""
    if response == DISMISSED and payload.get("dismissLabel"):
        return dict(DISMISSED)
    if not isinstance(response, dict):
        # Placet's contract: a response is always a JSON object, freeform included.
        raise ReviewError("response", "must be an object")
    return kind(review_type, payload).validate(response)


# ---------------------------------------------------------------------------------------------
# Checks shared by the types.


def _str(value: Any, field: str, max_len: int, required: bool = True) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ReviewError(field, "must be a non-empty string")
    if len(value) > max_len:
        raise ReviewError(field, f"must be at most {max_len} characters")
    return value


def _bool(value: Any, field: str, default: bool = False) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ReviewError(field, "must be true or false")
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _no_extra(response: Mapping[str, Any], allowed: set[str]) -> None:
    extra = sorted(set(response) - allowed)
    if extra:
        raise ReviewError(f"response.{extra[0]}", "is not a field of this review type")


def _parses(parse: Any, value: Any) -> bool:
    if not isinstance(value, str) or len(value) > 40:
        return False
    try:
        parse(value)
    except ValueError:
        return False
    return True


def _options(raw: Any, field: str, styled: bool) -> list[OptionDoc]:
    if not isinstance(raw, list) or not raw:
        raise ReviewError(field, "must be a non-empty list of options")
    if len(raw) > MAX_OPTIONS:
        raise ReviewError(field, f"at most {MAX_OPTIONS} options")
    seen: set[str] = set()
    out: list[OptionDoc] = []
    for i, opt in enumerate(raw):
        where = f"{field}[{i}]"
        if not isinstance(opt, dict):
            raise ReviewError(where, "must be an object with id and label")
        oid = _str(opt.get("id"), f"{where}.id", MAX_ID)
        assert oid is not None
        if oid in seen:
            raise ReviewError(f"{where}.id", f"duplicate option id {oid!r}")
        seen.add(oid)
        label = _str(opt.get("label"), f"{where}.label", MAX_LABEL)
        assert label is not None
        clean: OptionDoc = {"id": oid, "label": label}
        if styled and "style" in opt:
            # Absent stays absent (stored as sent, as Placet does); the inbox draws it plain.
            if opt["style"] not in OPTION_STYLES:
                raise ReviewError(f"{where}.style", f"must be one of {', '.join(OPTION_STYLES)}")
            clean["style"] = opt["style"]
        description = _str(opt.get("description"), f"{where}.description", 1000, required=False)
        if description:
            clean["description"] = description
        out.append(clean)
    return out


def _select_options(raw: Any, field: str) -> list[SelectOptionDoc]:
    """A select field's options as Placet writes them (plain strings or ``{value, label}``) or as
    ``{id, label}``; stored as ``{value, label}``, whose ``value`` is the answer."""
    if not isinstance(raw, list) or not raw:
        raise ReviewError(field, "must be a non-empty list of options")
    if len(raw) > MAX_OPTIONS:
        raise ReviewError(field, f"at most {MAX_OPTIONS} options")
    out: list[SelectOptionDoc] = []
    seen: set[str] = set()
    for i, opt in enumerate(raw):
        where = f"{field}[{i}]"
        if isinstance(opt, str):
            value = _str(opt, where, MAX_LABEL)
            label = value
        elif isinstance(opt, dict):
            key = "value" if "value" in opt else "id"
            value = _str(opt.get(key), f"{where}.{key}", MAX_LABEL)
            label = _str(opt.get("label", value), f"{where}.label", MAX_LABEL)
        else:
            raise ReviewError(where, "must be a string or an object with value and label")
        assert value is not None
        assert label is not None
        if value in seen:
            raise ReviewError(where, f"duplicate option {value!r}")
        seen.add(value)
        out.append({"value": value, "label": label})
    return out


def _number(spec: Mapping[str, Any], key: str, where: str) -> None:
    if spec.get(key) is not None and not _is_number(spec[key]):
        raise ReviewError(f"{where}.{key}", "must be a number")


def _form_fields(raw: Any) -> list[dict[str, Any]]:
    field = "review.payload.fields"
    if not isinstance(raw, list) or not raw:
        raise ReviewError(field, "must be a non-empty list of fields")
    if len(raw) > MAX_FIELDS:
        raise ReviewError(field, f"at most {MAX_FIELDS} fields")
    seen: set[str] = set()
    out = []
    for i, spec in enumerate(raw):
        where = f"{field}[{i}]"
        if not isinstance(spec, dict):
            raise ReviewError(where, "must be an object with name, label and type")
        name = _str(spec.get("name"), f"{where}.name", MAX_ID)
        assert name is not None
        if name in seen:
            raise ReviewError(f"{where}.name", f"duplicate field name {name!r}")
        seen.add(name)
        ftype = spec.get("type", "text")
        if ftype not in FIELD_TYPES:
            raise ReviewError(f"{where}.type", f"must be one of {', '.join(FIELD_TYPES)}")
        # Unknown keys (Placet's or a client's own) are kept as sent; the known ones are checked.
        clean: dict[str, Any] = {
            **spec,
            "name": name,
            "label": _str(spec.get("label", name), f"{where}.label", MAX_LABEL),
            "type": ftype,
            "required": _bool(spec.get("required"), f"{where}.required"),
        }
        for key in ("placeholder", "description", "unit"):
            _str(spec.get(key), f"{where}.{key}", 1000, required=False)
        if ftype == "select":
            clean["options"] = _select_options(spec.get("options"), f"{where}.options")
        for key in ("min", "max", "step"):
            _number(spec, key, where)
        if spec.get("step") is not None and spec["step"] <= 0:
            raise ReviewError(f"{where}.step", "must be greater than 0")
        if _is_number(spec.get("min")) and _is_number(spec.get("max")) and spec["min"] > spec["max"]:
            raise ReviewError(f"{where}.max", "must not be below min")
        out.append(clean)
    return out


def _json_bytes(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def _path(base: str, path: arg_schema.Path) -> str:
    return base + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)


def _args(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ReviewError(field, "must be an object")
    if _json_bytes(value) > MAX_EDIT_BYTES:
        raise ReviewError(field, f"must be at most {MAX_EDIT_BYTES} bytes of JSON")
    return value


def _check_edit(edit: Any) -> None:
    """``payload.edit = {args, schema?}``: the action's arguments as proposed, and the JSON Schema
    (draft 2020-12) any edited arguments must satisfy; the proposed ones must satisfy it too."""
    field = "review.payload.edit"
    if not isinstance(edit, dict):
        raise ReviewError(field, "must be an object with args (and optionally schema)")
    extra = sorted(set(edit) - EDIT_KEYS)
    if extra:
        raise ReviewError(f"{field}.{extra[0]}", "is not a field of edit (args, schema)")
    args = _args(edit.get("args"), f"{field}.args")
    if edit.get("schema") is None:
        return
    from sayso_common import arg_schema

    check = _schema_checker(edit["schema"], f"{field}.schema")
    try:
        check(args)
    except arg_schema.BadSchemaError as exc:
        raise ReviewError(f"{field}.schema", exc.message) from None
    except arg_schema.BadArgsError as exc:
        raise ReviewError(
            _path(f"{field}.args", exc.path), f"does not satisfy the schema: {exc.message}"
        ) from None


def _schema_checker(schema: Any, field: str) -> Any:
    from sayso_common import arg_schema

    try:
        return arg_schema.checker(schema)
    except arg_schema.BadSchemaError as exc:
        raise ReviewError(field, exc.message) from None
