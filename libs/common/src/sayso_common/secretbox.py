"""Authenticated encryption for secrets the services must read back (webhook signing secrets,
custom webhook headers and Basic-auth credentials, trigger secrets).

Keys come from ``SAYSO_SECRET_KEYS`` (newest first; falls back to ``SAYSO_SECRET_KEY``) and are
used through ``cryptography``'s MultiFernet: new secrets are sealed with the newest key, every
listed key still opens what it sealed, and ``sayso-api rotate-secrets`` re-seals everything under
the newest so an old key can then be dropped. Tokens sealed by the earlier AES-GCM box (version
byte 0x01) still open with any listed key and are re-sealed by the rotation.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sayso_common.legacy import KEY_LABEL

_LEGACY_VERSION = b"\x01"
_FERNET_PREFIX = "gAAAAA"  # base64 of Fernet's version byte 0x80 and the timestamp's top bytes


def _fernet(key: str) -> Fernet:
    """A key that already is a Fernet key (``Fernet.generate_key()``) is used as is; any other
    passphrase is stretched into one, so existing deployments need not change their setting."""
    try:
        return Fernet(key.encode())
    except ValueError:
        digest = hashlib.sha256(KEY_LABEL + b"-fernet:" + key.encode()).digest()
        return Fernet(base64.urlsafe_b64encode(digest))


def _legacy(key: str) -> AESGCM:
    return AESGCM(hashlib.sha256(KEY_LABEL + b"-secretbox:" + key.encode()).digest())


class SecretBox:
    def __init__(self, keys: str | Sequence[str]) -> None:
        listed = [keys] if isinstance(keys, str) else list(keys)
        if not listed:
            raise ValueError("at least one secret key is needed")
        for key in listed:
            if len(key) < 16:
                raise ValueError("every secret key must be at least 16 characters")
        self._multi = MultiFernet([_fernet(k) for k in listed])
        self._legacy = [_legacy(k) for k in listed]

    def seal(self, plaintext: str) -> str:
        return self._multi.encrypt(plaintext.encode()).decode()

    def open(self, token: str) -> str:
        if token.startswith(_FERNET_PREFIX):
            try:
                return self._multi.decrypt(token.encode()).decode()
            except InvalidToken:
                raise ValueError("no configured secret key opens this token") from None
        raw = base64.urlsafe_b64decode(token.encode())
        if raw[:1] != _LEGACY_VERSION:
            raise ValueError("unknown secretbox version")
        for aead in self._legacy:
            try:
                return aead.decrypt(raw[1:13], raw[13:], _LEGACY_VERSION).decode()
            except InvalidTag:
                continue
        raise ValueError("no configured secret key opens this token")

    def rotate(self, token: str) -> str:
        """The same secret sealed under the newest key."""
        if token.startswith(_FERNET_PREFIX):
            try:
                return self._multi.rotate(token.encode()).decode()
            except InvalidToken:
                raise ValueError("no configured secret key opens this token") from None
        return self.seal(self.open(token))
