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
