"""Celery entry points for alerting: thin, take ids, tolerate rows that are gone."""

from __future__ import annotations

import os
import socket

from celery import shared_task

from alerts import evaluation, outbox

WORKER = f"{socket.gethostname()}:{os.getpid()}"


@shared_task(name="alerts.tasks.evaluate", acks_late=True)
def evaluate(event_id: int) -> bool:
    """The spine hands every committed event here."""
    return evaluation.evaluate_event(event_id)


@shared_task(name="alerts.tasks.deliver", acks_late=True)
def deliver(notification_id: int) -> bool:
    """Claim one outbox row and send it; a row someone else holds is left alone."""
    return outbox.deliver(notification_id, WORKER)


@shared_task(name="alerts.tasks.tick")
def tick() -> int:
    """Every second: pending incidents, repeats, escalation; then hand out due outbox rows."""
    evaluation.tick()
    due = outbox.due_ids()
    for notification_id in due:
        outbox.dispatch(notification_id)
    return len(due)


@shared_task(name="alerts.tasks.catch_up")
def catch_up() -> int:
    """Evaluate events whose hand-off was lost."""
    return evaluation.catch_up()


@shared_task(name="alerts.tasks.recheck")
def recheck() -> None:
    """Level-triggered safety net over open incidents, and the clock-driven rules (SLO)."""
    evaluation.recheck_open()
    evaluation.sweep_rules()
    evaluation.prune_marks()
