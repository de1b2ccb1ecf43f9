"""The five review types: what an agent asks (payloads) and what a human answers (answers).

Payloads are Placet's: an agent written against Placet's docs sends the same JSON.

>>> Approval(allow_comment=True).body()["payload"]["allowComment"]
True
>>> parse_answer("approval", {"selectedOption": "approve", "comment": "ship it"}).comment
'ship it'
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

ButtonStyle = Literal["primary", "danger", "secondary", "ghost", "success", "warning", "default"]
FieldType = Literal[
    "text", "textarea", "number", "email", "url", "select", "checkbox", "date", "time", "datetime", "range",
    "password",
]  # fmt: skip


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True, extra="forbid")


class ReviewRequest(_Wire):
    """Base of the five payload models; ``body()`` is the ``review`` object of a message."""

    review_type: ClassVar[str]
    submit_label: str | None = None
    dismiss_label: str | None = Field(
        default=None, description="Shows a dismiss button; dismissing answers {'_dismissed': true}"
    )

    def payload(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    def body(self) -> dict[str, Any]:
        return {"type": self.review_type, "payload": self.payload()}


class Option(_Wire):
    id: str
    label: str
    style: ButtonStyle | None = None


def _approve_reject() -> list[Option]:
    return [
        Option(id="approve", label="Approve", style="primary"),
        Option(id="reject", label="Reject", style="danger"),
    ]


class Edit(_Wire):
    """An action offered for editing before approval: its ``args`` as proposed and, optionally,
    the JSON Schema (draft 2020-12) that edited arguments must satisfy (``schema`` on the wire).
    An approving answer may then carry :attr:`ApprovalAnswer.edited_args`."""

    args: dict[str, Any]
    json_schema: dict[str, Any] | None = Field(default=None, alias="schema")


class Approval(ReviewRequest):
    """Buttons; the answer is :class:`ApprovalAnswer` with the chosen option's id. With ``edit``
    the reviewer may change the action's arguments before approving (not with a quorum)."""

    review_type: ClassVar[str] = "approval"
    options: list[Option] = Field(default_factory=_approve_reject)
    allow_comment: bool = False
    edit: Edit | None = None


class Item(_Wire):
    id: str
    label: str
    description: str | None = None


class Selection(ReviewRequest):
    """Pick one (``mode="single"``) or several (``"multi"``); answer :class:`SelectionAnswer`."""

    review_type: ClassVar[str] = "selection"
    items: list[Item]
    mode: Literal["single", "multi"] = "single"


class Choice(_Wire):
    value: str
    label: str


class FormField(_Wire):
    name: str
    label: str
    type: FieldType = "text"
    required: bool = False
    placeholder: str | None = None
    options: list[Choice | str] | None = None
    default_value: Any = None
    min: float | None = None
    max: float | None = None
    step: float | None = None
    unit: str | None = None
    description: str | None = None


class Form(ReviewRequest):
    """Fields keyed by ``name``; the answer is :class:`FormAnswer`."""

    review_type: ClassVar[str] = "form"
    fields: list[FormField]


class TextInput(ReviewRequest):
    """Free text; the answer is :class:`TextInputAnswer`."""

    review_type: ClassVar[str] = "text-input"
    placeholder: str | None = None
    prefill: str | None = None
    markdown: bool | None = None
    min_length: int | None = None
    max_length: int | None = None


class Freeform(ReviewRequest):
    """Anything a plugin renders (``plugin`` names it); the answer is any JSON object."""

    model_config = ConfigDict(extra="allow")

    review_type: ClassVar[str] = "freeform"
    plugin: str | None = None


class RawReview(ReviewRequest):
    """A review given as Placet's ``type`` and ``payload`` (the MCP tools' arguments)."""

    review_type: ClassVar[str] = ""
    type: str
    data: dict[str, Any] = Field(default_factory=dict)

    def payload(self) -> dict[str, Any]:
        return dict(self.data)

    def body(self) -> dict[str, Any]:
        return {"type": self.type, "payload": self.payload()}


# ── answers ──────────────────────────────────────────────────────────────────────────────────


class _Answer(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True, extra="allow")


class ApprovalAnswer(_Answer):
    """``edited_args``: the arguments the reviewer approved instead of the proposed ones (only on
    a review with ``edit``, only with an approving option); None when approved as proposed."""

    selected_option: str
    comment: str | None = None
    edited_args: dict[str, Any] | None = None


class SelectionAnswer(_Answer):
    selected_ids: list[str]


class FormAnswer(_Answer):
    """The form's values keyed by field name (``answer["env"]`` or ``answer.values``)."""

    values: dict[str, Any]

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self.values.get(name, default)


class TextInputAnswer(_Answer):
    text: str


class FreeformAnswer(_Answer):
    data: dict[str, Any]


class Dismissed(_Answer):
    """The reviewer pressed the review's dismiss button (``{"_dismissed": true}``)."""


AnswerValue = ApprovalAnswer | SelectionAnswer | FormAnswer | TextInputAnswer | FreeformAnswer | Dismissed


def parse_answer(review_type: str, response: dict[str, Any]) -> AnswerValue:
    """The typed answer for a review's raw ``response``."""
    if response.get("_dismissed") is True:
        return Dismissed()
    if review_type == "approval":
        return ApprovalAnswer.model_validate(response)
    if review_type == "selection":
        return SelectionAnswer.model_validate(response)
    if review_type == "form":
        return FormAnswer(values=dict(response))
    if review_type == "text-input":
        return TextInputAnswer.model_validate(response)
    return FreeformAnswer(data=dict(response))
