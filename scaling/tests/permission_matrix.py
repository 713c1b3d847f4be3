"""Scaling's rows of the permission matrix (see catalog/tests/matrix.py, docs/api.md)."""

from __future__ import annotations

from typing import Any

from catalog.choices import Lifecycle
from catalog.models import Instance
from catalog.tests.matrix import READERS, Case, Row, allow, read
from deployments.choices import RouterKind
from deployments.models import TrafficRoute, TrafficRouter
from scaling.choices import TerminationState
from scaling.models import ScalingGroup, ScalingMetric, Termination

# Who may change payments' groups: owners, admins, a `write` token.
WRITERS = ("owner", "admin", "token:write")
# Who may act on them (desired, pause, resume, restart): deployers and up, a `deploy` token.
ACTORS = ("deployer", "owner", "admin", "token:deploy")
# Who may report an instance's metrics: deployers and up, a `report` token.
REPORTERS = ("deployer", "owner", "admin", "token:report")


def a_route(case: Case) -> None:
    router = TrafficRouter.objects.create(
        name="matrix-haproxy", kind=RouterKind.HAPROXY, connection={"socket": "/nonexistent"}
    )
    TrafficRoute.objects.create(
        router=router,
        service=case.world.service,
        environment=case.world.production,
        backend="be_checkout",
    )


def a_group(case: Case) -> None:
    a_route(case)
    group = ScalingGroup.objects.create(
        service=case.world.service,
        environment=case.world.production,
        driver="process",
        driver_config={"control_url": "http://127.0.0.1:7900"},
        min_instances=1,
        max_instances=5,
        desired=1,
    )
    ScalingMetric.objects.create(group=group, source="cpu", target=60)
    case.made["group"] = group


def an_instance(case: Case) -> None:
    case.made["instance"] = Instance.objects.create(
        service=case.world.service, environment=case.world.production, host="10.0.0.9", port=80
    )


def a_draining_instance(case: Case) -> None:
    """An instance chosen for scale-in, asked to say when it is ready."""
    a_group(case)
    an_instance(case)
    instance = case.made["instance"]
    Instance.objects.filter(pk=instance.pk).update(lifecycle=Lifecycle.DRAINING)
    Termination.objects.create(
        group=case.made["group"],
        instance=instance,
        instance_label=str(instance),
        state=TerminationState.AWAITING_READY,
    )


def instance_pk(case: Case) -> dict[str, Any]:
    return {"pk": case.made["instance"].pk}


def group_pk(case: Case) -> dict[str, Any]:
    return {"pk": case.made["group"].pk}


def new_group(case: Case) -> dict[str, Any]:
    return {
        "service": "checkout",
        "environment": "production",
        "driver": "process",
        "driver_config": {"control_url": "http://127.0.0.1:7900"},
        "min_instances": 1,
        "max_instances": 4,
        "metrics": [{"source": "cpu", "target": 60}],
    }


PERMISSION_MATRIX = [
    Row("scaling-group-list", "GET", read()),
    Row("scaling-group-list", "POST", allow(*WRITERS, status=201), setup=a_route, body=new_group),
    Row("scaling-group-detail", "GET", read(), kwargs=group_pk, setup=a_group),
    Row(
        "scaling-group-detail",
        "PATCH",
        allow(*WRITERS),
        kwargs=group_pk,
        setup=a_group,
        body=lambda c: {"max_instances": 6},
    ),
    Row(
        "scaling-group-detail",
        "DELETE",
        allow(*WRITERS, status=204),
        kwargs=group_pk,
        setup=a_group,
    ),
    *[
        Row(f"scaling-group-{name}", "GET", read(), kwargs=group_pk, setup=a_group)
        for name in ("decisions", "launches", "terminations")
    ],
    Row(
        "scaling-group-set-desired",
        "POST",
        allow(*ACTORS),
        kwargs=group_pk,
        setup=a_group,
        body=lambda c: {"desired": 2},
    ),
    *[
        Row(f"scaling-group-{name}", "POST", allow(*ACTORS), kwargs=group_pk, setup=a_group)
        for name in ("pause", "resume", "restart")
    ],
    Row(
        "metrics-report",
        "POST",
        allow(*REPORTERS, status=202),
        setup=an_instance,
        body=lambda c: {
            "metrics": [{"instance": c.made["instance"].pk, "name": "cpu_percent", "value": 42}]
        },
    ),
    # The handshake: instances poll with `report` (or anyone who may read), answer with it.
    Row(
        "instance-lifecycle",
        "GET",
        allow(*READERS, "token:report"),
        kwargs=instance_pk,
        setup=a_draining_instance,
    ),
    *[
        Row(name, "POST", allow(*REPORTERS), kwargs=instance_pk, setup=a_draining_instance)
        for name in ("instance-ready-to-terminate", "instance-lifecycle-heartbeat")
    ],
    *[
        Row("instance-protection", method, allow(*REPORTERS), kwargs=instance_pk, setup=an_instance)
        for method in ("POST", "DELETE")
    ],
]
