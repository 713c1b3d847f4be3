"""Settings of the browser tests' uvicorn: production's, plus the tests' fast password hasher.

Test fixtures create users with MD5 hashes (PBKDF2 costs ~0.5 s per user); the server must
accept them to log those users in. Nothing else differs from controlplane.settings.
"""

from __future__ import annotations

from controlplane.settings import *  # noqa: F403

PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.MD5PasswordHasher",
]
