"""The circuits' rows of the permission matrix (see catalog/tests/matrix.py, docs/api.md)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone

from catalog.tests.matrix import READERS, Case, Row, allow, read
from circuits.models import Circuit, CircuitOverride, ScrapeTarget

# Who may report for the world's team's services: deployers and owners, admins, and a
# payments token with `report`.
REPORTERS = ("deployer", "owner", "admin", "token:report")
# Who may force a payments circuit: its deployers and owners, admins, a `deploy` token.
OVERRIDERS = ("deployer", "owner", "admin", "token:deploy")
# Who may change payments' circuit settings and scrape targets: owners, admins, `write`.
WRITERS = ("owner", "admin", "token:write")


def a_circuit(case: Case) -> None:
    case.made["circuit"] = Circuit.objects.create(
        service=case.world.service, environment=case.world.production, name="payments-api"
    )


def an_override(case: Case) -> None:
    case.made["override"] = CircuitOverride.objects.create(
        service=case.world.service,
        circuit_name="payments-api",
        state="forced_open",
        reason="matrix",
        expires_at=timezone.now() + timedelta(hours=1),
        created_by_label="owner",
    )


def a_target(case: Case) -> None:
    case.made["target"] = ScrapeTarget.objects.create(
        kind="prometheus",
        url="http://10.0.0.5:8080/metrics",
        service=case.world.service,
        environment=case.world.production,
        instance_key="10.0.0.5:8080",
    )


def made(name: str) -> Any:
    return lambda c: {"pk": c.made[name].pk}


def a_batch(case: Case) -> dict[str, Any]:
    return {
        "service": "checkout",
        "environment": "production",
        "instance": "10.0.0.5:8080",
        "reports": [
            {
                "circuit": "payments-api",
                "state": "closed",
                "reported_at": timezone.now().isoformat(),
            }
        ],
    }


PERMISSION_MATRIX = [
    Row("circuit-reports", "POST", allow(*REPORTERS, status=202), body=a_batch),
    Row("circuit-list", "GET", read()),
    Row("circuit-detail", "GET", read(), kwargs=made("circuit"), setup=a_circuit),
    Row(
        "circuit-detail",
        "PATCH",
        allow(*WRITERS),
        kwargs=made("circuit"),
        setup=a_circuit,
        body=lambda c: {"protects": "indexer"},
    ),
    Row("circuit-history", "GET", read(), kwargs=made("circuit"), setup=a_circuit),
    # Services poll their overrides with the one `report` token they hold.
    Row(
        "circuit-override-list",
        "GET",
        allow(*READERS, "token:report"),
        query="service=checkout&environment=production",
    ),
    Row(
        "circuit-override-list",
        "POST",
        allow(*OVERRIDERS, status=201),
        body=lambda c: {
            "service": "checkout",
            "circuit": "payments-api",
            "state": "forced_open",
            "reason": "matrix",
            "ttl_seconds": 600,
        },
    ),
    Row(
        "circuit-override-detail",
        "DELETE",
        allow(*OVERRIDERS, status=204),
        kwargs=made("override"),
        setup=an_override,
    ),
    Row("scrape-target-list", "GET", read()),
    Row(
        "scrape-target-list",
        "POST",
        allow(*WRITERS, status=201),
        body=lambda c: {
            "kind": "prometheus",
            "url": "http://10.0.0.6:8080/metrics",
            "service": "checkout",
            "environment": "production",
        },
    ),
    Row("scrape-target-detail", "GET", read(), kwargs=made("target"), setup=a_target),
    Row(
        "scrape-target-detail",
        "PATCH",
        allow(*WRITERS),
        kwargs=made("target"),
        setup=a_target,
        body=lambda c: {"interval_seconds": 30},
    ),
    Row(
        "scrape-target-detail",
        "DELETE",
        allow(*WRITERS, status=204),
        kwargs=made("target"),
        setup=a_target,
    ),
    Row("dependencies", "GET", read()),
]
