"""An instance's `/health` document in application/health+json
(draft-inadarei-api-health-check): status, version, checks per component."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from fleet.breaker import CircuitBreaker, CircuitState
from fleet.faults import HealthStatus
from fleet.instance import MEMORY_LIMIT_MB, Instance
from fleet.plan import ServiceSpec

MEMORY_WARN_PERCENT = 80.0
MEMORY_FAIL_PERCENT = 95.0
# Own error rate at which an instance calls itself degraded; never fail, so a load
# balancer keeps sending it traffic and the canary's errors show in the LB's stats.
ERROR_RATE_WARN_PERCENT = 10.0
ERROR_RATE_MIN_CALLS = 10
CONTENT_TYPE = "application/health+json"

_WORST = {HealthStatus.PASS: 0, HealthStatus.WARN: 1, HealthStatus.FAIL: 2}
_CIRCUIT_HEALTH = {
    CircuitState.CLOSED: HealthStatus.PASS,
    CircuitState.DISABLED: HealthStatus.PASS,
    CircuitState.METRICS_ONLY: HealthStatus.PASS,
    CircuitState.HALF_OPEN: HealthStatus.WARN,
    # Open circuits have fallbacks: the instance still answers, degraded.
    CircuitState.OPEN: HealthStatus.WARN,
    CircuitState.FORCED_OPEN: HealthStatus.WARN,
}


def health_document(instance: Instance, service: ServiceSpec) -> tuple[dict[str, Any], int]:
    """The document and its HTTP status: 200 for pass and warn, 503 for fail."""
    now = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    checks: dict[str, list[dict[str, Any]]] = {
        "uptime": [{
            "componentType": "system",
            "observedValue": round(time.time() - instance.started_at, 1),
            "observedUnit": "s",
            "status": HealthStatus.PASS,
            "time": now,
        }],
        "memory:utilization": [_memory(instance, now)],
        "api:errorRate": [_error_rate(instance, now)],
    }
    for name, breaker in sorted(instance.breakers.items()):
        external = name in service.external
        checks[f"{name}:responseTime"] = [_dependency(breaker, external, now)]
    status = max((entries[0]["status"] for entries in checks.values()), key=_WORST.__getitem__)
    document: dict[str, Any] = {
        "status": status.value,
        "version": instance.version,
        "releaseId": instance.version,
        "serviceId": instance.spec.service,
        "instanceId": instance.id,
        "description": f"{service.name} in {instance.spec.environment} ({instance.spec.zone})",
        "checks": checks,
        "links": {"about": "/", "version": "/version"},
    }
    forced = instance.faults.health
    if forced is not None:
        status = forced
        document["status"] = forced.value
        document["output"] = f"status forced to {forced.value} by fault injection"
    return document, 503 if status is HealthStatus.FAIL else 200


def _memory(instance: Instance, now: str) -> dict[str, Any]:
    percent = round(100 * instance.memory_mb / MEMORY_LIMIT_MB, 1)
    status = HealthStatus.PASS
    if percent >= MEMORY_FAIL_PERCENT:
        status = HealthStatus.FAIL
    elif percent >= MEMORY_WARN_PERCENT:
        status = HealthStatus.WARN
    entry: dict[str, Any] = {
        "componentType": "system",
        "observedValue": percent,
        "observedUnit": "percent",
        "status": status,
        "time": now,
        "output": f"{instance.memory_mb:.0f} MB of {MEMORY_LIMIT_MB} MB",
    }
    return entry


def _error_rate(instance: Instance, now: str) -> dict[str, Any]:
    calls, errors = instance.calls.totals()
    percent = round(100 * errors / calls, 1) if calls else 0.0
    degraded = calls >= ERROR_RATE_MIN_CALLS and percent >= ERROR_RATE_WARN_PERCENT
    return {
        "componentType": "component",
        "observedValue": percent,
        "observedUnit": "percent",
        "status": HealthStatus.WARN if degraded else HealthStatus.PASS,
        "time": now,
        "output": f"{errors} of {calls} calls failed in the last 60 s",
    }


def _dependency(breaker: CircuitBreaker, external: bool, now: str) -> dict[str, Any]:
    state = breaker.state
    entry: dict[str, Any] = {
        "componentId": breaker.name,
        "componentType": "external" if external else "component",
        "status": _CIRCUIT_HEALTH[state],
        "time": now,
        "output": f"circuit {state.value}",
    }
    mean = breaker.mean_latency()
    if mean is not None:
        entry["observedValue"] = round(1000 * mean, 1)
        entry["observedUnit"] = "ms"
    return entry
