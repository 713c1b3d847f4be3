"""The rules every team gets, created once per team (idempotent: keyed by `default_key`)."""

from __future__ import annotations

from typing import Any

from alerts.choices import RuleKind, Severity
from alerts.rules.slo import PAGE_WINDOWS, TICKET_WINDOWS

ROLLBACK_KEY = "rollout-rolled-back"

# (key, name, kind, severity, production only, params)
DEFAULT_RULES: list[tuple[str, str, str, str, bool, dict[str, Any]]] = [
    (
        "service-down",
        "Service down for 2 minutes",
        RuleKind.SERVICE_STATE,
        Severity.PAGE,
        True,
        {"states": ["down"], "for_seconds": 120},
    ),
    (
        "service-degraded",
        "Service degraded for 10 minutes",
        RuleKind.SERVICE_STATE,
        Severity.TICKET,
        True,
        {"states": ["degraded"], "for_seconds": 600},
    ),
    (
        "service-down-any-env",
        "Service down for 10 minutes (any environment)",
        RuleKind.SERVICE_STATE,
        Severity.INFO,
        False,
        {"states": ["down"], "for_seconds": 600},
    ),
    (
        "instance-flapping",
        "Instance flapping",
        RuleKind.INSTANCE_FLAPPING,
        Severity.INFO,
        False,
        {"transitions": 6, "window_seconds": 900},
    ),
    (
        ROLLBACK_KEY,
        "Rollout rolled back",
        RuleKind.ROLLOUT_OUTCOME,
        Severity.TICKET,
        False,
        {"outcomes": ["rolled_back"]},
    ),
    (
        "rollout-failed",
        "Rollout failed",
        RuleKind.ROLLOUT_OUTCOME,
        Severity.TICKET,
        False,
        {"outcomes": ["failed"]},
    ),
    (
        "rollout-stuck",
        "Rollout stuck for 30 minutes",
        RuleKind.ROLLOUT_STUCK,
        Severity.TICKET,
        False,
        {"for_seconds": 1800},
    ),
    (
        "circuit-open",
        "Circuit open for 5 minutes",
        RuleKind.CIRCUIT_OPEN,
        Severity.TICKET,
        True,
        {"for_seconds": 300},
    ),
    (
        "heartbeat-late",
        "Heartbeat late or failed",
        RuleKind.HEARTBEAT,
        Severity.TICKET,
        False,
        {"on": ["late", "failed"]},
    ),
    (
        "scaling-churn",
        "Scaled 7 times in an hour (a leak?)",
        RuleKind.SCALING_CHURN,
        Severity.TICKET,
        False,
        {"changes": 7, "window_seconds": 3600},
    ),
    (
        "external-outage",
        "External dependency in outage",
        RuleKind.EXTERNAL_STATUS,
        Severity.PAGE,
        False,
        {"states": ["partial_outage", "major_outage"], "dependencies": []},
    ),
    (
        "slo-fast-burn",
        "Availability SLO burning fast (99.9 %)",
        RuleKind.SLO_BURN,
        Severity.PAGE,
        True,
        {"objective": 0.999, "windows": PAGE_WINDOWS},
    ),
    (
        "slo-slow-burn",
        "Availability SLO burning slowly (99.9 %)",
        RuleKind.SLO_BURN,
        Severity.TICKET,
        True,
        {"objective": 0.999, "windows": TICKET_WINDOWS},
    ),
]


def ensure_default_rules(team: Any, rule_model: Any = None) -> int:
    """Create the team's missing default rules; returns how many were created.

    `rule_model` lets the data migration pass its historical model.
    """
    if rule_model is None:
        from alerts.models import Rule as rule_model
    created = 0
    for key, name, kind, severity, production_only, params in DEFAULT_RULES:
        _, made = rule_model.objects.get_or_create(
            team_id=team.pk,
            default_key=key,
            defaults={
                "name": name,
                "kind": kind,
                "severity": severity,
                "production_only": production_only,
                "params": params,
            },
        )
        created += int(made)
    return created
