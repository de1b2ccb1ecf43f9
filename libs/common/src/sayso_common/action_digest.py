"""``actionDigest``: what an approval is bound to, in a form an agent can compute itself.

SHA-256 (64 lowercase hex digits) of the UTF-8 bytes of the canonical JSON of::

    {"args": metadata.args or null, "payload": review.payload, "tool": metadata.tool or null}

``payload`` is the review payload exactly as the agent sent it (``{}`` when it sent none), not
the server's normalised form, so a client needs nothing but what it posted. Canonical JSON is
``json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``: keys sorted at
every level, no whitespace, non-ASCII characters as themselves. A missing ``metadata.tool`` or
``metadata.args`` (or no metadata) is ``null``; any other value is taken as it is.

Unlike ``contentDigest`` (everything the reviewer is shown: text, metadata, attachments …),
this binds only the action. An agent may supply its own ``review.actionDigest`` instead; it is
then stored as given. The SDK carries a twin of :func:`action_digest` (``sayso.approval``);
tests/clients/test_action_digest.py checks that the two agree.

:func:`args_digest` is the same canonical JSON over ``metadata.args`` alone: what a remembered
approval (sayso_api.remembered) is bound to besides the channel and ``metadata.tool``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

PATTERN = r"^[0-9a-f]{64}$"


def canonical_json(value: Any) -> str:
    """Keys sorted at every level, no whitespace, non-ASCII characters as themselves."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _sha256(value: Any) -> str:
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()


def action_digest(payload: Mapping[str, Any] | None, metadata: Mapping[str, Any] | None) -> str:
    """The digest of a review's ``payload`` and ``metadata.tool``/``metadata.args``."""
    meta = metadata or {}
    return _sha256({"payload": dict(payload or {}), "tool": meta.get("tool"), "args": meta.get("args")})


def args_digest(metadata: Mapping[str, Any] | None) -> str:
    """The digest of ``metadata.args`` (``null`` when absent): sha256 of its canonical JSON."""
    return _sha256((metadata or {}).get("args"))
