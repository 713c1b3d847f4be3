"""Starting rollouts, and what people and CI can do to them (the API, pages and CLI call this)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from catalog.choices import Scope
from catalog.models import Environment, Instance, Service
from catalog.permissions import Access
from controlplane.events import publish
from deployments import reconciler
from deployments.choices import (
    Action,
    AnalysisState,
    PauseCause,
    RolloutEvent,
    RolloutState,
    StepKind,
    StepOutcome,
    Strategy,
)
from deployments.freeze import Freeze, freeze_of
from deployments.models import (
    DeploySettings,
    Rollout,
    TrafficRoute,
)
from deployments.strategies import steps_for, validate_metrics, validate_steps

# The first key of the two-key advisory lock that serialises requests with one idempotency
# key ("SB" "RO": Signalbox rollouts), so it cannot collide with other users of such locks.
IDEMPOTENCY_LOCK_CLASS = 0x5342_524F


@dataclass
class RolloutError(Exception):
    """A request the current state refuses; `status` is the HTTP status the API answers."""

    message: str
    status: int = 409
    code: str = "conflict"
    fields: dict[str, list[str]] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.message


def invalid(field_name: str, reason: str) -> RolloutError:
    return RolloutError(f"{field_name}: {reason}", 400, "invalid", {field_name: [reason]})


def current_version(service: Service, environment: Environment) -> str:
    """The version serving now: the last successful rollout's, else the commonest live one."""
    last = (
        Rollout.objects.filter(
            service=service, environment=environment, state=RolloutState.SUCCEEDED
        )
        .order_by("-finished_at", "-id")
        .first()
    )
    if last is not None:
        return last.to_version
    versions = Counter(
        Instance.objects.filter(
            service=service, environment=environment, lifecycle__in=reconciler.ROUTABLE
        )
        .exclude(version="")
        .values_list("version", flat=True)
    )
    return versions.most_common(1)[0][0] if versions else ""


def start_rollout(
    *,
    access: Access,
    service: Service,
    environment: Environment,
    version: str,
    strategy: str | None = None,
    steps: list[dict[str, Any]] | None = None,
    analysis: list[dict[str, Any]] | None = None,
    idempotency_key: str = "",
    reason: str = "",
    freeze_override_reason: str = "",
    rollback_of: Rollout | None = None,
) -> tuple[Rollout, bool]:
    """Create a rollout, or return the one this idempotency key already started.

    Returns (rollout, created). Raises RolloutError: 400 bad input, 409 another rollout is
    active (or the key was used for something else), 423 the environment is frozen.
    """
    with transaction.atomic():
        if idempotency_key:
            # Requests with one key take turns: a CI runner retrying on a timeout sends the
            # same request again while the first is still being served, and each retry must
            # find the rollout the first one created (200), never clash with it (409).
            _hold_key(service.team_id, idempotency_key)
            existing = Rollout.objects.filter(
                team=service.team, idempotency_key=idempotency_key
            ).first()
            if existing is not None:
                return _same_request(existing, service, environment, version), False
        route = (
            TrafficRoute.objects.select_related("router")
            .filter(service=service, environment=environment)
            .first()
        )
        if route is None:
            raise invalid(
                "environment",
                f"no traffic router routes {service.slug} in {environment.slug}; an owner adds "
                "one (admin: Traffic routes, or manage.py seed_deployments for the demo)",
            )
        defaults = DeploySettings.objects.filter(service=service).first() or DeploySettings(
            service=service
        )
        strategy = strategy or defaults.strategy
        if strategy not in Strategy.values:
            raise invalid("strategy", f"use one of {', '.join(Strategy.values)}")
        steps = steps or steps_for(strategy, defaults)
        errors = validate_steps(steps)
        if errors:
            raise RolloutError("; ".join(errors), 400, "invalid", {"steps": errors})
        analysis = analysis if analysis is not None else defaults.analysis or []
        errors = validate_metrics(analysis)
        if errors:
            raise RolloutError("; ".join(errors), 400, "invalid", {"analysis": errors})
        overridden = None
        if rollback_of is None:
            overridden = _check_freeze(access, service, environment, freeze_override_reason)
        from_version = current_version(service, environment)
        if from_version == version:
            raise invalid("version", f"{service.slug} already runs {version} in {environment.slug}")
        now = timezone.now()
        rollout = Rollout(
            team=service.team,
            service=service,
            environment=environment,
            from_version=from_version,
            to_version=version,
            strategy=strategy,
            steps=steps,
            analysis=analysis,
            router=route,
            idempotency_key=idempotency_key,
            reason=reason[:500],
            freeze_override_reason=freeze_override_reason[:500],
            actor_label=access.label(),
            created_by_id=access.user.pk if access.token is None else None,
            progress_deadline_seconds=defaults.progress_deadline_seconds,
            next_action_at=now,
            deadline_at=now + timedelta(seconds=defaults.progress_deadline_seconds),
            rollback_of=rollback_of,
            message="waiting for the reconciler to start it",
        )
        try:
            with transaction.atomic():
                rollout.save()
        except IntegrityError as exc:
            raise _clash(exc, service, environment, idempotency_key) from None
        publish(
            RolloutEvent.CREATED,
            actor=access,
            subject=rollout,
            message=f"{service.slug} {from_version or '?'} → {version} in {environment.slug} "
            f"({Strategy(strategy).label.lower()}) started by {access.label()}"
            + (f": {reason}" if reason else ""),
            payload={
                "rollout": rollout.pk,
                "from_version": from_version,
                "to_version": version,
                "strategy": strategy,
                "freeze_override_reason": freeze_override_reason,
                "overridden_freeze": overridden.sentence() if overridden else "",
            },
        )
        reconciler.kick(rollout.pk)
        return rollout, True


