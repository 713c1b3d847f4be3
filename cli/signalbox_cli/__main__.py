"""`python -m signalbox_cli` runs the `signalbox` command."""

from __future__ import annotations

import sys

from .main import main

sys.exit(main())
