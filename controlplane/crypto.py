"""Secrets at rest: a model field encrypted with SIGNALBOX_ENCRYPTION_KEY (Fernet), and masking."""
from __future__ import annotations

from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models


@lru_cache(maxsize=1)
def _fernet() -> Fernet:
    return Fernet(settings.SIGNALBOX_ENCRYPTION_KEY.encode())


def encrypt(plain: str) -> str:
    return _fernet().encrypt(plain.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise ImproperlyConfigured(
            "a stored secret cannot be decrypted: "
            "SIGNALBOX_ENCRYPTION_KEY changed since it was saved"
        ) from None


def mask(secret: str, visible: int = 4) -> str:
    """`••••••abcd`: enough to recognise a secret, never enough to use it."""
    if not secret:
        return ""
    if len(secret) <= visible * 2:
        return "•" * 8
    return "•" * 8 + secret[-visible:]


class EncryptedTextField(models.TextField[str, str]):
    """Stores Fernet ciphertext; Python code sees the plain text. Never render it back in full."""

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> str | None:
        # "" stays "": a blank secret read and saved again must not become NULL.
        return value if value is None or value == "" else decrypt(value)

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        return value if value is None or value == "" else encrypt(str(value))