def _hold_key(team_id: int, key: str) -> None:
    """Hold a transaction-scoped advisory lock on (team, idempotency key) until commit."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(%s, hashtext(%s))",
            [IDEMPOTENCY_LOCK_CLASS, f"{team_id}:{key}"],
        )


def _same_request(existing: Rollout, service: Service, env: Environment, version: str) -> Rollout:
    if (existing.service_id, existing.environment_id, existing.to_version) != (
        service.pk,
        env.pk,
        version,
    ):
        raise RolloutError(
            f"idempotency_key was already used for rollout #{existing.pk} "
            f"({existing.service.slug} {existing.to_version} in {existing.environment.slug}); "
            "use a new key for a different rollout",
            409,
            "idempotency_key_reused",
        )
    return existing


def _clash(
    exc: IntegrityError, service: Service, environment: Environment, key: str
) -> RolloutError:
    if "idempotency" in str(exc) and key:
        existing = Rollout.objects.filter(team=service.team, idempotency_key=key).first()
        if existing is not None:
            return RolloutError(
                f"a request with this idempotency_key started rollout #{existing.pk} a moment ago",
                409,
                "idempotency_key_reused",
            )
    active = Rollout.objects.active().filter(service=service, environment=environment).first()
    if active is None:
        return RolloutError("another rollout was started at the same moment; try again")
    return RolloutError(
        f"{service.slug} already has an active rollout in {environment.slug}: #{active.pk} "
        f"({active.from_version or '?'} → {active.to_version}, "
        f"{active.get_state_display().lower()}). "
        f"Wait for it to finish, or abort it: POST /api/v1/rollouts/{active.pk}/abort",
        409,
        "rollout_active",
    )


def _check_freeze(
    access: Access, service: Service, environment: Environment, override_reason: str
) -> Freeze | None:
    """423 while a one-off or recurring freeze window covers now, unless an owner overrides;
    returns the window overridden, if any."""
    freeze = freeze_of(environment)
    if freeze is None:
        return None
    if not override_reason.strip():
        raise RolloutError(
            f"{freeze.sentence()}. An owner of {service.team.slug} may override by giving "
            "freeze_override_reason",
            423,
            "frozen",
        )
    if not access.can(Scope.WRITE, service.team, service):
        raise RolloutError(
            f"{freeze.sentence()}. Only an owner of {service.team.slug} may override the freeze",
            423,
            "frozen",
        )
    return freeze


def act(
    rollout_id: int, action: str, *, access: Access, reason: str = "", full: bool = False
) -> Rollout:
    """Apply a person's action; returns the rollout (for rollback after success, the new one)."""
    if action not in Action.values:
        raise invalid("action", f"use one of {', '.join(Action.values)}")
    with transaction.atomic():
        rollout = (
            Rollout.objects.select_for_update(of=("self",))
            # The router too: an abort sets weights at once, two queries sooner without them.
            .select_related("service", "service__team", "environment", "router", "router__router")
            .get(pk=rollout_id)
        )
        now = timezone.now()
        who = access.label()
        because = f": {reason}" if reason else ""
        handler = _HANDLERS[Action(action)]
        result = handler(rollout, access, who, because, now, full)
        if result is rollout:
            rollout.save()
            reconciler.kick(rollout.pk)
        return result


