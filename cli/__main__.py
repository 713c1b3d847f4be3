"""`python -m cli rollout start ...`: the same as the installed `signalbox` command."""

from __future__ import annotations

import sys

from cli.signalbox_cli.main import main

sys.exit(main())
