"""Signoff's Python SDK: ask a human, get the answer.

>>> import signoff
>>> with signoff.Client() as client:                      # SIGNOFF_URL, SIGNOFF_API_KEY
...     msg = client.request_review(channel, signoff.Approval(), "Deploy v2.1?")
...     answer = client.wait(msg.id, channel)             # raises signoff.Expired
...     answer.value.selected_option                      # "approve"
"""

from signoff.aio import AsyncClient
from signoff.approval import Denied, require_approval
from signoff.client import Client
from signoff.errors import (
    ApiError,
    BadRequest,
    ConfigurationError,
    Conflict,
    Expired,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    SignoffError,
    Throttled,
    TransportError,
    Unauthorized,
    Unavailable,
    ValidationError,
    WaitTimeout,
    WebhookVerificationError,
)
from signoff.files import DownloadLink, FileInfo
from signoff.models import (
    Agent,
    Answer,
    Attachment,
    Event,
    IterationChain,
    Message,
    MessagePage,
    Review,
    StatusEvent,
    WaitResult,
)
from signoff.retry import RetryPolicy
from signoff.reviews import (
    Approval,
    ApprovalAnswer,
    Choice,
    Dismissed,
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
from signoff.streaming import AsyncStream, Stream
from signoff.webhooks import verify_webhook

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
    "Dismissed",
    "DownloadLink",
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
    "RetryPolicy",
    "Review",
    "ReviewRequest",
    "Selection",
    "SelectionAnswer",
    "SignoffError",
    "StatusEvent",
    "Stream",
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
    "require_approval",
    "verify_webhook",
]
