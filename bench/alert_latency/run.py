"""Alert latency: from a health transition published on the spine to the webhook POST.

Starts a real Celery worker (with its embedded beat) on the `notify` queue and a webhook
receiver on loopback, then repeatedly publishes `health.service.changed` to "down" (and back
to "healthy") for a service whose team routes pages to the webhook with group wait 0. Prints
p50/p95/max of trigger and resolve latency, and the machine it ran on.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/signalbox_alerts \\
    REDIS_URL=redis://127.0.0.1:6379/8 .venv/bin/python bench/alert_latency/run.py --runs 50
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")


class Receiver:
    """Webhook receiver on 127.0.0.1: notes when each (incident, action) POST arrives."""

    def __init__(self) -> None:
        self.arrivals: dict[tuple[int, str], float] = {}
        self.port = 0
        self.ready = threading.Event()

    async def handle(self, request: Any) -> Any:
        from aiohttp import web

        body = json.loads(await request.read())
        now = time.time()
        for incident in body["incidents"]:
            self.arrivals.setdefault((incident["id"], body["action"]), now)
        return web.Response(text="ok")

    def run(self) -> None:
        from aiohttp import web

        async def main() -> None:
            app = web.Application()
            app.router.add_post("/hook", self.handle)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self.port = runner.addresses[0][1]
            self.ready.set()
            await asyncio.Event().wait()

        asyncio.run(main())

    def wait(self, key: tuple[int, str], timeout: float) -> float | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if key in self.arrivals:
                return self.arrivals[key]
            time.sleep(0.002)
        return None


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def machine() -> str:
    cpu = platform.processor() or "unknown cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args()

    import django

    django.setup()
    from django.db import transaction

    from alerts.choices import ChannelKind, RuleKind, Severity
    from alerts.models import Channel, Incident, Route, Rule
    from catalog.models import Environment, Service, Team
    from controlplane.celery import app
    from controlplane.events import publish

    receiver = Receiver()
    threading.Thread(target=receiver.run, daemon=True).start()
    receiver.ready.wait(10)

    stamp = str(int(time.time()))
    team = Team.objects.create(slug=f"bench-{stamp}", name="Alert latency bench")
    Rule.objects.filter(team=team).update(enabled=False)  # only the rule under test
    env, _ = Environment.objects.get_or_create(
        slug="production", defaults={"name": "Production", "order": 20, "is_production": True}
    )
    service = Service.objects.create(slug=f"bench-{stamp}", name="Bench", team=team)
    Rule.objects.create(
        team=team,
        name="down now",
        kind=RuleKind.SERVICE_STATE,
        severity=Severity.PAGE,
        params={"states": ["down"], "for_seconds": 0},
    )
    channel = Channel.objects.create(
        team=team,
        name="hook",
        kind=ChannelKind.WEBHOOK,
        url=f"http://127.0.0.1:{receiver.port}/hook",
        secret="bench-signing-secret-0123",  # noqa: S106 (a throwaway bench secret)
    )
    Route.objects.create(team=team, severity=Severity.PAGE, channel=channel, group_wait_seconds=0)
    app.control.purge()

    var = ROOT / "var" / "bench"
    var.mkdir(parents=True, exist_ok=True)
    worker = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "celery"),
            "-A",
            "controlplane",
            "worker",
            "-B",
            "-Q",
            "notify",
            "--concurrency",
            str(args.concurrency),
            "--loglevel",
            "WARNING",
            "--schedule",
            str(var / f"beat-{stamp}"),
            "-n",
            f"bench-{stamp}@%h",
        ],
        cwd=ROOT,
    )
    try:
        print(f"waiting for the Celery worker (pid {worker.pid}) ...", flush=True)
        deadline = time.monotonic() + 60
        while not app.control.ping(timeout=0.5):
            if time.monotonic() > deadline or worker.poll() is not None:
                raise SystemExit("the Celery worker did not start; run it by hand to see why")
        triggers: list[float] = []
        resolves: list[float] = []
        lost = 0
        for run in range(args.runs + 2):  # two warm-up runs, not counted
            for to, action, sink in (
                ("down", "trigger", triggers),
                ("healthy", "resolve", resolves),
            ):
                started = time.time()
                with transaction.atomic():
                    publish(
                        "health.service.changed",
                        subject=service,
                        environment=env,
                        payload={
                            "from": "?",
                            "to": to,
                            "reason": f"bench {run}",
                            "in_maintenance": False,
                        },
                    )
                incident = wait_for_incident(Incident, service, action)
                arrived = (
                    receiver.wait((incident.pk, action), 10.0) if incident is not None else None
                )
                if arrived is None:
                    lost += 1
                    continue
                if run >= 2:
                    sink.append(arrived - started)
        report(triggers, resolves, lost, args)
    finally:
        worker.terminate()
        worker.wait(20)


def wait_for_incident(incident_model: Any, service: Any, action: str) -> Any:
    deadline = time.monotonic() + 10
    state = "firing" if action == "trigger" else "resolved"
    while time.monotonic() < deadline:
        incident = incident_model.objects.filter(service=service).order_by("-id").first()
        if incident is not None and (incident.state == state or action == "resolve"):
            if action == "trigger" and incident.state == "firing":
                return incident
            if action == "resolve" and incident.state == "resolved":
                return incident
        time.sleep(0.002)
    return None


def report(triggers: list[float], resolves: list[float], lost: int, args: Any) -> None:
    print(f"machine: {machine()}")
    print(
        f"runs: {args.runs} (after 2 warm-up), worker concurrency {args.concurrency}, "
        f"group wait 0, lost: {lost}"
    )
    for name, values in (("trigger", triggers), ("resolve", resolves)):
        if not values:
            print(f"{name}: no samples")
            continue
        ms = [v * 1000 for v in values]
        print(
            f"{name}: p50 {statistics.median(ms):.0f} ms, p95 {percentile(ms, 0.95):.0f} ms, "
            f"max {max(ms):.0f} ms (n={len(ms)})"
        )


if __name__ == "__main__":
    main()
