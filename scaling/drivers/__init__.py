"""Drivers that launch and terminate a scaling group's instances (`driver_of(group)`)."""

from __future__ import annotations

from scaling.choices import DriverKind
from scaling.drivers.aws_asg import AutoScalingGroupDriver
from scaling.drivers.base import InstanceDriver
from scaling.drivers.process import ProcessDriver
from scaling.models import ScalingGroup

DRIVERS: dict[str, type[InstanceDriver]] = {
    DriverKind.PROCESS: ProcessDriver,
    DriverKind.AWS_ASG: AutoScalingGroupDriver,
}


def driver_of(group: ScalingGroup) -> InstanceDriver:
    """The driver a group names; looked up at call time, so tests may register their own."""
    try:
        kind = DRIVERS[DriverKind(group.driver)]
    except (KeyError, ValueError):
        raise LookupError(f"no instance driver for {group.driver!r}") from None
    return kind(group)
