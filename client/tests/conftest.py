"""Client tests run from the project's pytest too: make the package importable uninstalled."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

CLIENT_DIR = Path(__file__).resolve().parent.parent
if str(CLIENT_DIR) not in sys.path:
    sys.path.insert(0, str(CLIENT_DIR))

from tests.fake_control_plane import FakeControlPlane  # noqa: E402


@pytest.fixture
def control_plane() -> Iterator[FakeControlPlane]:
    """A stand-in Signalbox on 127.0.0.1 (a free port) speaking the real API's shapes."""
    with FakeControlPlane() as plane:
        yield plane
