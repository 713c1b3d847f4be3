"""Benchmark: 1,000 concurrent rollouts on one Celery worker against a real HAProxy.

Measures how late each step transition starts after it is due (p50/p99) and how long an
abort takes until HAProxy's weights are back on stable. Targets (issue 16): p99 lag <= 1 s,
abort to restored p99 <= 100 ms. Prints the figures, the machine and its load average; see
bench/RESULTS.md.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/signalbox_bench \
    REDIS_URL=redis://127.0.0.1:6379/9 .venv/bin/python bench/rollouts/run.py \
      --rollouts 1000 --pause 30 --concurrency 2

The database is created and migrated if missing; the bench's team is removed afterwards.
Backends point at ports nobody listens on: weights are set and read back all the same,
and no health checks run, so the bench measures the control plane, not the services.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def ensure_database() -> None:
    import psycopg

    from controlplane.env import database_from_url

    url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/signalbox")
    db: dict[str, Any] = database_from_url(url)
    params = {
        "host": db["HOST"],
        "port": db["PORT"] or 5432,
        "user": db["USER"],
        "password": db["PASSWORD"] or None,
        "dbname": "postgres",
        "autocommit": True,
    }
    with psycopg.connect(**params) as conn:
        if not conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [db["NAME"]]
        ).fetchone():
            print(f"== creating database {db['NAME']}")
            conn.execute(f'CREATE DATABASE "{db["NAME"]}"')


def start_haproxy(directory: Path, backends: int) -> tuple[subprocess.Popen[bytes], str]:
    sock = str(directory / "admin.sock")
    lines = [
        "global",
        f"  stats socket {sock} mode 600 level admin",
        "  maxconn 4000",
        "defaults",
        "  mode http",
        "  timeout connect 1s",
        "  timeout client 5s",
        "  timeout server 5s",
    ]
    for index in range(backends):
        lines += [
            f"backend be_{index:03d}",
            "  balance roundrobin",
            f"  server stable 127.0.0.1:{20000 + index} weight 1",
            f"  server canary 127.0.0.1:{30000 + index} weight 1",
        ]
    config = directory / "haproxy.cfg"
    config.write_text("\n".join(lines) + "\n")
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    process = subprocess.Popen([haproxy, "-db", "-f", str(config)])
    for _ in range(200):
        if os.path.exists(sock):
            return process, sock
        time.sleep(0.02)
    raise SystemExit("haproxy did not start; is it installed? (apt-get install haproxy)")


def canary_weight(sock: str, backend: str) -> int:
    with socket.socket(socket.AF_UNIX) as conn:
        conn.connect(sock)
        conn.sendall(f"get weight {backend}/canary\n".encode())
        answer = b""
        while chunk := conn.recv(4096):
            answer += chunk
    return int(answer.split()[0])


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its children (a prefork pool), from /proc."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if stat.parent.name == str(pid) or fields[1] == str(pid):
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rollouts", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=60, help="how long to measure lag")
    parser.add_argument("--pause", type=int, default=30, help="seconds of each timed pause")
    parser.add_argument("--aborts", type=int, default=20)
    parser.add_argument(
        "--concurrency",
        type=int,
        default=2,
        help="1: a solo-pool worker (one process); N: the prefork pool with N processes "
        "(the Procfile's worker uses 2)",
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=None,
        help="seconds after the last start not counted in the lag (default: one pause + 5 s)",
    )
    parser.add_argument(
        "--watch",
        action="store_true",
        help="a page watches the deployments board (its rows render live)",
    )
    args = parser.parse_args()

    ensure_database()
    import django

    django.setup()
    from django.core.management import call_command
    from django.utils import timezone

    call_command("migrate", verbosity=0)
    from catalog.models import Environment, Instance, Service, Team
    from catalog.permissions import Access
    from deployments import actions
    from deployments.choices import RolloutState, RouterKind, StepKind, StepOutcome
    from deployments.models import Rollout, RolloutStep, TrafficRoute, TrafficRouter
    from deployments.tasks import claim_due_rollouts

    workdir = Path(tempfile.mkdtemp(prefix="bench-rollouts-"))
    haproxy, sock = start_haproxy(workdir, args.rollouts)
    pool = ["-P", "solo"] if args.concurrency == 1 else ["-c", str(args.concurrency)]
    worker = subprocess.Popen(
        [
            str(ROOT / ".venv/bin/celery"),
            "-A",
            "controlplane",
            "worker",
            "-Q",
            "rollouts",
            *pool,
            "-n",
            "bench@%h",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel",
            "WARNING",
        ],
        cwd=ROOT,
        # As the Procfile and docker-compose.yml run workers: one connection kept per process.
        env={**os.environ, "DATABASE_CONN_MAX_AGE": os.environ.get("DATABASE_CONN_MAX_AGE", "60")},
        stdout=(workdir / "worker.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    team = Team.objects.filter(slug="bench-rollouts").first()
    if team is not None:
        Rollout.objects.filter(team=team).delete()
        TrafficRoute.objects.filter(service__team=team).delete()
        Service.objects.filter(team=team).delete()
        team.delete()
    TrafficRouter.objects.filter(name="bench-haproxy").delete()
    team = Team.objects.create(slug="bench-rollouts", name="Bench")
    env, _ = Environment.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
    router = TrafficRouter.objects.create(
        name="bench-haproxy", kind=RouterKind.HAPROXY, connection={"socket": sock}
    )
    steps: list[dict[str, Any]] = []
    for weight in range(5, 100, 5):
        steps += [{"set_weight": weight}, {"pause": {"seconds": args.pause}}]
    steps.append({"set_weight": 100})
    access = Access(user=_bench_user())
    stop = threading.Event()

    def beat() -> None:
        # What celery beat does for this task: send it every second, expiring after one.
        while not stop.is_set():
            claim_due_rollouts.apply_async(expires=1.0)
            time.sleep(1.0)

    if args.watch:
        import redis
        from django.conf import settings

        from controlplane.live import group_name

        prefix = cast(dict[str, Any], settings.CHANNEL_LAYERS["default"])["CONFIG"]["prefix"]
        watcher = redis.Redis.from_url(settings.REDIS_URL).pubsub()
        watcher.subscribe(f"{prefix}__group__{group_name('rollouts')}")
    ticker = threading.Thread(target=beat, daemon=True)
    ticker.start()
    time.sleep(3)  # the worker boots
    print(
        f"== starting {args.rollouts} rollouts, spread over {args.pause} s, each of "
        f"{len(steps)} steps ({args.pause}s pauses) on one worker "
        + ("(solo pool)" if args.concurrency == 1 else f"(prefork, {args.concurrency} processes)")
        + (", a page watching the board" if args.watch else ", nobody watching")
    )
    rollouts = []
    for index in range(args.rollouts):
        service = Service.objects.create(slug=f"bench-{index:03d}", name=f"b{index}", team=team)
        Instance.objects.create(
            service=service, environment=env, host="127.0.0.1", port=20000 + index, version="1.0"
        )
        Instance.objects.create(
            service=service, environment=env, host="127.0.0.1", port=30000 + index, version="2.0"
        )
        TrafficRoute.objects.create(
            router=router,
            service=service,
            environment=env,
            backend=f"be_{index:03d}",
            add_missing_servers=False,
        )
        rollout, _ = actions.start_rollout(
            access=access, service=service, environment=env, version="2.0", steps=steps
        )
        rollouts.append(rollout)
        # Teams do not start rollouts in lockstep: spread the starts over one pause.
        time.sleep(max(0.0, args.pause / args.rollouts - 0.05))
    warmup = args.pause + 5 if args.warmup is None else args.warmup
    time.sleep(warmup)
    load_from = os.getloadavg()[0]
    measured_from = timezone.now()
    cpu_from, wall_from = cpu_seconds(worker.pid), time.monotonic()
    time.sleep(args.seconds / 2)

    print(f"== aborting {args.aborts} rollouts, one every 0.5 s, while the rest run")
    restore_times = []
    for rollout in rollouts[: args.aborts]:
        backend = f"be_{rollouts.index(rollout):03d}"
        t0 = time.monotonic()
        actions.act(rollout.pk, "abort", access=access, reason="bench")
        while canary_weight(sock, backend) != 0:
            if time.monotonic() - t0 > 10:
                raise SystemExit(f"{backend} was not restored within 10 s")
            time.sleep(0.005)
        restore_times.append(time.monotonic() - t0)
        time.sleep(0.5)
    time.sleep(max(0.0, args.seconds / 2 - args.aborts * 0.5))
    stop.set()
    load_to = os.getloadavg()[0]
    window_end = timezone.now()
    cpu_used, wall = cpu_seconds(worker.pid) - cpu_from, time.monotonic() - wall_from
    runs = RolloutStep.objects.filter(
        rollout__team=team, started_at__gte=measured_from, started_at__lte=window_end
    ).count()

    lags: list[float] = []
    by_kind: dict[str, list[float]] = {"step start": [], "pause end": [], "still waiting": []}
    looked_at = timezone.now()
    for row in RolloutStep.objects.filter(rollout__team=team, started_at__lte=window_end):
        if row.due_at is not None and row.due_at >= measured_from:
            lags.append((row.started_at - row.due_at).total_seconds())
            by_kind["step start"].append(lags[-1])
        if row.kind == StepKind.PAUSE and row.outcome != StepOutcome.SKIPPED:  # not aborted
            due = row.started_at + timedelta(seconds=row.spec.get("seconds", 0))
            if not measured_from <= due <= window_end:
                continue
            if row.finished_at is not None:
                lags.append((row.finished_at - due).total_seconds())
                by_kind["pause end"].append(lags[-1])
            else:  # a pause that should have ended and has not: late by at least this much
                lags.append((looked_at - due).total_seconds())
                by_kind["still waiting"].append(lags[-1])
    done = Rollout.objects.filter(team=team)
    states = {s: done.filter(state=s).count() for s in RolloutState.values}
    worker.send_signal(signal.SIGTERM)
    worker.wait(20)
    haproxy.terminate()
    Rollout.objects.filter(team=team).delete()
    TrafficRoute.objects.filter(service__team=team).delete()
    Service.objects.filter(team=team).delete()
    team.delete()
    router.delete()

    print(
        f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
        f"; 1-minute load average {load_from:.1f} at the start of the window, {load_to:.1f} "
        "at its end"
    )
    span = (window_end - measured_from).total_seconds()
    print(
        f"transitions measured: {len(lags)} over {span:.0f} s after {warmup:.0f} s of warm-up "
        f"({len(lags) / max(span, 1):.1f}/s)"
    )
    print(
        f"worker: {cpu_used:.1f} CPU s in {wall:.0f} s ({100 * cpu_used / wall:.0f}% of a core); "
        f"{1000 * cpu_used / max(runs, 1):.0f} ms CPU per step started"
    )
    print(
        f"step lag past due: p50 {percentile(lags, 50) * 1000:.0f} ms, "
        f"p99 {percentile(lags, 99) * 1000:.0f} ms, max {max(lags) * 1000:.0f} ms "
        f"(target p99 <= 1000 ms)"
    )
    for kind, values in by_kind.items():
        if values:
            print(
                f"  {kind}: {len(values)}, p50 {percentile(values, 50) * 1000:.0f} ms, "
                f"p99 {percentile(values, 99) * 1000:.0f} ms"
            )
    print(
        f"abort to weights restored: p50 {statistics.median(restore_times) * 1000:.0f} ms, "
        f"p99 {percentile(restore_times, 99) * 1000:.0f} ms, "
        f"max {max(restore_times) * 1000:.0f} ms over {len(restore_times)} aborts "
        f"(target p99 <= 100 ms)"
    )
    print("states at the end:", {k: v for k, v in states.items() if v})


def _bench_user() -> Any:
    from django.contrib.auth import get_user_model

    user, _ = get_user_model().objects.get_or_create(username="bench-rollouts")
    return user


if __name__ == "__main__":
    main()
