"""What people do to a group, from the dashboard, the API, the CLI and Slack alike: set the
count by hand, pause and resume autoscaling, start a rolling restart. Each is one locked,
audited change."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from catalog.permissions import Access
from controlplane.changes import Conflict
from controlplane.events import publish
from scaling.choices import Reason, ScalingEvent
from scaling.models import Decision, ScalingGroup


def _locked(group: ScalingGroup) -> ScalingGroup:
    return (
        ScalingGroup.objects.select_for_update(of=("self",))
        .select_related("service", "environment")
        .get(pk=group.pk)
    )


def set_desired(group: ScalingGroup, desired: int, actor: Access, reason: str = "") -> ScalingGroup:
    """Set the count by hand; autoscaling pauses, or it would undo this at its next tick."""
    with transaction.atomic():
        locked = _locked(group)
        if not locked.min_instances <= desired <= locked.max_instances:
            raise Conflict(
                f"desired {desired} is outside {locked}'s bounds "
                f"({locked.min_instances} to {locked.max_instances}): change min or max first"
            )
        before = locked.desired
        why = reason or f"set to {desired} by {actor.label()}"
        Decision.objects.create(
            group=locked,
            current=before,
            desired=desired,
            reason=Reason.MANUAL,
            steps=[why, "autoscaling paused until resumed"],
            held_by="",
        )
        locked.desired = desired
        locked.enabled = False
        locked.paused_reason = why
        locked.converge_due_at = timezone.now()  # acted on at the next beat
        locked.save(
            update_fields=["desired", "enabled", "paused_reason", "converge_due_at", "updated_at"]
        )
        publish(
            ScalingEvent.DECIDED,
            actor=actor,
            subject=locked,
            message=f"{locked}: set by hand {before} -> {desired}; autoscaling paused",
            payload={"current": before, "desired": desired, "reason": why, "manual": True},
        )
    return locked


def pause(group: ScalingGroup, actor: Access, reason: str = "") -> ScalingGroup:
    with transaction.atomic():
        locked = _locked(group)
        if not locked.enabled:
            return locked
        locked.enabled = False
        locked.paused_reason = reason or f"paused by {actor.label()}"
        locked.save(update_fields=["enabled", "paused_reason", "updated_at"])
        publish(
            ScalingEvent.PAUSED,
            actor=actor,
            subject=locked,
            message=f"{locked}: autoscaling paused ({locked.paused_reason})",
        )
    return locked


def resume(group: ScalingGroup, actor: Access) -> ScalingGroup:
    with transaction.atomic():
        locked = _locked(group)
        if locked.enabled:
            return locked
        locked.enabled = True
        locked.paused_reason = ""
        locked.next_due_at = timezone.now()  # decide at the next beat, not a period later
        locked.save(update_fields=["enabled", "paused_reason", "next_due_at", "updated_at"])
        publish(ScalingEvent.RESUMED, actor=actor, subject=locked, message=f"{locked}: resumed")
    return locked


def start_restart(group: ScalingGroup, actor: Access, reason: str = "") -> ScalingGroup:
    """Replace every instance of the group, one by one (lifecycle.converge does the work)."""
    with transaction.atomic():
        locked = _locked(group)
        if locked.restart_started_at is not None:
            raise Conflict(
                f"{locked} is already restarting (since {locked.restart_started_at:%H:%M:%S} UTC)"
            )
        locked.restart_started_at = timezone.now()
        locked.converge_due_at = locked.restart_started_at  # started at the next beat
        locked.save(update_fields=["restart_started_at", "converge_due_at", "updated_at"])
        publish(
            ScalingEvent.RESTART_STARTED,
            actor=actor,
            subject=locked,
            message=f"{locked}: rolling restart started"
            + (f" ({reason})" if reason else f" by {actor.label()}"),
        )
    return locked
