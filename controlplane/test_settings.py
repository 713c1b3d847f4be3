"""Settings for the test suite: the normal settings with SIGNALBOX_ENV=test."""
from __future__ import annotations

import os

os.environ["SIGNALBOX_ENV"] = "test"

from controlplane.settings import *  # noqa: F403
