"""Named kinds of the dependency map: where an edge was learnt, how bad an edge looks."""

from __future__ import annotations

from django.db import models


class EdgeSource(models.TextChoices):
    """Where the map learnt that one node calls another."""

    DECLARED = "declared", "Declared in the catalog"
    CIRCUIT = "circuit", "A circuit breaker guards the calls"
    TRACE = "trace", "Seen in traces (last 15 minutes)"


class EdgeLevel(models.TextChoices):
    """How an edge is drawn: its circuit state first, then its error rate."""

    OPEN = "open", "Circuit open"
    HALF_OPEN = "half_open", "Circuit half open"
    FAILING = "failing", "Error rate at or above 5%"
    ERRORS = "errors", "Error rate at or above 1%"
    OK = "ok", "Calls succeed"
    QUIET = "quiet", "No calls seen"


# Error rates (percent) at which an edge turns amber, then red.
ERRORS_AT_PERCENT = 1.0
FAILING_AT_PERCENT = 5.0
