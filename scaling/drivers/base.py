"""The one small interface every instance driver speaks: launch, terminate, list, protect,
and the lifecycle calls a platform with hooks wants (AWS: heartbeat, complete)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from scaling.models import ScalingGroup


class ScalingDriverError(Exception):
    """The platform did not do what was asked; the message says what, for the operator."""


@dataclass(frozen=True)
class Running:
    """An instance the platform runs for the group: its id there, and where it listens."""

    ref: str
    host: str
    port: int
    version: str = ""
    zone: str = ""


class InstanceDriver(ABC):
    """Starts and stops a group's instances. Calls set absolute facts and are safe to repeat:
    a launch that already happened is found by `running()`, a terminate of a gone instance
    is a no-op."""

    def __init__(self, group: ScalingGroup) -> None:
        self.group = group

    @abstractmethod
    def launch(self, count: int) -> list[Running]:
        """Start `count` new instances; they are not given traffic here."""

    @abstractmethod
    def terminate(self, ref: str, grace_seconds: float) -> None:
        """Stop one: SIGTERM (or the platform's equivalent), SIGKILL after the grace."""

    @abstractmethod
    def running(self) -> list[Running]:
        """What the platform runs for the group now."""

    @abstractmethod
    def protect(self, ref: str, protected: bool) -> None:
        """Mirror an instance's scale-in protection on the platform (AWS: NewInstancesProtected
        / SetInstanceProtection), so the platform's own scale-in cannot pick it either."""

    @abstractmethod
    def lifecycle_heartbeat(self, ref: str) -> None:
        """The instance is still draining: keep the platform's termination waiting."""

    @abstractmethod
    def lifecycle_complete(self, ref: str) -> None:
        """The instance may go now: let the platform finish terminating it."""

    def notify_draining(self, ref: str, notice: dict[str, Any]) -> None:
        """Deliver the drain notice to the instance where the platform can (a webhook);
        instances also learn it by polling their lifecycle. Nothing by default."""
        return None

    # -- traffic the platform routes itself (an ASG's target group) --------------------------
    # Used when the service has no traffic route of its own in Signalbox: the driver's
    # platform puts instances into rotation, drains them and says when the drain is done.

    @property
    def routes_traffic(self) -> bool:
        """True when this driver's platform sends the instances their traffic."""
        return False

    def route_in(self, ref: str) -> None:
        """Give a healthy instance its traffic."""
        return None

    def route_out(self, ref: str) -> None:
        """Stop new requests to an instance that is leaving."""
        return None

    def routed_out(self, ref: str) -> bool:
        """Whether the platform no longer routes to the instance (its drain is over)."""
        return True

    # -- platforms that hold a terminating instance (AWS lifecycle hooks) --------------------

    @property
    def holds_termination(self) -> bool:
        """True when `terminate` only starts a wait the platform holds until
        `lifecycle_complete` (AWS Terminating:Wait): then the termination is started as soon
        as the drain is confirmed, and completed once the instance is ready."""
        return False
