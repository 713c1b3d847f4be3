"""(a), (b), (c): real scale-ups and scale-downs of the demo fleet's checkout behind a real
HAProxy, with the `process` driver, a real Signalbox web server (uvicorn: the metrics the
instances report and their ready-to-terminate answers) and steady traffic.

One cycle: the instances report CPU above the group's target (t0) -> the autoscaler decides
3 -> a launch -> healthy -> into HAProxy -> HAProxy's own counters show the new server's
first session. Then CPU below the target -> the autoscaler decides 2 -> a victim drained,
the drain confirmed from HAProxy's counters, the instance told, it says ready-to-terminate
-> stopped. The workers' passes run in a thread at the beat's period (1 s), exactly the task
bodies: scaling.tasks.decide_due, health's claim_due + run_batch, and converge_due's claims
with one converge each (inline instead of through the broker).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from bench.scaling.common import ROOT, percentile

PREFIX = "bench-scaling-rig"
BEAT_SECONDS = 1.0  # the beat's period for decide_due, converge_due and the probes
HIGH_CPU, LOW_CPU, TARGET_CPU = 90.0, 20.0, 60.0
REPORT_ATTEMPTS = 5


@dataclass
class Traffic:
    """Open-loop requests through HAProxy from a few threads; every non-2xx answer and every
    connection error is a failure, counted here by the client itself."""

    url: str
    rate: float
    threads: int = 4
    ok: int = 0
    failures: list[str] = field(default_factory=list)
    served: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)

    def start(self) -> Traffic:
        for n in range(self.threads):
            thread = threading.Thread(target=self._run, args=(n,), daemon=True)
            thread.start()
            self._workers.append(thread)
        return self

    def _run(self, n: int) -> None:
        every = self.threads / self.rate
        due = time.monotonic() + n * every / self.threads
        with httpx.Client(timeout=5) as client:
            while not self._stop.is_set():
                try:
                    answer = client.get(self.url + "api/work")
                    if 200 <= answer.status_code < 300:
                        instance = str(answer.json().get("instance"))
                        with self._lock:
                            self.ok += 1
                            self.served[instance] += 1
                    else:
                        with self._lock:
                            self.failures.append(f"{answer.status_code}: {answer.text[:100]}")
                except (httpx.HTTPError, ValueError) as exc:
                    with self._lock:
                        self.failures.append(f"{type(exc).__name__}: {exc}")
                due += every
                time.sleep(max(0.0, due - time.monotonic()))

    @property
    def total(self) -> int:
        return self.ok + len(self.failures)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._workers:
            thread.join(10)


class Workers:
    """What the Celery worker does at each beat, in a thread of this process."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        from django.db import connection

        from health import scheduler
        from health.probes.runtime import reset_runtime
        from scaling import lifecycle, tasks

        try:
            while not self.stop.is_set():
                began = time.monotonic()
                tasks.decide_due()
                claim = scheduler.claim_due()
                if claim.ids:
                    scheduler.run_batch(claim.ids, claim.lease_until)
                for group_id in lifecycle.claim_due():
                    lifecycle.converge(group_id)
                self.stop.wait(max(0.0, BEAT_SECONDS - (time.monotonic() - began)))
        except BaseException as exc:  # surfaced by the run, not lost in the thread
            self.error = exc
        finally:
            reset_runtime()
            connection.close()

    def __enter__(self) -> Workers:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(60)


