"""What the reconciler tells the spine: one event per move, carrying the rollout's weights."""

from __future__ import annotations

from typing import Any

from controlplane.events import publish
from deployments.models import Rollout


def rollout_name(rollout: Rollout) -> str:
    """How event messages name a rollout: service, new version and environment."""
    return f"{rollout.service.slug} {rollout.to_version} in {rollout.environment.slug}"


def announce(
    action: str, rollout: Rollout, *, actor: Any = None, message: str = "", **extra: Any
) -> None:
    """Publish `action` about the rollout, in the caller's transaction."""
    payload = {
        "rollout": rollout.pk,
        "state": rollout.state,
        "step": rollout.step_index,
        "desired_weight": rollout.desired_weight,
        "applied_weight": rollout.applied_weight,
        **extra,
    }
    publish(action, actor=actor, subject=rollout, message=message, payload=payload)
