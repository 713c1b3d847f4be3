"""Named states and kinds of circuits; call sites never use the bare strings."""

from __future__ import annotations

from django.db import models

from controlplane.events import EventNames


class CircuitState(models.TextChoices):
    """What one instance's breaker reports (resilience4j's six states)."""

    CLOSED = "closed", "Closed"
    OPEN = "open", "Open"
    HALF_OPEN = "half_open", "Half open"
    FORCED_OPEN = "forced_open", "Forced open"
    DISABLED = "disabled", "Disabled"
    METRICS_ONLY = "metrics_only", "Metrics only"


class AggregateState(models.TextChoices):
    """A circuit across its instances: the worst fresh state, or stale when none is fresh."""

    CLOSED = "closed", "Closed"
    OPEN = "open", "Open"
    HALF_OPEN = "half_open", "Half open"
    FORCED_OPEN = "forced_open", "Forced open"
    DISABLED = "disabled", "Disabled"
    METRICS_ONLY = "metrics_only", "Metrics only"
    STALE = "stale", "Stale"


# How bad each state is: the aggregate is the worst fresh state, the grid sorts by it.
# Stale ranks above closed: no data is never shown as good news.
SEVERITY: dict[str, int] = {
    AggregateState.OPEN: 60,
    AggregateState.FORCED_OPEN: 50,
    AggregateState.HALF_OPEN: 40,
    AggregateState.STALE: 30,
    AggregateState.DISABLED: 20,
    AggregateState.METRICS_ONLY: 10,
    AggregateState.CLOSED: 0,
}

STATES_BY_SEVERITY = sorted(SEVERITY, key=lambda state: -SEVERITY[state])

# States in which the breaker refuses calls.
REJECTING_STATES = (CircuitState.OPEN, CircuitState.FORCED_OPEN)


class OverrideState(models.TextChoices):
    """What an operator forces a circuit to."""

    FORCED_OPEN = "forced_open", "Forced open"
    FORCED_CLOSED = "forced_closed", "Forced closed"


class Source(models.TextChoices):
    """How a state reached us."""

    PUSH = "push", "Pushed by the service"
    PROMETHEUS = "prometheus", "Scraped from Prometheus exposition"
    HYSTRIX = "hystrix", "Read from a Hystrix stream"


class ScrapeKind(models.TextChoices):
    PROMETHEUS = "prometheus", "Prometheus exposition (resilience4j names)"
    HYSTRIX = "hystrix", "Hystrix event stream"


class TargetOrigin(models.TextChoices):
    """Where a scrape target came from."""

    LABELS = "labels", "Derived from the instance's labels"
    MANUAL = "manual", "Added through the API"


class CircuitEvent(EventNames):
    """Event actions this app publishes (its contract with pages, alert rules, the log)."""

    FAMILY = "circuit."
    UPDATED = "circuit.updated"  # an operator changed a circuit's settings
    OPENED = "circuit.opened"
    CLOSED = "circuit.closed"
    HALF_OPENED = "circuit.half_opened"
    STALE = "circuit.stale"
    OVERRIDE_SET = "circuit.override_set"
    OVERRIDE_CLEARED = "circuit.override_cleared"


class ScrapeTargetEvent(EventNames):
    FAMILY = "scrape_target."
    CREATED = "scrape_target.created"
    UPDATED = "scrape_target.updated"
    DELETED = "scrape_target.deleted"


SCRAPE_TARGET_EVENTS = ScrapeTargetEvent.resource("scrape target")


# Instance labels that make a scrape target of an instance (values: a path on the instance).
LABEL_PROMETHEUS_PATH = "circuits.prometheus_path"
LABEL_HYSTRIX_PATH = "circuits.hystrix_path"
