"""Topology's app config."""

from __future__ import annotations

from django.apps import AppConfig


class TopologyConfig(AppConfig):
    name = "topology"
