"""The Celery app: Redis broker, named queues, late acks, and the beat clock."""

from __future__ import annotations

import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")

# Broker connections that retry a lost Redis every few seconds (controlplane/broker.py).
app = Celery("signalbox", amqp="controlplane.broker:AMQP")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = [Queue(name) for name in ("probes", "rollouts", "notify", "default")]
app.conf.task_routes = {
    "health.*": {"queue": "probes"},
    "deployments.*": {"queue": "rollouts"},
    "alerts.*": {"queue": "notify"},
    "circuits.*": {"queue": "default"},
    "debugging.*": {"queue": "default"},
    "scaling.*": {"queue": "rollouts"},
}
# Every beat entry expires: a clock tick nobody ran in time is skipped, not queued up.
app.conf.beat_schedule = {
    "claim-due-rollouts": {
        "task": "deployments.tasks.claim_due_rollouts",
        "schedule": 1.0,
        "options": {"expires": 1.0},
    },
    # Routers that lost a rollout's weights (HAProxy restarted) get them back within seconds.
    "reconcile-routers": {
        "task": "deployments.tasks.reconcile_routers",
        "schedule": 2.0,
        "options": {"expires": 2.0},
    },
    # Debug windows that ended are closed, reverted and read back (docs/debugging.md).
    "debugging-tick": {
        "task": "debugging.tasks.tick",
        "schedule": 2.0,
        "options": {"expires": 2.0},
    },
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
    "health-schedule-due": {
        "task": "health.tasks.schedule_due",
        "schedule": 1.0,
        "options": {"expires": 2},
    },
    # External dependencies' status pages and probes (each row has its own interval).
    "health-claim-due-vendors": {
        "task": "health.tasks.claim_due_vendors",
        "schedule": 5.0,
        "options": {"expires": 5},
    },
    "health-mark-late-heartbeats": {
        "task": "health.tasks.mark_late_heartbeats",
        "schedule": 5.0,
        "options": {"expires": 5},
    },
    "health-prune-heartbeat-pings": {
        "task": "health.tasks.prune_heartbeat_pings",
        "schedule": 3600.0,
        "options": {"expires": 1800},
    },
    "health-announce-maintenance": {
        "task": "health.tasks.announce_maintenance",
        "schedule": 15.0,
        "options": {"expires": 15},
    },
    "health-fold-rollups": {
        "task": "health.tasks.fold_rollups",
        "schedule": 60.0,
        "options": {"expires": 50},
    },
    "health-compact-rollups": {
        "task": "health.tasks.compact_rollups",
        "schedule": 600.0,
        "options": {"expires": 300},
    },
    "health-reconcile-checks": {
        "task": "health.tasks.reconcile_checks",
        "schedule": 60.0,
        "options": {"expires": 50},
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
app.conf.beat_schedule.update(
    {
        "circuits-dispatch-scrapes": {
            "task": "circuits.tasks.dispatch_scrapes",
            "schedule": 1.0,
            "options": {"expires": 2},
        },
        "circuits-push-live-tiles": {
            "task": "circuits.tasks.push_live_tiles",
            "schedule": 2.0,
            "options": {"expires": 2},
        },
        "circuits-mark-stale": {
            "task": "circuits.tasks.mark_stale",
            "schedule": 10.0,
            "options": {"expires": 10},
        },
        "circuits-expire-overrides": {
            "task": "circuits.tasks.expire_overrides",
            "schedule": 15.0,
            "options": {"expires": 15},
        },
        "circuits-sync-scrape-targets": {
            "task": "circuits.tasks.sync_scrape_targets",
            "schedule": 60.0,
            "options": {"expires": 50},
        },
        "circuits-prune": {
            "task": "circuits.tasks.prune",
            "schedule": 3600.0,
            "options": {"expires": 600},
        },
    }
)
app.conf.beat_schedule.update(
    {
        "scaling-decide-due": {
            "task": "scaling.tasks.decide_due",
            "schedule": 1.0,
            "options": {"expires": 2},
        },
        "scaling-converge-due": {
            "task": "scaling.tasks.converge_due",
            "schedule": 1.0,
            "options": {"expires": 1},
        },
        "scaling-prune": {
            "task": "scaling.tasks.prune",
            "schedule": 3600.0,
            "options": {"expires": 600},
        },
    }
)
app.conf.beat_schedule.update(
    {
        # Unpaired halves of traced calls expire even while no spans arrive (docs/tracing.md).
        "topology-sweep-unpaired-spans": {
            "task": "topology.ingest.tasks.sweep",
            "schedule": 5.0,
            "options": {"expires": 5},
        },
    }
)
app.autodiscover_tasks()
app.autodiscover_tasks(["topology.ingest"])