class Reporter:
    """The instances' CPU, reported every second through POST /api/v1/metrics."""

    def __init__(self, web: str, token: str, service_id: int) -> None:
        self.web, self.token, self.service_id = web, token, service_id
        self.cpu = LOW_CPU
        self.failed: list[str] = []  # periodic reports that did not get through
        self.stop = threading.Event()
        self.client = httpx.Client(timeout=5, headers={"Authorization": f"Bearer {token}"})
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def report(self) -> None:
        from catalog.choices import Lifecycle
        from catalog.models import Instance

        ids = Instance.objects.filter(
            service_id=self.service_id,
            lifecycle__in=[Lifecycle.ACTIVE, Lifecycle.LAUNCHING, Lifecycle.DRAINING],
        ).values_list("pk", flat=True)
        body = {"metrics": [{"instance": i, "name": "cpu_percent", "value": self.cpu} for i in ids]}
        with self.lock:
            answer = self.client.post(self.web + "/api/v1/metrics", json=body)
        if answer.status_code != 202:
            raise RuntimeError(
                f"POST /api/v1/metrics answered {answer.status_code}: {answer.text[:300]}"
            )

    def set(self, cpu: float) -> float:
        """Report `cpu` now; returns the time it was accepted (the crossing). Retried like
        the periodic reports, for a few seconds (a shared PostgreSQL may refuse a moment)."""
        self.cpu = cpu
        for _ in range(REPORT_ATTEMPTS - 1):
            try:
                self.report()
                return time.time()
            except (httpx.HTTPError, RuntimeError) as exc:
                self.failed.append(f"{type(exc).__name__}: {exc}")
                time.sleep(1)
        self.report()  # the last attempt's error ends the run, naming what answered
        return time.time()

    def _run(self) -> None:
        from django.db import connection

        try:
            while not self.stop.wait(1.0):
                try:
                    self.report()
                except (httpx.HTTPError, RuntimeError) as exc:
                    # An instance's reporter retries at its next second, as the fleet's does.
                    self.failed.append(f"{type(exc).__name__}: {exc}")
        finally:
            connection.close()

    def __enter__(self) -> Reporter:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)
        self.client.close()


def show_stat(sock: str) -> list[dict[str, str]]:
    """HAProxy's own `show stat` rows, read from its runtime socket."""
    with socket.socket(socket.AF_UNIX) as conn:
        conn.connect(sock)
        conn.sendall(b"show stat\n")
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    lines = data.decode().splitlines()
    header = lines[0].lstrip("# ").split(",")
    return [dict(zip(header, line.split(","), strict=False)) for line in lines[1:] if line]


