"""Health throughput benchmark: one worker process checking 10,000 simulated instances.

    python -m bench.health_throughput [--instances 10000] [--duration 60]

What it does, in about two minutes, against real PostgreSQL (its own database,
signalbox_bench unless BENCH_DATABASE_URL says otherwise) and 127.0.0.1:
1. starts the simulated fleet (bench/health_throughput/fleet.py: one listening socket per
   instance, split over two server processes so each stays under the fd limit);
2. registers the instances (500 services of 20) with Kubernetes' default check: 10 s;
3. ceiling: a bare aiohttp loop fetching the same URLs as fast as it can;
4. warm-up: three periods of the real scheduler (first results, failing ones turn failing);
5. sustained: the real scheduler (claim_due + run_batch, exactly what the Celery tasks
   call) in this one process for --duration seconds: checks/s, lateness, CPU, storage;
6. saturation: every check due at once, drained as fast as the pipeline goes, to compare
   with the ceiling.
Prints the figures and the machine; writes them to var/bench/health_throughput.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import common

ROOT = Path(__file__).resolve().parents[2]
SERVICES_PER = 20  # instances per service
FLEET_PROCESSES = 2
HISTORY_TABLES = ("health_rollup_minute", "health_transition", "controlplane_event")


def setup_django() -> None:
    """Its own database (created and migrated if missing), never the development one."""
    common.setup_django("postgres://postgres@127.0.0.1:5432/signalbox_bench")


def raise_fd_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def free_ports(count: int) -> list[int]:
    """`count` free ports below the ephemeral range (not necessarily contiguous: other
    programs, another benchmark's fleet among them, may hold some)."""
    low, _ = (int(x) for x in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    found: list[int] = []
    for port in range(2_000, low):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        found.append(port)
        if len(found) == count:
            return found
    raise SystemExit(f"only {len(found)} free ports below {low}; stop what uses them")


def start_fleet(ports: list[int]) -> list[subprocess.Popen[bytes]]:
    per = -(-len(ports) // FLEET_PROCESSES)
    procs = []
    for i in range(FLEET_PROCESSES):
        part = ROOT / "var" / "bench" / f"fleet-ports-{i}.json"
        part.parent.mkdir(parents=True, exist_ok=True)
        part.write_text(json.dumps(ports[i * per : (i + 1) * per]))
        command = [sys.executable, "-m", "bench.health_throughput.fleet", "--ports-file", str(part)]
        procs.append(subprocess.Popen(command, cwd=ROOT))
    deadline = time.monotonic() + 60
    for port in (ports[0], ports[-1]):
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                    raise SystemExit(
                        "the simulated fleet did not come up; see its output above"
                    ) from None
                time.sleep(0.2)
    return procs


def register(ports: list[int]) -> None:
    """The bench team, environment, services and instances, with jittered check rows."""
    from django.db import transaction

    from catalog.models import Environment, Instance, Service, Team
    from health import derive
    from health.models import (
        CheckSpec,
        HourRollup,
        InstanceCheck,
        MinuteRollup,
        ServiceHealth,
        Transition,
    )  # fmt: skip
    from health.scheduler import initial_due
    from health.specs import DEFAULT_SPEC

    with transaction.atomic():
        Transition.objects.all().delete()
        MinuteRollup.objects.all().delete()
        HourRollup.objects.all().delete()
        InstanceCheck.objects.all().delete()
        ServiceHealth.objects.all().delete()
        Instance.objects.filter(service__team__slug="bench").delete()
        CheckSpec.objects.filter(service__team__slug="bench").delete()
        Service.objects.filter(team__slug="bench").delete()
        team, _ = Team.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
        env, _ = Environment.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
        services = Service.objects.bulk_create(
            [
                Service(slug=f"bench-{i}", name=f"Bench {i}", team=team)
                for i in range(-(-len(ports) // SERVICES_PER))
            ]
        )
        CheckSpec.objects.bulk_create([CheckSpec(service=s) for s in services])
        instances = Instance.objects.bulk_create(
            [
                Instance(
                    service=services[i // SERVICES_PER],
                    environment=env,
                    host="127.0.0.1",
                    port=port,
                )
                for i, port in enumerate(ports)
            ]
        )
        now = datetime.now(UTC)
        InstanceCheck.objects.bulk_create(
            [
                InstanceCheck(instance=i, next_due_at=initial_due(DEFAULT_SPEC, now))
                for i in instances
            ]
        )
        derive.refresh([(s.pk, env.pk) for s in services])


def ceiling(ports: list[int], concurrency: int, rounds: int = 3) -> dict[str, float]:
    """A bare aiohttp loop on the same URLs, same pool settings: no scheduling, no DB."""
    import aiohttp

    from health.probes.runtime import KEEPALIVE_SECONDS, _new_loop

    async def run() -> dict[str, float]:
        connector = aiohttp.TCPConnector(limit=concurrency, keepalive_timeout=KEEPALIVE_SECONDS)
        semaphore = asyncio.Semaphore(concurrency)
        rates = []
        async with aiohttp.ClientSession(connector=connector) as session:

            async def fetch(url: str) -> None:
                async with semaphore, session.get(url) as response:
                    await response.read()

            for _ in range(rounds):
                started = time.perf_counter()
                await asyncio.gather(*(fetch(f"http://127.0.0.1:{p}/health") for p in ports))
                rates.append(len(ports) / (time.perf_counter() - started))
        return {"cold": rates[0], "warm": max(rates[1:])}

    loop = _new_loop()
    cpu0 = cpu_seconds()
    try:
        figures = loop.run_until_complete(run())
    finally:
        loop.close()
    figures["cpu_s_per_1000"] = (cpu_seconds() - cpu0) / (len(ports) * rounds) * 1000
    return figures


def history_counts() -> dict[str, int]:
    from controlplane.models import Event
    from health.models import MinuteRollup, Transition

    return {
        "rollups": MinuteRollup.objects.count(),
        "transitions": Transition.objects.count(),
        "events": Event.objects.count(),
    }


def compact_row_bytes() -> dict[str, float]:
    """Bytes per row, indexes included, with the update churn vacuumed away: what a row
    costs in the steady state (autovacuum reclaims the dead versions upserts leave)."""
    from django.db import connection

    sizes = {}
    with connection.cursor() as cursor:
        for table in HISTORY_TABLES:
            cursor.execute(f"VACUUM FULL {table}")
            # The table names are our own constants, not input.
            # (all partitions of a partitioned one)
            cursor.execute(
                "SELECT (SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree(%s)),"  # noqa: S608
                f" count(*) FROM {table}",
                [table],
            )
            size, rows = cursor.fetchone()
            sizes[table] = size / rows if rows else 0.0
    return sizes


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def drive(seconds: float, until_steady: float = 0.0) -> dict[str, Any]:
    """The worker loop: what beat + Celery do, in this process, for `seconds` (or, with
    `until_steady`, on past `seconds` until a batch starts on time, at most that long)."""
    from health import scheduler

    lateness: list[float] = []
    written = transitions = batches = 0
    started, cpu0 = time.monotonic(), cpu_seconds()
    steady = False
    while True:
        elapsed = time.monotonic() - started
        if elapsed >= seconds and (not until_steady or steady or elapsed >= until_steady):
            break
        claim = scheduler.claim_due()
        if not claim.ids:
            time.sleep(0.02)
            continue
        report = scheduler.run_batch(claim.ids, claim.lease_until)
        lateness += report.lateness
        written += report.written
        transitions += report.transitions
        batches += 1
        steady = bool(report.lateness) and quantile(report.lateness, 0.9) < 0.5
    elapsed = time.monotonic() - started
    return {
        "elapsed": elapsed, "cpu": cpu_seconds() - cpu0, "written": written,
        "transitions": transitions, "batches": batches, "lateness": lateness,
    }  # fmt: skip


def saturate(count: int) -> dict[str, float]:
    """Every check due now; drain them through claim + run_batch as fast as possible."""
    from health import scheduler
    from health.models import InstanceCheck

    InstanceCheck.objects.update(next_due_at=datetime.now(UTC), lease_until=None)
    done, started, cpu0 = 0, time.perf_counter(), cpu_seconds()
    while done < count:
        claim = scheduler.claim_due(horizon=0)
        if not claim.ids:
            break
        done += scheduler.run_batch(claim.ids, claim.lease_until).written
    elapsed = time.perf_counter() - started
    return {"checks": done, "elapsed": elapsed, "rate": done / elapsed, "cpu": cpu_seconds() - cpu0}


def machine() -> dict[str, Any]:
    from django.db import connection

    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        pg = cursor.fetchone()[0]
    import aiohttp

    return {
        "cpu": model, "cores": os.cpu_count(), "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "os": platform.platform(), "python": platform.python_version(), "postgresql": pg,
        "aiohttp": aiohttp.__version__,
        "load_average_1m_at_end": os.getloadavg()[0],
    }  # fmt: skip


def quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description="Health throughput benchmark (see module doc).")
    parser.add_argument("--instances", type=int, default=10_000)
    parser.add_argument("--duration", type=float, default=45.0, help="sustained phase, seconds")
    args = parser.parse_args()
    raise_fd_limit()
    setup_django()
    load_before = os.getloadavg()[0]
    from django.conf import settings

    from health.models import ServiceHealth
    from health.probes.runtime import reset_runtime

    ports = free_ports(args.instances)
    print(f"== starting {args.instances} simulated instances on 127.0.0.1", flush=True)
    fleet = start_fleet(ports)
    try:
        print("== registering them", flush=True)
        register(ports)
        pairs = ServiceHealth.objects.count()
        print("== ceiling: bare aiohttp loop on the same URLs", flush=True)
        roof = ceiling(ports, settings.SIGNALBOX_PROBE_CONCURRENCY)
        print(f"   {roof['warm']:.0f} req/s warm ({roof['cold']:.0f} cold)", flush=True)
        # Three periods: the failing instances reach the failure threshold (3) and turn
        # failing, so the sustained phase measures the steady state.
        print("== warm-up: three periods of the scheduler", flush=True)
        warm = drive(31, until_steady=75)
        print(
            f"   {warm['written']} checks, {warm['transitions']} transitions"
            f" in {warm['elapsed']:.0f} s",
            flush=True,
        )
        before = history_counts()
        print(f"== sustained: {args.duration:.0f} s", flush=True)
        run = drive(args.duration)
        after = history_counts()
        print("== saturation: everything due at once", flush=True)
        sat = saturate(args.instances)
        reset_runtime()
        row_bytes = compact_row_bytes()
    finally:
        for proc in fleet:
            proc.terminate()
        for proc in fleet:
            proc.wait(10)

    rate = run["written"] / run["elapsed"]
    lateness = run["lateness"]
    per_day = 86400 / run["elapsed"]
    rollup_bytes = row_bytes["health_rollup_minute"]
    transitions_per_day = (after["transitions"] - before["transitions"]) * per_day
    events_per_day = (after["events"] - before["events"]) * per_day
    hour_rows_mb = pairs * 24 * rollup_bytes / 1e6
    growth = {
        # one row per service-environment-minute, kept 24 h: a constant, not a growth
        "minute_rollups_steady_mb": round(pairs * 1440 * rollup_bytes / 1e6, 1),
        # then one row per service-environment-hour, kept for the retention
        "hour_rollups_mb_per_day": round(hour_rows_mb, 2),
        "transitions_per_day": round(transitions_per_day),
        "events_per_day": round(events_per_day),
        "growth_mb_per_day": round(
            hour_rows_mb
            + transitions_per_day * row_bytes["health_transition"] / 1e6
            + events_per_day * row_bytes["controlplane_event"] / 1e6, 2,
        ),
        "rollup_row_bytes": round(rollup_bytes),
        "raw_probes_per_day_not_stored": round(rate * 86400),
    }  # fmt: skip
    figures = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python -m bench.health_throughput " + " ".join(sys.argv[1:]),
        "instances": args.instances,
        "services_x_environments": pairs,
        "interval_s": 10,
        "concurrency": settings.SIGNALBOX_PROBE_CONCURRENCY,
        "sustained_checks_per_s": round(rate, 1),
        "lateness_p50_ms": round(quantile(lateness, 0.50) * 1000, 1),
        "lateness_p99_ms": round(quantile(lateness, 0.99) * 1000, 1),
        "lateness_max_ms": round(max(lateness) * 1000, 1) if lateness else None,
        "cpu_s_per_1000_checks": round(run["cpu"] / max(run["written"], 1) * 1000, 3),
        "worker_cpu_utilisation": round(run["cpu"] / run["elapsed"], 2),
        "batches": run["batches"],
        "saturation_checks_per_s": round(sat["rate"], 1),
        "saturation_cpu_s_per_1000": round(sat["cpu"] / max(sat["checks"], 1) * 1000, 3),
        "ceiling_warm_req_per_s": round(roof["warm"], 1),
        "ceiling_cold_req_per_s": round(roof["cold"], 1),
        "ceiling_cpu_s_per_1000": round(roof["cpu_s_per_1000"], 3),
        "saturation_vs_ceiling": round(sat["rate"] / roof["warm"], 2),
        "storage": growth,
        "machine": {**machine(), "load_average_1m_at_start": load_before},
    }
    out = ROOT / "var" / "bench" / "health_throughput.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
    ok_rate = rate >= 0.99 * args.instances / 10
    ok_late = figures["lateness_p99_ms"] <= 1000
    ok_roof = figures["saturation_vs_ceiling"] >= 0.5
    print(
        f"targets: {args.instances / 10:.0f} checks/s sustained {'OK' if ok_rate else 'MISSED'}; "
        f"p99 lateness <= 1 s {'OK' if ok_late else 'MISSED'}; "
        f">= half the bare-loop ceiling {'OK' if ok_roof else 'MISSED'}"
    )
    print(f"figures written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
