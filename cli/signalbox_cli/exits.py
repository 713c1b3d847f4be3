"""Exit codes and the usage error, shared by every `signalbox` topic (docs/cli.md)."""

from __future__ import annotations

OK, ROLLED_BACK, USAGE, ABORTED, FAILED, TIMED_OUT, REFUSED, UNREACHABLE = 0, 1, 2, 3, 4, 5, 6, 7
# `catalog diff`: the files differ from the catalog (as `diff` and `kubectl diff` exit 1).
DIFFERENT = 1
INTERRUPTED = 130


class Usage(Exception):
    """A mistake in how the command was called; the message says how to fix it."""
