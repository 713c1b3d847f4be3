"""Lets `python -m cli ...` run the `signalbox` command from a checkout of this repository."""
