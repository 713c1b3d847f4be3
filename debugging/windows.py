"""Debug windows: open one (a logger's level for a while, on one instance, a zone or a whole
service in an environment), apply it to each covered instance (including ones that join),
close it on time or early, revert and read the level back per instance."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from catalog.choices import LIVE_LIFECYCLES
from catalog.models import Environment, Instance, Service
from controlplane import outbound
from controlplane.crypto import mask
from controlplane.events import Actor, publish
from debugging import appliers, config
from debugging.choices import DebugWindowEvent, Delivery, Revert, WindowState
from debugging.models import DebugTarget, DebugWindow, DeliverySetting

logger = logging.getLogger(__name__)

# Seconds a client-library instance has, after a window closes, to report the reverted
# level (it long-polls, so it hears at once; then one report). Past it: unverified.
VERIFY_SECONDS = 60
LEASE_SECONDS = 30
# A failed apply or revert waits 2, 4, 8, ... s (at most this) before the beat retries it.
BACKOFF_MAX_SECONDS = 60


def backoff(attempts: int) -> timedelta:
    """How long to wait after the `attempts`-th failure before trying again."""
    return timedelta(seconds=min(2 ** max(attempts, 1), BACKOFF_MAX_SECONDS))


@dataclass(frozen=True)
class Opening:
    """A validated request to open a window."""

    service: Service
    environment: Environment
    logger: str
    level: str
    duration: timedelta
    reason: str
    instance: Instance | None = None
    zone: str = ""
    incident_ref: str = ""


def max_duration() -> timedelta:
    return timedelta(seconds=settings.SIGNALBOX_DEBUG_WINDOW_MAX_SECONDS)


def setting_of(service: Service) -> DeliverySetting:
    found = DeliverySetting.objects.filter(service=service).first()
    return found or DeliverySetting(service=service)


SECRET_MIN_CHARS = 16


def delivery_document(service: Service, setting: DeliverySetting) -> dict[str, Any]:
    """What the API and the page show of a delivery setting: never the secret itself."""
    return {
        "service": service.slug,
        "method": setting.method,
        "webhook_url": setting.webhook_url,
        "webhook_secret": {
            "set": bool(setting.webhook_secret),
            "masked": mask(setting.webhook_secret),
        },
    }


def set_delivery(service: Service, data: dict[str, Any], *, actor: Actor) -> DeliverySetting:
    """Change how a service takes debug windows: `method`, `webhook_url` (checked by the
    outbound guard), `webhook_secret` (at least 16 characters; "" removes it; absent keeps
    it). Raises config.Invalid naming each bad field; saved with one audited event."""
    setting = setting_of(service)
    method = data.get("method", setting.method)
    url = data.get("webhook_url", setting.webhook_url)
    secret = data.get("webhook_secret", setting.webhook_secret)
    errors: dict[str, list[str]] = {}
    if method not in Delivery.values:
        errors["method"] = [f"must be one of {', '.join(Delivery.values)}"]
    if not isinstance(url, str):
        errors["webhook_url"] = ["must be a URL string"]
    elif method == Delivery.WEBHOOK:
        reason = outbound.refusal(url) if url else "required for the webhook method"
        if reason:
            errors["webhook_url"] = [reason]
    if not isinstance(secret, str):
        errors["webhook_secret"] = ["must be a string"]
    elif secret and len(secret) < SECRET_MIN_CHARS:
        errors["webhook_secret"] = [
            f"use a signing secret of at least {SECRET_MIN_CHARS} characters"
        ]
    if errors:
        raise config.Invalid(errors)
    before = {"method": setting.method, "webhook_url": setting.webhook_url}
    secret_changed = secret != setting.webhook_secret
    setting.method, setting.webhook_url, setting.webhook_secret = method, url, secret
    after = {"method": method, "webhook_url": url}
    if before != after or secret_changed:
        with transaction.atomic():
            setting.save()
            publish(
                DebugWindowEvent.DELIVERY_CHANGED,
                actor=actor,
                subject=service,
                message=f"{service.slug} takes debug windows by {method}",
                payload={
                    "before": before,
                    "after": after,
                    "webhook_secret": "changed" if secret_changed else "unchanged",
                },
            )
    return setting


def covered(window: DebugWindow) -> list[Instance]:
    """The live instances a window applies to now."""
    found = Instance.objects.filter(
        service_id=window.service_id,
        environment_id=window.environment_id,
        lifecycle__in=LIVE_LIFECYCLES,
    ).select_related("service")
    if window.instance_id is not None:
        found = found.filter(pk=window.instance_id)
    elif window.zone:
        found = found.filter(zone=window.zone)
    return list(found)


def open_window(
    opening: Opening, *, actor: Actor, user: Any = None, label: str = ""
) -> DebugWindow:
    """Create the window and a target per covered instance, publish it, wake the watchers;
    once committed, the appliers run (a Celery task) for actuator and webhook services."""
    method = setting_of(opening.service).method
    with transaction.atomic():
        window = DebugWindow.objects.create(
            service=opening.service,
            environment=opening.environment,
            instance=opening.instance,
            zone=opening.zone,
            logger=opening.logger,
            level=opening.level,
            method=method,
            reason=opening.reason,
            incident_ref=opening.incident_ref,
            opened_by=user,
            opened_by_label=label or config.actor_label(actor),
            ends_at=timezone.now() + opening.duration,
        )
        for instance in covered(window):
            DebugTarget.objects.create(window=window, instance=instance)
        publish(
            DebugWindowEvent.OPENED,
            actor=actor,
            subject=window,
            environment=opening.environment,
            message=f"debug window: {window} for {_minutes(opening.duration)} "
            f"because {opening.reason}",
            payload={
                "window": window.pk,
                "logger": window.logger,
                "level": window.level,
                "scope": window.scope_label(),
                "ends_at": window.ends_at.isoformat(),
                "reason": window.reason,
                "incident": window.incident_ref,
                "method": method,
            },
        )
        config.notify(window.service_id, window.environment_id)
        transaction.on_commit(lambda: _queue("debugging.tasks.apply_window", window.pk))
    return window


def apply(window_id: int) -> int:
    """Apply an open window to each target not yet applied; returns how many took it."""
    window = (
        DebugWindow.objects.select_related("service", "environment")
        .filter(pk=window_id, state=WindowState.OPEN)
        .first()
    )
    if window is None:
        return 0
    done = 0
    # next_apply_at is set while a failed target waits for its retry (claim_applies clears it).
    for target in window.targets.filter(
        applied_at__isnull=True, next_apply_at__isnull=True
    ).select_related("instance"):
        done += _apply_one(window, target)
    return done


def claim_applies(now: Any = None) -> list[int]:
    """The open windows with a failed apply whose backoff is over (SKIP LOCKED): their
    targets are marked due (next_apply_at cleared) and the window ids returned to queue."""
    now = now or timezone.now()
    with transaction.atomic():
        due = list(
            DebugTarget.objects.select_for_update(skip_locked=True)
            .filter(
                applied_at__isnull=True,
                next_apply_at__lte=now,
                window__state=WindowState.OPEN,
                window__ends_at__gt=now,
            )
            .values_list("pk", "window_id")[:500]
        )
        DebugTarget.objects.filter(pk__in=[pk for pk, _ in due]).update(next_apply_at=None)
    return sorted({window_id for _, window_id in due})


def _apply_one(window: DebugWindow, target: DebugTarget) -> int:
    instance = target.instance
    try:
        if window.method == Delivery.ACTUATOR:
            target.previous_level = appliers.actuator_level(instance, window.logger)
            appliers.actuator_set(instance, window.logger, window.level)
        elif window.method == Delivery.WEBHOOK:
            setting = setting_of(window.service)
            target.previous_level = None
            read = appliers.webhook_post(
                setting.webhook_url,
                window,
                instance,
                window.level,
                "apply",
                secret=setting.webhook_secret,
            )
            if not read.verified:
                raise appliers.ApplyFailed(read.detail)
        else:
            # The client takes it from the delivered config; what it goes back to is the
            # level the config sets (None: the logger's own level in the process).
            current = config.document(config.current(window.service, window.environment))
            target.previous_level = current["log_levels"].get(window.logger)
    except appliers.ApplyFailed as exc:
        # Retried by the beat (claim_applies) after a backoff, for as long as the window is
        # open; a retry that would come after its end is not made.
        target.apply_error = str(exc)[:500]
        target.apply_attempts += 1
        retry_at = timezone.now() + backoff(target.apply_attempts)
        target.next_apply_at = retry_at if retry_at < window.ends_at else window.ends_at
        target.save(
            update_fields=["previous_level", "apply_error", "apply_attempts", "next_apply_at"]
        )
        will_retry = retry_at < window.ends_at
        publish(
            DebugWindowEvent.APPLY_FAILED,
            subject=window,
            environment=window.environment,
            message=f"debug window {window.pk} not applied to {instance} "
            f"(attempt {target.apply_attempts}): {exc}"
            + (f"; retrying at {retry_at:%H:%M:%S}" if will_retry else "; not retried"),
            payload={
                "window": window.pk,
                "instance": instance.pk,
                "error": str(exc)[:500],
                "attempt": target.apply_attempts,
                "retry_at": retry_at.isoformat() if will_retry else None,
            },
        )
        return 0
    target.applied_at = timezone.now()
    target.apply_error = ""
    target.next_apply_at = None
    target.save(update_fields=["previous_level", "applied_at", "apply_error", "next_apply_at"])
    publish(
        DebugWindowEvent.APPLIED,
        subject=window,
        environment=window.environment,
        message=f"{window.logger}={window.level} applied to {instance}",
        payload={
            "window": window.pk,
            "instance": instance.pk,
            "previous_level": target.previous_level,
        },
    )
    return 1


def join(instance: Instance) -> list[int]:
    """An instance registered: give it every open window that covers it. Returns window ids."""
    joined = []
    for window in DebugWindow.objects.filter(
        service_id=instance.service_id,
        environment_id=instance.environment_id,
        state=WindowState.OPEN,
    ):
        if window.covers(instance):
            _, created = DebugTarget.objects.get_or_create(window=window, instance=instance)
            if created:
                joined.append(window.pk)
    for window_id in joined:
        _queue("debugging.tasks.apply_window", window_id)
    return joined


def close(window: DebugWindow, *, actor: Actor = None, early: bool = False) -> bool:
    """Close an open window (False if it was closed already). Client instances hear it at
    once (their held poll answers); the beat's next pass (`claim_reverts`) puts the level
    back on actuator and webhook instances and reads it back on every instance."""
    with transaction.atomic():
        updated = DebugWindow.objects.filter(pk=window.pk, state=WindowState.OPEN).update(
            state=WindowState.CLOSED,
            closed_at=timezone.now(),
            closed_by_label=config.actor_label(actor) if early else "expired",
            verify_until=timezone.now() + timedelta(seconds=VERIFY_SECONDS),
        )
        if updated != 1:
            return False  # another request or worker closed it first
        window.refresh_from_db()
        publish(
            DebugWindowEvent.CLOSED,
            actor=actor,
            subject=window,
            environment=window.environment,
            message=f"debug window {window} closed " + ("early" if early else "at its end"),
            payload={"window": window.pk, "early": early},
        )
        config.notify(window.service_id, window.environment_id)
    return True


def close_due(now: Any = None) -> list[int]:
    """Close the windows whose end has come (SKIP LOCKED: any number of workers)."""
    now = now or timezone.now()
    closed = []
    with transaction.atomic():
        due = list(
            DebugWindow.objects.select_for_update(skip_locked=True)
            .filter(state=WindowState.OPEN, ends_at__lte=now)
            .order_by("ends_at")[:100]
        )
        for window in due:
            if close(window):
                closed.append(window.pk)
    return closed


def claim_reverts(now: Any = None) -> list[int]:
    """Lease the closed windows with reverts still to prove (SKIP LOCKED)."""
    now = now or timezone.now()
    with transaction.atomic():
        found = list(
            DebugWindow.objects.select_for_update(skip_locked=True)
            .filter(state=WindowState.CLOSED)
            .filter(
                Exists(DebugTarget.objects.filter(window=OuterRef("pk"), revert=Revert.PENDING))
            )
            .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
            .order_by("closed_at")
            .values_list("pk", flat=True)[:100]
        )
        DebugWindow.objects.filter(pk__in=found).update(
            lease_until=now + timedelta(seconds=LEASE_SECONDS)
        )
    return found


def revert(window_id: int) -> dict[str, int]:
    """One pass over a closed window's pending targets: put the level back and read it back.
    A target whose read-back cannot prove it by `verify_until` is recorded unverified, with an
    event alerting can listen to."""
    window = (
        DebugWindow.objects.select_related("service", "environment")
        .filter(pk=window_id, state=WindowState.CLOSED)
        .first()
    )
    counts = {"verified": 0, "unverified": 0, "pending": 0}
    if window is None:
        return counts
    for target in window.targets.filter(revert=Revert.PENDING).select_related("instance"):
        counts[_revert_one(window, target)] += 1
    if counts["pending"]:
        # Back off: the lease keeps the next pass away for 2, 4, 8, ... s, never past the
        # give-up time (verify_until), when what is still unproved is recorded unverified.
        passes = window.revert_passes + 1
        wait_until = timezone.now() + backoff(passes)
        if window.verify_until is not None and wait_until > window.verify_until:
            wait_until = window.verify_until
        DebugWindow.objects.filter(pk=window.pk).update(
            lease_until=wait_until, revert_passes=passes
        )
    else:
        DebugWindow.objects.filter(pk=window.pk).update(lease_until=None)
    return counts


def _revert_one(window: DebugWindow, target: DebugTarget) -> str:
    instance = target.instance
    read: appliers.ReadBack | None
    try:
        if target.applied_at is None:
            read = appliers.ReadBack(True, target.previous_level, "never applied")
        elif window.method == Delivery.ACTUATOR:
            appliers.actuator_set(instance, window.logger, target.previous_level)
            level = appliers.actuator_level(instance, window.logger)
            same = level == appliers.spring_level(target.previous_level)
            read = appliers.ReadBack(
                same, level, "" if same else f"read back {level!r}, not {target.previous_level!r}"
            )
        elif window.method == Delivery.WEBHOOK:
            setting = setting_of(window.service)
            read = appliers.webhook_post(
                setting.webhook_url,
                window,
                instance,
                target.previous_level,
                "revert",
                secret=setting.webhook_secret,
            )
        else:
            expected = config.document(config.current(window.service, window.environment))[
                "log_levels"
            ].get(window.logger)
            assert window.closed_at is not None
            read = appliers.client_read_back(instance, window.logger, expected, window.closed_at)
    except appliers.ApplyFailed as exc:
        read = appliers.ReadBack(False, None, str(exc))
    due = window.verify_until is None or timezone.now() >= window.verify_until
    if read is None or (not read.verified and not due):
        return "pending"  # the next pass tries again
    target.read_back = read.level
    target.revert_detail = read.detail[:500]
    target.revert = Revert.VERIFIED if read.verified else Revert.UNVERIFIED
    with transaction.atomic():
        target.save(update_fields=["read_back", "revert_detail", "revert"])
        name = (
            DebugWindowEvent.REVERT_VERIFIED
            if read.verified
            else DebugWindowEvent.REVERT_UNVERIFIED
        )
        publish(
            name,
            subject=window,
            environment=window.environment,
            message=f"{window.logger} on {instance}: revert "
            + ("verified" if read.verified else f"unverified ({read.detail})"),
            payload={
                "window": window.pk,
                "instance": instance.pk,
                "read_back": read.level,
                "expected": target.previous_level,
                "detail": read.detail[:500],
            },
        )
    return "verified" if read.verified else "unverified"


def _minutes(duration: timedelta) -> str:
    minutes = int(duration.total_seconds() // 60)
    return f"{minutes} min" if minutes < 120 else f"{minutes / 60:.1f} h"


def _queue(task: str, window_id: int) -> None:
    from controlplane.celery import app

    try:
        app.send_task(task, args=[window_id])
    except Exception:
        # The row is the truth: the beat's pass picks up what was not queued.
        logger.exception("could not queue %s for debug window %s", task, window_id)


def for_incident(incident_id: int) -> list[DebugWindow]:
    """The windows that name an incident: by its id ("12", "#12") or its page's URL."""
    refs = Q(incident_ref__in=[str(incident_id), f"#{incident_id}"]) | Q(
        incident_ref__regex=rf"/incidents/{incident_id}/?$"
    )
    return list(
        DebugWindow.objects.filter(refs)
        .select_related("service", "environment", "instance")
        .prefetch_related("targets")
        .order_by("-opened_at")[:20]
    )
