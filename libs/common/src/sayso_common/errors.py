"""Every error code an HTTP service answers with, and the domain errors that carry them.

Domain code raises a :class:`DomainError` (``NotFoundError("message")``,
``ConflictError(ErrorCode.REVIEW_CLOSED, …)``) and never speaks HTTP; one module, ``sayso_service.errors``, turns it into the one error shape
``{"error": {"code", "message", "field"?}}`` with the code's status. Callers that must tell one
refusal from another catch a class or compare :attr:`DomainError.code`, never a status.

The codes are a public contract (the SDK and the Placet-compatible clients branch on them):
``docs/reference/errors.md`` is generated from :class:`ErrorCode`, and ``tests/test_error_codes.py``
fails on a code that is not listed here."""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """A code with the HTTP status it is answered with and what it means to the caller."""

    status: int
    meaning: str

    def __new__(cls, code: str, status: int, meaning: str) -> ErrorCode:
        member = str.__new__(cls, code)
        member._value_ = code
        member.status = status
        member.meaning = meaning
        return member

    # 400
    BAD_REQUEST = "bad_request", 400, "The request could not be read (an HTTP-level refusal)."
    CLIENT_DISCONNECTED = "client_disconnected", 400, "The client went away during an upload."
    ITERATION_CHAIN = "iteration_chain", 400, "The message is part of an iteration chain with other messages."
    ITERATION_NOT_ALLOWED = (
        "iteration_not_allowed",
        400,
        "`iterationOf` names a message whose review is not over.",
    )
    # 401
    UNAUTHORIZED = "unauthorized", 401, "No credential, or one that is not (or no longer) valid."
    INVALID_CREDENTIALS = "invalid_credentials", 401, "Wrong e-mail or password."
    MISSING_HEADERS = "missing_headers", 401, "A signed request lacks its signature headers."
    INVALID_TIMESTAMP = "invalid_timestamp", 401, "A signed request's timestamp is not a Unix time."
    TIMESTAMP_OUT_OF_RANGE = (
        "timestamp_out_of_range",
        401,
        "A signed request's timestamp is too far from now.",
    )
    INVALID_SIGNATURE = "invalid_signature", 401, "A signed request's signature matches no current secret."
    # 403
    FORBIDDEN = "forbidden", 403, "Not allowed (an HTTP-level refusal)."
    ADDRESS_NOT_ALLOWED = (
        "address_not_allowed",
        403,
        "The caller's address is not on the trigger's allow-list.",
    )
    ADMIN_REQUIRED = "admin_required", 403, "Only an admin of the channel can do this."
    ANSWER_NOT_GRANTED = "answer_not_granted", 403, "The scoped token was not granted `answer: true`."
    INVALID_LINK = "invalid_link", 403, "An answer or file link is malformed or its signature does not match."
    LINK_EXPIRED = "link_expired", 403, "An answer or file link has expired."
    ORIGIN_NOT_ALLOWED = "origin_not_allowed", 403, "A CORS preflight from an origin that is not allowed."
    SCOPED_TOKEN_NOT_ALLOWED = (
        "scoped_token_not_allowed",
        403,
        "A scoped token may only read its channels' messages and reviews and open their streams.",
    )
    USER_REQUIRED = "user_required", 403, "Needs a user's session (JWT), not an API key."
    VOTE_NOT_ALLOWED = "vote_not_allowed", 403, "A quorum vote is a person's: an API key cannot vote."
    # 404
    NOT_FOUND = "not_found", 404, "Does not exist, or is not yours (other owners' ids are never confirmed)."
    # 405
    METHOD_NOT_ALLOWED = (
        "method_not_allowed",
        405,
        "The path does not take this method (a CORS preflight asking for one answers 403).",
    )
    # 409
    CONFLICT = "conflict", 409, "A concurrent change won; try again."
    ALREADY_MEMBER = "already_member", 409, "The user is already a member of the channel."
    ALREADY_RESPONDED = "already_responded", 409, "The review already has a response."
    ALREADY_UPLOADED = "already_uploaded", 409, "The file's bytes were already uploaded."
    ALREADY_VOTED = "already_voted", 409, "This person already voted on the quorum review."
    DELIVERIES_PENDING = "deliveries_pending", 409, "A webhook delivery of the message is still being sent."
    EMAIL_TAKEN = "email_taken", 409, "A user with this e-mail already exists."
    ENDPOINT_DISABLED = "endpoint_disabled", 409, "The endpoint is disabled."
    EVENTS_PENDING = "events_pending", 409, "The message's latest events are still being published."
    FILE_ATTACHED = "file_attached", 409, "The file is attached to a message."
    FILE_CHANGED = "file_changed", 409, "The file changed while it was being deleted."
    IDEMPOTENCY_CONFLICT = "idempotency_conflict", 409, "The idempotency key was used for another request."
    NO_DELIVERY = "no_delivery", 409, "The message has no webhook delivery to retry."
    NO_WEBHOOK_URL = "no_webhook_url", 409, "The agent has no default webhook URL."
    NOT_UPLOADED = "not_uploaded", 409, "The file's bytes have not been uploaded yet."
    REVIEW_CLOSED = "review_closed", 409, "The review is no longer pending."
    REVIEW_EXPIRED = "review_expired", 409, "The review expired before it was answered."
    REVIEW_PENDING = "review_pending", 409, "The message's review is still pending."
    REVIEW_TEXT_FIXED = "review_text_fixed", 409, "A message that asks for a review cannot change its text."
    STREAM_BUSY = "stream_busy", 409, "The stream changed concurrently; retry."
    STREAM_CLOSED = "stream_closed", 409, "The stream was already completed or aborted."
    STREAM_EXISTS = "stream_exists", 409, "The streamId is in use in another channel."
    STREAM_OPEN = "stream_open", 409, "The message is still streaming."
    TOO_MANY_ENDPOINTS = "too_many_endpoints", 409, "The owner has as many endpoints as allowed."
    TOO_MANY_MEMBERS = "too_many_members", 409, "The channel has as many members as allowed."
    UPLOAD_IN_PROGRESS = "upload_in_progress", 409, "An upload to this URL is in progress."
    VOTE_CONTENTION = "vote_contention", 409, "Too many votes landed at once; send it again."
    # 413
    PAYLOAD_TOO_LARGE = "payload_too_large", 413, "The body (or a file) is over its size limit."
    METADATA_TOO_LARGE = "metadata_too_large", 413, "`metadata` is over its size limit."
    STATUS_EVENTS_TOO_LARGE = (
        "status_events_too_large",
        413,
        "The message's status events are over their size limit.",
    )
    STORAGE_QUOTA_EXCEEDED = "storage_quota_exceeded", 413, "The owner's file storage quota is used up."
    TEXT_TOO_LARGE = "text_too_large", 413, "The text is over its size limit."
    EVENT_TOO_LARGE = "event_too_large", 413, "The change would make an event larger than the broker takes."
    TOO_MANY_STATUS_EVENTS = (
        "too_many_status_events",
        413,
        "The message has as many status events as allowed.",
    )
    # 415
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type", 415, "The body's content type is not accepted here."
    # 422
    VALIDATION_ERROR = "validation_error", 422, "A field has the wrong shape or value; `field` names it."
    INVALID_JSON = "invalid_json", 422, "The body is not valid (UTF-8) JSON."
    DESTINATION_REFUSED = (
        "destination_refused",
        422,
        "A Kafka destination's bootstrap servers are not on the allow-list.",
    )
    INVALID_ATTACHMENT = "invalid_attachment", 422, "An attachment id names no usable file."
    INVALID_CURSOR = "invalid_cursor", 422, "A paging cursor is malformed or from another listing."
    INVALID_FILTER = "invalid_filter", 422, "A filter is malformed."
    INVALID_ITERATION = "invalid_iteration", 422, "`iterationOf` names no message in this channel."
    INVALID_MAPPING = "invalid_mapping", 422, "A trigger's mapping yields no valid message."
    INVALID_PAYLOAD = "invalid_payload", 422, "A trigger's payload is not a JSON object."
    INVALID_POLICY = "invalid_policy", 422, "A policy names someone or something it cannot."
    INVALID_REMEMBER = "invalid_remember", 422, "This response cannot be remembered."
    INVALID_RESPONSE = "invalid_response", 422, "The response does not fit the review."
    INVALID_REVIEW = "invalid_review", 422, "The review is malformed."
    MISSING_KEYS = "missing_keys", 422, "Required keys are missing."
    URL_REFUSED = "url_refused", 422, "The URL is not allowed (a private or unsafe address)."
    # 429
    RATE_LIMITED = "rate_limited", 429, "Too many requests; see `Retry-After`."
    TOO_MANY_ATTEMPTS = "too_many_attempts", 429, "Too many failed logins; see `Retry-After`."
    TOO_MANY_CONNECTIONS = (
        "too_many_connections",
        429,
        "Too many open realtime connections; see `Retry-After`.",
    )
    TOO_MANY_UNATTACHED_FILES = (
        "too_many_unattached_files",
        429,
        "Too many files are not attached to a message.",
    )
    # 500, 503
    ERROR = "error", 500, "An HTTP-level error with no more specific code (answered with its own status)."
    UNAVAILABLE = "unavailable", 503, "A store the service needs is unavailable; see `Retry-After`."
    DISPATCHER_UNAVAILABLE = (
        "dispatcher_unavailable",
        503,
        "The webhook dispatcher cannot be reached; see `Retry-After`.",
    )


