"""Sayso's Python SDK: ask a human, get the answer.

>>> import sayso
>>> with sayso.Client() as client:                      # SAYSO_URL, SAYSO_API_KEY
...     msg = client.request_review(channel, sayso.Approval(), "Deploy v2.1?")
...     answer = client.wait(msg.id, channel)             # raises sayso.Expired
...     answer.value.selected_option                      # "approve"
"""

from sayso.aio import AsyncClient
from sayso.approval import Denied, DigestMismatch, action_digest, require_approval
from sayso.client import Client
from sayso.errors import (
    ApiError,
    BadRequest,
    ConfigurationError,
    Conflict,
    Expired,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    SaysoError,
    Throttled,
    TransportError,
    Unauthorized,
    Unavailable,
    ValidationError,
    WaitTimeout,
    WebhookVerificationError,
)
from sayso.files import DownloadLink, FileInfo
from sayso.models import (
    Agent,
    Answer,
    Attachment,
    Event,
    IterationChain,
    Message,
    MessagePage,
    Remembered,
    Review,
    ScopedToken,
    StatusEvent,
    StreamTicket,
    WaitResult,
)
from sayso.retry import RetryPolicy
from sayso.reviews import (
    Approval,
    ApprovalAnswer,
    Choice,
    Dismissed,
    Edit,
    Form,
    FormAnswer,
    FormField,
    Freeform,
    FreeformAnswer,
    Item,
    Option,
    RawReview,
    ReviewRequest,
    Selection,
    SelectionAnswer,
    TextInput,
    TextInputAnswer,
)
from sayso.streaming import AsyncStream, Stream
from sayso.webhooks import verify_webhook

__version__ = "0.1.0"

__all__ = [
    "Agent",
    "Answer",
    "ApiError",
    "Approval",
    "ApprovalAnswer",
    "AsyncClient",
    "AsyncStream",
    "Attachment",
    "BadRequest",
    "Choice",
    "Client",
    "ConfigurationError",
    "Conflict",
    "Denied",
    "DigestMismatch",
    "Dismissed",
    "DownloadLink",
    "Edit",
    "Event",
    "Expired",
    "FileInfo",
    "Forbidden",
    "Form",
    "FormAnswer",
    "FormField",
    "Freeform",
    "FreeformAnswer",
    "Item",
    "IterationChain",
    "Message",
    "MessagePage",
    "NotFound",
    "Option",
    "PayloadTooLarge",
    "RawReview",
    "Remembered",
    "RetryPolicy",
    "Review",
    "ReviewRequest",
    "SaysoError",
    "ScopedToken",
    "Selection",
    "SelectionAnswer",
    "StatusEvent",
    "Stream",
    "StreamTicket",
    "TextInput",
    "TextInputAnswer",
    "Throttled",
    "TransportError",
    "Unauthorized",
    "Unavailable",
    "ValidationError",
    "WaitResult",
    "WaitTimeout",
    "WebhookVerificationError",
    "__version__",
    "action_digest",
    "require_approval",
    "verify_webhook",
]