def first_session(sock: str, address: str, timeout: float) -> float:
    """Wall time at which HAProxy first counts a session on the server at `address`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for row in show_stat(sock):
            if row.get("addr") == address and (
                int(row.get("stot") or 0) > 0 or int(row.get("scur") or 0) > 0
            ):
                return time.time()
        time.sleep(0.02)
    raise RuntimeError(f"HAProxy never sent a session to {address} within {timeout:g}s")


def start_web(port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "SIGNALBOX_PORT": str(port)}
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "controlplane.asgi:application",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--lifespan",
        "off",
        "--log-level",
        "warning",
    ]
    with log.open("w") as output:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=output)
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code < 500:
                return process
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"the web server did not start: {log.read_text()[-2000:]}")
        time.sleep(0.2)


def clear() -> None:
    from catalog.models import Environment, Service, Team
    from deployments.models import TrafficRouter

    TrafficRouter.objects.filter(name__startswith=PREFIX).delete()
    Service.objects.filter(slug__startswith=PREFIX).delete()
    Environment.objects.filter(slug__startswith=PREFIX).delete()
    Team.objects.filter(slug__startswith=PREFIX).delete()


def _seconds(later: datetime | None, earlier: datetime | None) -> float | None:
    if later is None or earlier is None:
        return None
    return round((later - earlier).total_seconds(), 3)


def _wait(check: Any, timeout: float, what: str, workers: Workers) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if workers.error is not None:
            raise RuntimeError(f"the workers' pass failed: {workers.error!r}") from workers.error
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.05)


def scale_up(group: Any, sock: str, reporter: Reporter, workers: Workers) -> dict[str, Any]:
    from datetime import UTC

    from scaling.models import Decision, Launch

    crossed = reporter.set(HIGH_CPU)
    since = datetime.fromtimestamp(crossed - 0.5, tz=UTC)
    launch = _wait(
        lambda: (
            Launch.objects.filter(group=group, started_at__gte=since)
            .select_related("instance")
            .first()
        ),
        60,
        "a launch",
        workers,
    )
    address = f"{launch.instance.host}:{launch.instance.port}"
    traffic_at = first_session(sock, address, 60)
    launch.refresh_from_db()
    decision = Decision.objects.filter(group=group, at__gte=since, desired__gt=2).last()
    crossed_at = datetime.fromtimestamp(crossed, tz=UTC)
    in_service = launch.in_service_at
    return {
        "seconds": round(traffic_at - crossed, 3),
        "decision": _seconds(decision.at if decision else None, crossed_at),
        "launch": _seconds(launch.started_at, decision.at if decision else None),
        "health_gate": _seconds(launch.healthy_at, launch.started_at),
        "router_add": round(traffic_at - in_service.timestamp(), 3) if in_service else None,
    }


def scale_down(group: Any, reporter: Reporter, workers: Workers) -> dict[str, Any]:
    from datetime import UTC

    from scaling.choices import TerminationState
    from scaling.models import Decision, Termination

    crossed = reporter.set(LOW_CPU)
    since = datetime.fromtimestamp(crossed - 0.5, tz=UTC)
    termination = _wait(
        lambda: Termination.objects.filter(
            group=group, started_at__gte=since, state=TerminationState.TERMINATED
        ).first(),
        90,
        "a scale-down to finish",
        workers,
    )
    decision = Decision.objects.filter(group=group, at__gte=since, desired=2).last()
    decided = decision.at if decision else None
    return {
        "seconds": _seconds(termination.stopped_at, decided),
        "decision": _seconds(decided, datetime.fromtimestamp(crossed, tz=UTC)),
        "choose": _seconds(termination.started_at, decided),
        "drain_confirmed": _seconds(termination.drain_confirmed_at, termination.started_at),
        "ready": _seconds(termination.ready_at, termination.drain_confirmed_at),
        "stop": _seconds(termination.stopped_at, termination.ready_at),
        "ending": termination.ending,
        "requests_during_drain": termination.requests_during_drain,
        "errors_during_drain": termination.errors_during_drain,
    }


def run(cycles: int, rate: float, sync_seconds: int) -> dict[str, Any]:
    from django.conf import settings

    from catalog.choices import Lifecycle
    from catalog.models import ApiToken, Environment, Instance, Service, Team
    from deployments.choices import RouterKind
    from deployments.models import TrafficRoute, TrafficRouter
    from deployments.tests.conftest import free_port
    from health import services
    from health.models import CheckSpec
    from scaling.models import ScalingGroup, ScalingMetric
    from scaling.tests.fleet import start_fleet, start_router

    clear()
    directory = Path(tempfile.mkdtemp(prefix="bench-scaling-"))
    print(f"== rig: fleet, HAProxy and uvicorn (logs in {directory})", flush=True)
    web_port = free_port()
    web = start_web(web_port, directory / "web.log")
    settings.SIGNALBOX_BASE_URL = f"http://127.0.0.1:{web_port}"
    fleet = start_fleet(directory)
    proxy = None
    try:
        first = fleet.instances()
        proxy = start_router(directory, [(i["host"], i["port"]) for i in first], free_port())
        team = Team.objects.create(slug=PREFIX + "-team", name="Bench rig")
        env = Environment.objects.create(slug=PREFIX + "-prod", name="Bench rig", order=91)
        service = Service.objects.create(slug=PREFIX + "-checkout", name="Checkout", team=team)
        router = TrafficRouter.objects.create(
            name=PREFIX + "-haproxy",
            kind=RouterKind.HAPROXY,
            connection=proxy.connection,
            timeout_seconds=1.0,
            retries=1,
        )
        TrafficRoute.objects.create(
            router=router, service=service, environment=env, backend="be_checkout"
        )
        CheckSpec.objects.update_or_create(
            service=service,
            defaults={"interval_seconds": 1, "timeout_seconds": 1.0, "path": "/health"},
        )
        for row in first:
            instance = Instance.objects.create(
                service=service,
                environment=env,
                host=row["host"],
                port=row["port"],
                version="1.0",
                lifecycle=Lifecycle.ACTIVE,
                labels={"driver_ref": row["id"]},
            )
            services.ensure_checks(instance)
        group = ScalingGroup.objects.create(
            service=service,
            environment=env,
            driver="process",
            driver_config={
                "control_url": fleet.control_url,
                "version": "1.0",
                "service": "checkout",
                "environment": "production",
            },
            min_instances=2,
            max_instances=3,
            desired=2,
            sync_seconds=sync_seconds,
            readiness_delay_seconds=0,
            down_stabilization_seconds=0,
            launch_deadline_seconds=30,
            drain_timeout_seconds=10,
            lifecycle_timeout_seconds=30,
            termination_grace_seconds=5,
        )
        ScalingMetric.objects.create(group=group, source="cpu", target=TARGET_CPU)
        _, token = ApiToken.issue(team=team, name="bench-report", scopes=["report"])
        traffic = Traffic(proxy.url(), rate).start()
        ups: list[dict[str, Any]] = []
        downs: list[dict[str, Any]] = []
        began = time.monotonic()
        try:
            with (
                Reporter(settings.SIGNALBOX_BASE_URL, token, service.pk) as reporter,
                Workers() as workers,
            ):
                time.sleep(2)  # traffic settles on the two starting instances
                for n in range(cycles):
                    ups.append(scale_up(group, proxy.socket, reporter, workers))
                    time.sleep(1)  # the new instance serves a while before the next drain
                    downs.append(scale_down(group, reporter, workers))
                    failed = len(traffic.failures)
                    print(
                        f"   cycle {n + 1}/{cycles}: up {ups[-1]['seconds']} s, down "
                        f"{downs[-1]['seconds']} s ({downs[-1]['ending']}), "
                        f"{traffic.total} requests, {failed} failed",
                        flush=True,
                    )
        finally:
            traffic.stop()
        elapsed = time.monotonic() - began
        missed = len(reporter.failed)
    finally:
        if proxy is not None:
            proxy.process.terminate()
            proxy.process.wait(5)
        fleet.stop()
        web.terminate()
        web.wait(10)
    figures = _figures(ups, downs, traffic, elapsed, rate)
    figures["metric_reports_missed"] = missed
    return figures


def _summary(rows: list[dict[str, Any]], keys: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in keys:
        values = [r[key] for r in rows if r.get(key) is not None]
        if values:
            out[key] = {"p50": percentile(values, 50), "max": max(values)}
    return out


def _figures(
    ups: list[dict[str, Any]],
    downs: list[dict[str, Any]],
    traffic: Traffic,
    elapsed: float,
    rate: float,
) -> dict[str, Any]:
    return {
        "scale_up": {
            "runs": ups,
            **_summary(ups, ["seconds", "decision", "launch", "health_gate", "router_add"]),
        },
        "scale_down": {
            "runs": downs,
            **_summary(
                downs, ["seconds", "decision", "choose", "drain_confirmed", "ready", "stop"]
            ),
            "endings": dict(Counter(str(d["ending"]) for d in downs)),
        },
        "traffic": {
            "offered_rate": rate,
            "achieved_rate": round(traffic.total / elapsed, 1),
            "requests": traffic.total,
            "failed": len(traffic.failures),
            "failures": traffic.failures[:20],
            "scale_downs": len(downs),
            "router_5xx_during_drains": sum(d["errors_during_drain"] or 0 for d in downs),
        },
    }
