"""Circuit breaker metrics in the two formats Signalbox ingests: Prometheus text with
resilience4j's names, and Hystrix stream events."""

from __future__ import annotations

import time
from typing import Any

from fleet.breaker import CircuitBreaker, CircuitState, Snapshot
from fleet.instance import Instance

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
HYSTRIX_PERCENTILES = ("0", "25", "50", "75", "90", "95", "99", "99.5", "100")


def prometheus(instance: Instance) -> str:
    """The instance's /metrics page."""
    snaps = [b.snapshot() for _, b in sorted(instance.breakers.items())]
    lines: list[str] = []

    def family(name: str, kind: str, help_: str) -> None:
        lines.append(f"# HELP {name} {help_}")
        lines.append(f"# TYPE {name} {kind}")

    spec = instance.spec
    family("fleet_instance_info", "gauge", "The demo instance serving this page")
    lines.append(
        f'fleet_instance_info{{instance_id="{spec.id}",service="{spec.service}",'
        f'environment="{spec.environment}",version="{_escape(spec.version)}",'
        f'zone="{spec.zone}"}} 1'
    )
    family("resilience4j_circuitbreaker_state", "gauge", "The states of the circuit breaker")
    for s in snaps:
        for state in CircuitState:
            value = 1 if s.state is state else 0
            lines.append(
                f'resilience4j_circuitbreaker_state{{name="{s.name}",state="{state.value}"}} '
                f"{value}"
            )
    family(
        "resilience4j_circuitbreaker_failure_rate", "gauge",
        "The failure rate of the circuit breaker (-1 below the minimum number of calls)",
    )
    for s in snaps:
        lines.append(f'resilience4j_circuitbreaker_failure_rate{{name="{s.name}"}} '
                     f"{s.failure_rate}")
    family(
        "resilience4j_circuitbreaker_slow_call_rate", "gauge",
        "The slow call rate of the circuit breaker (-1 below the minimum number of calls)",
    )
    for s in snaps:
        lines.append(f'resilience4j_circuitbreaker_slow_call_rate{{name="{s.name}"}} '
                     f"{s.slow_call_rate}")
    family("resilience4j_circuitbreaker_buffered_calls", "gauge",
           "The number of buffered calls in the rolling window")
    for s in snaps:
        for kind, count in (("successful", s.successes), ("failed", s.failures)):
            lines.append(f'resilience4j_circuitbreaker_buffered_calls{{kind="{kind}",'
                         f'name="{s.name}"}} {count}')
    family("resilience4j_circuitbreaker_calls_seconds", "summary",
           "Total number of calls which finished, by outcome")
    for s in snaps:
        for kind, count, seconds in (
            ("successful", s.total_successes, s.total_success_seconds),
            ("failed", s.total_failures, s.total_failure_seconds),
        ):
            labels = f'kind="{kind}",name="{s.name}"'
            lines.append(f"resilience4j_circuitbreaker_calls_seconds_count{{{labels}}} {count}")
            lines.append(
                f"resilience4j_circuitbreaker_calls_seconds_sum{{{labels}}} {seconds:.6f}"
            )
    family("resilience4j_circuitbreaker_not_permitted_calls_total", "counter",
           "Total number of not permitted calls")
    for s in snaps:
        lines.append(f'resilience4j_circuitbreaker_not_permitted_calls_total{{name="{s.name}"}} '
                     f"{s.total_not_permitted}")
    return "\n".join(lines) + "\n"


def hystrix_command(instance: Instance, breaker: CircuitBreaker) -> dict[str, Any]:
    """One HystrixCommand event as hystrix-metrics-event-stream writes it."""
    s: Snapshot = breaker.snapshot()
    calls = s.successes + s.failures
    latencies = {p: round(1000 * s.latency_percentile(float(p))) for p in HYSTRIX_PERCENTILES}
    mean = round(1000 * sum(s.latencies) / len(s.latencies)) if s.latencies else 0
    config = breaker.config
    return {
        "type": "HystrixCommand",
        "name": s.name,
        "group": instance.spec.service,
        "currentTime": int(time.time() * 1000),
        "isCircuitBreakerOpen": s.state in (CircuitState.OPEN, CircuitState.FORCED_OPEN),
        "errorPercentage": round(100 * s.failures / calls) if calls else 0,
        "errorCount": s.failures,
        "requestCount": calls + s.not_permitted,
        "rollingCountSuccess": s.successes,
        "rollingCountFailure": s.failures,
        "rollingCountShortCircuited": s.not_permitted,
        "rollingCountTimeout": 0,
        "rollingCountThreadPoolRejected": 0,
        "rollingCountSemaphoreRejected": 0,
        "rollingCountFallbackSuccess": s.failures + s.not_permitted,
        "rollingCountFallbackFailure": 0,
        "rollingCountExceptionsThrown": 0,
        "currentConcurrentExecutionCount": 0,
        "latencyExecute_mean": mean,
        "latencyExecute": latencies,
        "latencyTotal_mean": mean,
        "latencyTotal": latencies,
        "propertyValue_circuitBreakerRequestVolumeThreshold": config.minimum_calls,
        "propertyValue_circuitBreakerSleepWindowInMilliseconds": int(config.wait_in_open * 1000),
        "propertyValue_circuitBreakerErrorThresholdPercentage": int(config.failure_rate_threshold),
        "propertyValue_circuitBreakerForceOpen": s.state is CircuitState.FORCED_OPEN,
        "propertyValue_circuitBreakerForceClosed": s.state is CircuitState.DISABLED,
        "propertyValue_metricsRollingStatisticalWindowInMilliseconds":
            config.window_seconds * 1000,
        "reportingHosts": 1,
    }


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
