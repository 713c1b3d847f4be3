"""Scaling's part of /metrics: each scaling group's desired and actual instance counts.
Registered in ScalingConfig.ready; docs/operations.md ("Metrics") lists the label sets."""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import Count, IntegerField, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce
from prometheus_client import Metric

from catalog.models import Instance
from controlplane import metrics
from scaling.choices import TERMINATION_OPEN
from scaling.inputs import POOL_LIFECYCLES
from scaling.models import ScalingGroup, Termination


def groups() -> Iterator[Metric]:
    """One query: every group with its desired count and its members counted in SQL (the
    instances in the pool that are not being terminated, as the autoscaler counts them)."""
    members = (
        Instance.objects.filter(
            service_id=OuterRef("service_id"),
            environment_id=OuterRef("environment_id"),
            lifecycle__in=POOL_LIFECYCLES,
        )
        .exclude(
            pk__in=Termination.objects.filter(state__in=TERMINATION_OPEN).values("instance_id")
        )
        .order_by()
        .values("service_id")
        .annotate(n=Count("id"))
        .values("n")
    )
    rows = (
        ScalingGroup.objects.annotate(
            actual=Coalesce(Subquery(members, output_field=IntegerField()), Value(0))
        )
        .values_list("service__slug", "environment__slug", "desired", "actual", "enabled")
        .order_by("service__slug", "environment__slug")
    )
    labels = ["service", "environment"]
    desired = metrics.gauge(
        "signalbox_scaling_group_desired_instances",
        "Instances each scaling group wants (what the autoscaler or a person last decided).",
        labels,
    )
    actual = metrics.gauge(
        "signalbox_scaling_group_instances",
        "Instances each scaling group has in its pool (launching, registered or active, not"
        " being terminated).",
        labels,
    )
    enabled = metrics.gauge(
        "signalbox_scaling_group_autoscaling_enabled",
        "1 when the group's autoscaling is on, 0 when it holds its desired count.",
        labels,
    )
    for service, environment, want, have, on in rows:
        desired.add_metric([service, environment], want)
        actual.add_metric([service, environment], have)
        enabled.add_metric([service, environment], 1 if on else 0)
    yield desired
    yield actual
    yield enabled


def register() -> None:
    metrics.register("scaling", groups)
