"""Health models: check specs and states, history, heartbeats, maintenance windows, and
external dependencies' vendor statuses."""

from __future__ import annotations

from health.models.checks import CheckSpec, InstanceCheck, ServiceHealth
from health.models.heartbeats import Heartbeat, HeartbeatPing
from health.models.history import HourRollup, MinuteRollup, RollupWatermark, Transition
from health.models.maintenance import MaintenanceWindow
from health.models.vendors import VendorStatus

__all__ = [
    "CheckSpec",
    "Heartbeat",
    "HeartbeatPing",
    "HourRollup",
    "InstanceCheck",
    "MaintenanceWindow",
    "MinuteRollup",
    "RollupWatermark",
    "ServiceHealth",
    "Transition",
    "VendorStatus",
]
