"""The `signalbox` command line: rollouts for CI and people, over the HTTP API only."""

__version__ = "0.1.0"