class DomainError(Exception):
    """A refusal the domain makes: a code, a message for people, the field it names if one does,
    and how long to wait before trying again if that helps."""

    def __init__(
        self, code: ErrorCode, message: str, field: str | None = None, *, retry_after: int | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        self.retry_after = retry_after


class NotFoundError(DomainError):
    """Does not exist or is not yours: the same answer for both."""

    def __init__(self, what: str, field: str | None = None, *, message: str | None = None) -> None:
        super().__init__(ErrorCode.NOT_FOUND, message or f"{what} not found", field)
        self.what = what


class UnauthorizedError(DomainError):
    """No valid credential. ``challenge``: the caller should present a bearer credential."""

    def __init__(
        self, message: str, code: ErrorCode = ErrorCode.UNAUTHORIZED, *, challenge: bool = False
    ) -> None:
        super().__init__(code, message)
        self.challenge = challenge


class ForbiddenError(DomainError):
    """A valid caller that may not do this."""


class ConflictError(DomainError):
    """The thing is not in a state that allows this (now)."""


class InvalidError(DomainError):
    """A request the domain refuses for what it says (the shape was fine)."""


class TooLargeError(DomainError):
    """Over a size or count limit."""


class RateLimitedError(DomainError):
    """Too many, too fast: try again after ``retry_after`` seconds."""


class UnavailableError(DomainError):
    """Something the domain needs is down: try again after ``retry_after`` seconds."""


class UnsupportedError(DomainError):
    """A request in a form this endpoint does not take."""


# Which codes each class may carry, by status: a test holds every raise to it.
STATUSES: dict[type[DomainError], frozenset[int]] = {
    NotFoundError: frozenset({404}),
    UnauthorizedError: frozenset({401}),
    ForbiddenError: frozenset({403}),
    ConflictError: frozenset({409}),
    InvalidError: frozenset({400, 422}),
    TooLargeError: frozenset({413}),
    RateLimitedError: frozenset({429}),
    UnavailableError: frozenset({503}),
    UnsupportedError: frozenset({405, 415}),
}
