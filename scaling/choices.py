"""Named states, kinds and events of scaling; call sites never use the bare strings."""

from __future__ import annotations

from django.db import models

from controlplane.events import EventNames, ResourceEvents


class DriverKind(models.TextChoices):
    """What launches and terminates a group's instances."""

    PROCESS = "process", "Demo fleet processes (fleet control API)"
    AWS_ASG = "aws_asg", "AWS Auto Scaling group"


class Source(models.TextChoices):
    """Where a scaling metric comes from, and whether it is per instance or for the group."""

    CPU = "cpu", "CPU % per instance (reported)"
    MEMORY = "memory", "Memory MB per instance (reported)"
    LATENCY = "latency", "Latency ms per instance (probes)"
    REQUEST_RATE = "request_rate", "Requests/s for the group (router)"
    CUSTOM = "custom", "A custom per-instance metric (reported)"
    CUSTOM_TOTAL = "custom_total", "A custom group total (reported, summed)"
    CELERY_BACKLOG = "celery_backlog", "Queued + active Celery tasks (reported)"


# Sources whose target is what one instance should carry of a group-wide total.
TOTAL_SOURCES = frozenset({Source.REQUEST_RATE, Source.CUSTOM_TOTAL, Source.CELERY_BACKLOG})
# The reported metric each built-in source reads (custom ones name their own).
REPORTED_NAMES = {
    Source.CPU: "cpu_percent",
    Source.MEMORY: "memory_mb",
}


# What an instance reports about itself for scale-in (through POST /api/v1/metrics): work in
# flight (an instance reporting any is never chosen) and its cost of deletion (lowest first,
# like Kubernetes' pod-deletion-cost).
IN_FLIGHT = "in_flight"
DELETION_COST = "deletion_cost"
CELERY_QUEUED, CELERY_ACTIVE = "celery_queued", "celery_active"


class PolicyKind(models.TextChoices):
    """HPA's `HPAScalingPolicy.type`."""

    PERCENT = "percent", "Percent of the instances at the period's start"
    INSTANCES = "instances", "Instances (HPA: Pods)"


class SelectPolicy(models.TextChoices):
    """HPA's `selectPolicy`."""

    MAX = "max", "The policy allowing the biggest change"
    MIN = "min", "The policy allowing the smallest change"
    DISABLED = "disabled", "No change in this direction"


class LaunchState(models.TextChoices):
    LAUNCHING = "launching", "Launching"
    WAITING_HEALTHY = "waiting_healthy", "Waiting until healthy"
    IN_SERVICE = "in_service", "In service (taking traffic)"
    FAILED = "failed", "Failed (never healthy; removed)"


LAUNCH_OPEN = (LaunchState.LAUNCHING, LaunchState.WAITING_HEALTHY)


class TerminationState(models.TextChoices):
    DRAINING = "draining", "Draining in the router"
    CONFIRMING = "confirming", "Confirming the router stopped routing"
    AWAITING_READY = "awaiting_ready", "Waiting for the instance to say it is ready"
    STOPPING = "stopping", "Stopping (SIGTERM, then SIGKILL after the grace period)"
    TERMINATED = "terminated", "Terminated"


TERMINATION_OPEN = (
    TerminationState.DRAINING,
    TerminationState.CONFIRMING,
    TerminationState.AWAITING_READY,
    TerminationState.STOPPING,
)


class Ending(models.TextChoices):
    """How an instance's termination ended, as the drain report says."""

    READY = "ready", "The instance said it was ready"
    TIMED_OUT = "timed_out", "It never said ready: stopped at the lifecycle timeout"
    GONE = "gone", "It was already gone"


class Reason(models.TextChoices):
    """Why a group's instance count changed."""

    AUTOSCALE = "autoscale", "Autoscaling"
    MANUAL = "manual", "Set by hand"
    BOUNDS = "bounds", "Min or max changed"
    ROLLING_RESTART = "rolling_restart", "Rolling restart"
    REPLACE_FAILED = "replace_failed", "Replacing a launch that never turned healthy"


# -- scaling's events --------------------------------------------------------------------------


class ScalingEvent(EventNames):
    FAMILY = "scaling."
    GROUP_CREATED = "scaling.group_created"
    GROUP_UPDATED = "scaling.group_updated"
    GROUP_DELETED = "scaling.group_deleted"
    DECIDED = "scaling.decided"  # the desired count changed (its inputs in the payload)
    SCALED_UP = "scaling.scaled_up"  # instances launched
    SCALED_DOWN = "scaling.scaled_down"  # instances chosen to go
    INSTANCE_IN_SERVICE = "scaling.instance_in_service"
    LAUNCH_FAILED = "scaling.launch_failed"
    INSTANCE_TERMINATED = "scaling.instance_terminated"  # with its drain report
    PAUSED = "scaling.paused"
    RESUMED = "scaling.resumed"
    RESTART_STARTED = "scaling.restart_started"
    RESTART_FINISHED = "scaling.restart_finished"
    PROTECTED = "scaling.protected"  # an instance asked not to be chosen for scale-in
    DRIVER_ERROR = "scaling.driver_error"
    ROUTER_REAPPLIED = "scaling.router_reapplied"  # a reload had undone a drain or a scale-out


GROUP_EVENTS = ResourceEvents(
    "scaling group",
    ScalingEvent.GROUP_CREATED,
    ScalingEvent.GROUP_UPDATED,
    ScalingEvent.GROUP_DELETED,
)
