"""`make run`'s scaling group: seed_scaling after seed_demo and seed_deployments, and the
group scaling search out through the real demo fleet and its HAProxy."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.core.management import call_command

from catalog.choices import Lifecycle
from deployments import demo
from deployments.tests.test_demo import fleet_plan, seeded_demo  # noqa: F401 (fixtures)
from health import scheduler
from health.models import CheckSpec, InstanceCheck
from scaling import lifecycle
from scaling.choices import LaunchState
from scaling.models import Launch, ScalingGroup
from scaling.tests.fleet import until


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_demo_group_scales_search_out_through_the_fleet_and_its_router(
    seeded_demo: dict[str, Any],  # noqa: F811 (the fixture)
    fleet_plan: Path,  # noqa: F811
) -> None:
    # given the demo seeded as make run does, and its scaling group
    out = io.StringIO()
    call_command("seed_scaling", "--fleet", str(fleet_plan), stdout=out)
    assert "created search/production" in out.getvalue()
    call_command("seed_scaling", "--fleet", str(fleet_plan), stdout=io.StringIO())
    group = ScalingGroup.objects.get()
    assert group.metrics.get().source == "request_rate"
    CheckSpec.objects.filter(service=group.service).update(interval_seconds=1)
    # when it wants one instance more
    ScalingGroup.objects.filter(pk=group.pk).update(desired=group.desired + 1,
                                                    readiness_delay_seconds=0)  # fmt: skip

    def step() -> None:
        ids = list(
            InstanceCheck.objects.filter(instance__lifecycle=Lifecycle.LAUNCHING).values_list(
                "pk", flat=True
            )
        )
        if ids:
            scheduler.run_now(ids)
        lifecycle.converge(group.pk)

    launch = until(
        lambda: Launch.objects.filter(group=group, state=LaunchState.IN_SERVICE).first(),
        step, 30, "the new search instance to take traffic",
    )  # fmt: skip
    # then the fleet runs it, and search's HAProxy frontend sends it requests
    port = next(f.port for f in demo.frontends(seeded_demo) if f.service == "search")
    seen = set()
    with httpx.Client(timeout=5) as client:
        for _ in range(40):
            seen.add(client.get(f"http://127.0.0.1:{port}/api/work").json().get("instance"))
    assert launch.driver_ref in seen