def _refuse(rollout: Rollout, action: str, why: str) -> RolloutError:
    return RolloutError(f"cannot {action} rollout #{rollout.pk}: it {why}", 409, "invalid_state")


def _state_words(rollout: Rollout) -> str:
    return f"is {rollout.get_state_display().lower()}"


def _pause(
    rollout: Rollout, access: Access, who: str, because: str, now: datetime, full: bool
) -> Rollout:
    if rollout.is_terminal or rollout.state == RolloutState.ROLLING_BACK:
        raise _refuse(rollout, "pause", _state_words(rollout))
    if rollout.state == RolloutState.PAUSED and rollout.paused_for == PauseCause.MANUAL:
        raise _refuse(rollout, "pause", "is already paused")
    reconciler.pause(rollout, PauseCause.MANUAL, f"paused by {who}{because}", now, actor=access)
    return rollout


def _resume(
    rollout: Rollout, access: Access, who: str, because: str, now: datetime, full: bool
) -> Rollout:
    if rollout.state != RolloutState.PAUSED:
        raise _refuse(rollout, "resume", f"{_state_words(rollout)}, not paused")
    was_waiting = rollout.paused_for == PauseCause.PROMOTION
    _unpause(rollout, now, f"resumed by {who}{because}")
    if was_waiting:
        reconciler.complete_step(rollout, now)
    publish(
        RolloutEvent.RESUMED,
        actor=access,
        subject=rollout,
        message=f"{_label(rollout)} {rollout.message}",
        payload={"rollout": rollout.pk, "state": rollout.state, "step": rollout.step_index},
    )
    return rollout


def _promote(
    rollout: Rollout, access: Access, who: str, because: str, now: datetime, full: bool
) -> Rollout:
    if rollout.is_terminal or rollout.state == RolloutState.ROLLING_BACK:
        raise _refuse(rollout, "promote", _state_words(rollout))
    waiting = rollout.paused_for == PauseCause.PROMOTION
    _unpause(rollout, now, f"promoted {'fully ' if full else ''}by {who}{because}")
    if full:
        rollout.step_runs.filter(outcome=StepOutcome.RUNNING).update(
            outcome=StepOutcome.SKIPPED, finished_at=now
        )
        rollout.analysis_runs.filter(state=AnalysisState.RUNNING).update(
            state=AnalysisState.CANCELLED, finished_at=now
        )
        rollout.step_index = len(rollout.steps) - 1
        reconciler.complete_step(rollout, now, StepOutcome.SKIPPED)
    else:
        reconciler.complete_step(rollout, now, StepOutcome.DONE if waiting else StepOutcome.SKIPPED)
    publish(
        RolloutEvent.PROMOTED,
        actor=access,
        subject=rollout,
        message=f"{_label(rollout)} {rollout.message}",
        payload={"rollout": rollout.pk, "full": full, "step": rollout.step_index},
    )
    return rollout


def _abort(
    rollout: Rollout, access: Access, who: str, because: str, now: datetime, full: bool
) -> Rollout:
    if rollout.is_terminal or rollout.state == RolloutState.ROLLING_BACK:
        raise _refuse(rollout, "abort", _state_words(rollout))
    reconciler.begin_rollback(
        rollout, RolloutState.ABORTED, f"aborted by {who}{because}", now=now, actor=access
    )
    reconciler.rollback_now(rollout, now)
    return rollout


