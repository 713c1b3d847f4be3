"""The Celery app: Redis broker, named queues, late acks, and the beat clock."""

from __future__ import annotations

import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")

app = Celery("signalbox")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = [Queue(name) for name in ("probes", "rollouts", "notify", "default")]
app.conf.task_routes = {
    "health.*": {"queue": "probes"},
    "deployments.*": {"queue": "rollouts"},
    "alerts.*": {"queue": "notify"},
    "circuits.*": {"queue": "default"},
}
# Every beat entry expires: a clock tick nobody ran in time is skipped, not queued up.
app.conf.beat_schedule = {
    "prune-events": {
        "task": "controlplane.tasks.prune_events",
        "schedule": 3600.0,
        "options": {"expires": 600},
    },
    "mark-stale-instances": {
        "task": "catalog.tasks.mark_stale_instances",
        "schedule": 30.0,
        "options": {"expires": 25},
    },
    "alerts-tick": {
        "task": "alerts.tasks.tick",
        "schedule": 1.0,
        "options": {"expires": 5},
    },
    "alerts-catch-up": {
        "task": "alerts.tasks.catch_up",
        "schedule": 10.0,
        "options": {"expires": 30},
    },
    "alerts-recheck": {
        "task": "alerts.tasks.recheck",
        "schedule": 60.0,
        "options": {"expires": 120},
    },
}
app.autodiscover_tasks()
