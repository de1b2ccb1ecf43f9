"""Authenticated encryption for secrets the services must read back (webhook signing secrets,
custom webhook headers). Keyed from the ``SIGNOFF_SECRET_KEY`` setting."""

from __future__ import annotations

import base64
import hashlib
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_VERSION = b"\x01"


class SecretBox:
    def __init__(self, secret_key: str) -> None:
        if len(secret_key) < 16:
            raise ValueError("SIGNOFF_SECRET_KEY must be at least 16 characters")
        key = hashlib.sha256(b"signoff-secretbox:" + secret_key.encode()).digest()
        self._aead = AESGCM(key)

    def seal(self, plaintext: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), _VERSION)
        return base64.urlsafe_b64encode(_VERSION + nonce + sealed).decode()

    def open(self, token: str) -> str:
        raw = base64.urlsafe_b64decode(token.encode())
        if raw[:1] != _VERSION:
            raise ValueError("unknown secretbox version")
        return self._aead.decrypt(raw[1:13], raw[13:], _VERSION).decode()
