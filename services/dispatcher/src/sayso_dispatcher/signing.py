"""Standard Webhooks headers for one request. During a secret rotation the agent has two live
secrets and the request carries both signatures, so receivers can switch at their own pace."""

from __future__ import annotations

from collections.abc import Mapping

from sayso_common.webhook_signature import signature_header

# Never taken from user-supplied headers: they would break or forge the signature.
RESERVED = frozenset(
    {"webhook-id", "webhook-timestamp", "webhook-signature", "content-type", "content-length", "host"}
)


def signed_headers(
    msg_id: str, timestamp: int, body: bytes, secrets: list[str], extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    headers = {k: v for k, v in (extra or {}).items() if k.lower() not in RESERVED}
    headers.update(
        {
            "content-type": "application/json",
            "user-agent": "Sayso-Webhooks/0.1",
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
        }
    )
    if secrets:
        headers["webhook-signature"] = signature_header(secrets, msg_id, timestamp, body)
    return headers
