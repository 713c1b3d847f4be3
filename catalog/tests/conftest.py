"""Fixtures for the catalog's tests that seed the demo."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from alerts.tests.conftest import smtp  # noqa: F401 (the real SMTP receiver, for invitations)


@pytest.fixture
def demo_settings(settings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private VAR_DIR (returned), a fast hasher (PBKDF2 is slow by design), no password."""
    settings.VAR_DIR = tmp_path
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    monkeypatch.delenv("SIGNALBOX_DEMO_PASSWORD", raising=False)
    monkeypatch.delenv("SIGNALBOX_DEMO_PASSWORD_FILE", raising=False)
    return tmp_path