def _retry(
    rollout: Rollout, access: Access, who: str, because: str, now: datetime, full: bool
) -> Rollout:
    if rollout.state == RolloutState.PAUSED and rollout.paused_for in (
        PauseCause.INCONCLUSIVE,
        PauseCause.DRIVER_ERROR,
    ):
        # Measure again from scratch, or call the router again now.
        rollout.analysis_runs.filter(
            step_index=rollout.step_index, state=AnalysisState.RUNNING
        ).update(state=AnalysisState.CANCELLED, finished_at=now)
        _unpause(rollout, now, f"retried by {who}{because}")
    elif rollout.state in (RolloutState.ROLLED_BACK, RolloutState.ABORTED, RolloutState.FAILED):
        rollout.state = RolloutState.PENDING
        rollout.step_index = 0
        rollout.ending = ""
        rollout.paused_for = PauseCause.NONE
        rollout.finished_at = rollout.pause_until = None
        rollout.next_action_at = now
        rollout.deadline_at = rollout.deadline(now)
        rollout.driver_failures = 0
        rollout.message = f"retried from the first step by {who}{because}"
        rollout.revision += 1
        try:
            with transaction.atomic():
                rollout.save()
        except IntegrityError:
            raise _clash(
                IntegrityError("active"), rollout.service, rollout.environment, ""
            ) from None
    else:
        raise _refuse(
            rollout,
            "retry",
            f"{_state_words(rollout)}; retry re-runs a step that had no data or a "
            "router error, or restarts a rollout that ended without success",
        )
    publish(
        RolloutEvent.RESUMED,
        actor=access,
        subject=rollout,
        message=f"{_label(rollout)} {rollout.message}",
        payload={"rollout": rollout.pk, "action": "retry", "step": rollout.step_index},
    )
    return rollout


def _rollback(
    rollout: Rollout, access: Access, who: str, because: str, now: datetime, full: bool
) -> Rollout:
    if rollout.state == RolloutState.ROLLING_BACK:
        raise _refuse(rollout, "roll back", "is already rolling back")
    if rollout.is_active:
        reconciler.begin_rollback(
            rollout,
            RolloutState.ROLLED_BACK,
            f"rolled back by {who}{because}",
            now=now,
            actor=access,
        )
        reconciler.rollback_now(rollout, now)
        return rollout
    if rollout.state != RolloutState.SUCCEEDED:
        raise _refuse(
            rollout,
            "roll back",
            f"{_state_words(rollout)}: its traffic is already on "
            f"{rollout.from_version or 'stable'}",
        )
    later = (
        Rollout.objects.filter(
            service=rollout.service,
            environment=rollout.environment,
            created_at__gt=rollout.created_at,
        )
        .exclude(state__in=(RolloutState.ROLLED_BACK, RolloutState.ABORTED, RolloutState.FAILED))
        .first()
    )
    if later is not None:
        raise _refuse(
            rollout, "roll back", f"is no longer current: rollout #{later.pk} came after it"
        )
    if not rollout.from_version:
        raise _refuse(rollout, "roll back", "has no recorded previous version")
    new, _ = start_rollout(
        access=access,
        service=rollout.service,
        environment=rollout.environment,
        version=rollout.from_version,
        strategy=rollout.strategy,
        steps=[{StepKind.SET_WEIGHT.value: 100}],
        reason=f"roll back #{rollout.pk} to {rollout.from_version}{because}",
        rollback_of=rollout,
    )
    return new


def _unpause(rollout: Rollout, now: datetime, message: str) -> None:
    rollout.state = RolloutState.PENDING if rollout.started_at is None else RolloutState.PROGRESSING
    rollout.paused_for = PauseCause.NONE
    rollout.message = message[:1000]
    rollout.next_action_at = now
    rollout.deadline_at = rollout.deadline(now)
    rollout.revision += 1


def _label(rollout: Rollout) -> str:
    return f"{rollout.service.slug} {rollout.to_version} in {rollout.environment.slug}:"


_HANDLERS = {
    Action.PAUSE: _pause,
    Action.RESUME: _resume,
    Action.PROMOTE: _promote,
    Action.ABORT: _abort,
    Action.RETRY: _retry,
    Action.ROLLBACK: _rollback,
}
