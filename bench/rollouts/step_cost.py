"""Benchmark: what one reconciler step costs, with and without the spine's live broadcast.

Runs `reconciler.advance` in this process for 100 rollouts of `set_weight` steps against a
real HAProxy, three ways: as in production (every app's live renderers run on commit),
with only the deployments renderers, and with no broadcast at all. Prints wall and CPU
milliseconds per step, so bench/rollouts/run.py's figures can be read.

    DATABASE_URL=... REDIS_URL=... .venv/bin/python bench/rollouts/step_cost.py
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")

ROLLOUTS = 100


def main() -> None:
    import run as bench

    bench.ensure_database()
    import django

    django.setup()
    from django.core.management import call_command
    from django.utils import timezone

    call_command("migrate", verbosity=0)
    from catalog.models import Environment, Instance, Service, Team
    from catalog.permissions import Access
    from controlplane import live
    from deployments import actions, reconciler
    from deployments.models import Rollout, TrafficRoute, TrafficRouter
    from deployments.reconciler import runs

    haproxy, sock = bench.start_haproxy(Path(tempfile.mkdtemp(prefix="step-cost-")), ROLLOUTS)
    team = Team.objects.create(slug="bench-step-cost", name="Bench")
    env, _ = Environment.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
    router = TrafficRouter.objects.create(
        name="bench-step-cost", kind="haproxy", connection={"socket": sock}
    )
    ids = []
    try:
        for index in range(ROLLOUTS):
            service = Service.objects.create(slug=f"cost-{index:03d}", name="c", team=team)
            for port, version in ((20000 + index, "1.0"), (30000 + index, "2.0")):
                Instance.objects.create(
                    service=service, environment=env, host="127.0.0.1", port=port, version=version
                )
            TrafficRoute.objects.create(
                router=router,
                service=service,
                environment=env,
                backend=f"be_{index:03d}",
                add_missing_servers=False,
            )
            rollout, _ = actions.start_rollout(
                access=Access(user=bench._bench_user()),
                service=service,
                environment=env,
                version="2.0",
                steps=[{"set_weight": w} for w in range(2, 100, 2)],
            )
            ids.append(rollout.pk)

        def batched(chained: int) -> tuple[float, float]:
            # advance_batch's path: one advance_many over every id (the step after each is
            # due at once, so it is chained in the run or handed back to the beat).
            before = runs.CHAINED_STEPS
            runs.CHAINED_STEPS = chained
            try:
                wall, cpu = time.perf_counter(), time.process_time()
                Rollout.objects.filter(pk__in=ids).update(next_action_at=timezone.now())
                done = reconciler.advance_many(ids, max_runs=len(ids))
                count = sum(len(outcome.steps) for _, outcome in done.runs)
            finally:
                runs.CHAINED_STEPS = before
            return (
                (time.perf_counter() - wall) * 1000 / count,
                (time.process_time() - cpu) * 1000 / count,
            )

        def steps() -> tuple[float, float]:
            wall, cpu = time.perf_counter(), time.process_time()
            for rollout_id in ids:
                Rollout.objects.filter(pk=rollout_id).update(next_action_at=timezone.now())
                reconciler.advance(rollout_id)
            return (
                (time.perf_counter() - wall) * 1000 / len(ids),
                (time.process_time() - cpu) * 1000 / len(ids),
            )

        everything = list(live._renderers)
        ours = [(p, f) for p, f in everything if f.__module__ == "deployments.live"]
        variants: list[tuple[str, Callable[[], Any]]] = [
            (
                "every app's live renderers (production)",
                lambda: live._renderers.__setitem__(slice(None), everything),
            ),
            (
                "only the deployments renderers",
                lambda: live._renderers.__setitem__(slice(None), ours),
            ),
            ("no live renderers", lambda: live._renderers.__setitem__(slice(None), [])),
        ]
        live._discover()
        steps()  # warm up: templates, connections
        print(
            f"machine: {platform.platform()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}"
        )
        for label, apply in variants:
            apply()
            wall, cpu = steps()
            print(f"{label}: {wall:.1f} ms wall, {cpu:.1f} ms CPU per step")
        live._renderers[:] = everything
        for label, chained in (
            ("in one batch (advance_many), one step a run", 0),
            (f"in one batch, up to {runs.CHAINED_STEPS + 1} steps a run", runs.CHAINED_STEPS),
        ):
            wall, cpu = batched(chained)
            print(f"{label}: {wall:.1f} ms wall, {cpu:.1f} ms CPU per step")
    finally:
        haproxy.terminate()
        Rollout.objects.filter(team=team).delete()
        TrafficRoute.objects.filter(service__team=team).delete()
        Service.objects.filter(team=team).delete()
        team.delete()
        router.delete()


if __name__ == "__main__":
    main()
