"""Circuit states from a Hystrix event stream (hystrix-metrics-event-stream's SSE format)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from circuits.choices import CircuitState
from circuits.ingest.reports import Report

COMMAND = "HystrixCommand"


def parse_line(line: str) -> dict[str, Any] | None:
    """The JSON of a `data:` line that carries a HystrixCommand, else None (pings, other types)."""
    if not line.startswith("data:"):
        return None
    try:
        event = json.loads(line[5:].strip())
    except ValueError:
        return None
    if not isinstance(event, dict) or event.get("type") != COMMAND or not event.get("name"):
        return None
    return event


def state_of(event: dict[str, Any]) -> str:
    # Hystrix's "force closed" is resilience4j's disabled: calls always go through.
    if event.get("propertyValue_circuitBreakerForceOpen"):
        return CircuitState.FORCED_OPEN
    if event.get("propertyValue_circuitBreakerForceClosed"):
        return CircuitState.DISABLED
    return CircuitState.OPEN if event.get("isCircuitBreakerOpen") else CircuitState.CLOSED


def to_report(
    event: dict[str, Any], *, service: str, environment: str, instance_key: str, at: datetime
) -> Report:
    raw_latency = event.get("latencyExecute")
    latency: dict[str, Any] = raw_latency if isinstance(raw_latency, dict) else {}
    calls = _int(event.get("rollingCountSuccess")) + _int(event.get("rollingCountFailure"))
    calls += _int(event.get("rollingCountTimeout"))
    rejected = sum(
        _int(event.get(k))
        for k in (
            "rollingCountShortCircuited",
            "rollingCountThreadPoolRejected",
            "rollingCountSemaphoreRejected",
        )
    )
    thresholds = {
        "failure_rate": _float(event.get("propertyValue_circuitBreakerErrorThresholdPercentage")),
        "minimum_calls": _float(event.get("propertyValue_circuitBreakerRequestVolumeThreshold")),
        "wait_in_open_ms": _float(
            event.get("propertyValue_circuitBreakerSleepWindowInMilliseconds")
        ),
    }
    return Report(
        service=service,
        environment=environment,
        circuit=str(event["name"])[:200],
        instance_key=instance_key,
        state=state_of(event),
        reported_at=at,
        failure_rate=min(max(_float(event.get("errorPercentage")) or 0.0, 0.0), 100.0),
        calls=calls,
        failed_calls=_int(event.get("rollingCountFailure"))
        + _int(event.get("rollingCountTimeout")),
        rejected_calls=rejected,
        latency_p50_ms=_float(latency.get("50")),
        latency_p99_ms=_float(latency.get("99")),
        thresholds={k: v for k, v in thresholds.items() if v is not None},
    )


def _int(value: Any) -> int:
    return int(value) if isinstance(value, (int, float)) and value >= 0 else 0


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        return None
    return float(value)
