"""Health throughput benchmark: the probe engine against N simulated instances.

    python -m bench.health_throughput [--instances 10000] [--sustain 45] [--celery]
                                      [--soak SECONDS]

What it does against real PostgreSQL (its own database, signalbox_bench unless
BENCH_DATABASE_URL says otherwise), Redis (REDIS_URL) and loopback:
1. starts the simulated fleet (bench/health_throughput/fleet.py: one listening socket per
   instance on 127.0.0.1, 127.0.0.2, ... (at most PORTS_PER_ADDRESS each, below the
   ephemeral range), in one process per INSTANCES_PER_FLEET_PROCESS so each stays under
   the descriptor limit; this process and its children raise RLIMIT_NOFILE to the hard
   limit);
2. registers the instances (services of 20) with Kubernetes' default check: 10 s;
3. ceiling: a bare aiohttp loop fetching the same URLs as fast as it can, its CPU;
4. warm-up: three periods of the real scheduler (first results, failing ones turn failing);
5. sustained, --sustain seconds (or --soak, whichever is longer):
   - default: the real scheduler (claim_due + run_batch, what the Celery tasks call) in
     this one process: checks/s, lateness, CPU per 1,000 checks beside the bare loop's;
   - --celery: the worker as the Procfile runs it (celery prefork --concurrency 2, here on
     the probes queue only), this process playing beat (schedule_due every second, as
     beat sends it); lateness read from the rows (each check's start minus the due time
     it had), CPU and RSS of the worker's processes from /proc, RSS sampled each minute
     and its slope printed;
6. saturation: every check due at once, drained in this process as fast as the pipeline
   goes, beside the bare loop's requests/s.
Prints the figures and the machine; writes them to var/bench/health_throughput.json.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
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
# A fleet process holds its listening sockets plus up to two kept-alive connections per
# instance (one per worker child): 6,000 x 3 = 18,000 < this machine's 20,000-fd hard limit.
INSTANCES_PER_FLEET_PROCESS = 6_000
# Ports 2,000 .. the ephemeral range's start (32,768 here) per loopback address.
PORTS_PER_ADDRESS = 25_000
CEILING_URLS = 10_000  # the bare loop's sample: 3 rounds over at most this many instances
HISTORY_TABLES = (
    "health_rollup_minute", "health_rollup_hour", "health_transition", "controlplane_event"
)


def setup_django() -> None:
    """Its own database (BENCH_DATABASE_URL, else signalbox_bench; created and migrated if
    missing), never the development one. DATABASE_URL is set to it for the worker too, and
    DEBUG is off (as in production) unless set: with DEBUG on, Django formats and keeps
    every query's SQL, a 5,000-row batch write's arrays included, in each process."""
    os.environ["DEBUG"] = os.environ.get("DEBUG") or "false"
    common.setup_django("postgres://postgres@127.0.0.1:5432/signalbox_bench")


def raise_fd_limit() -> None:
    """Soft RLIMIT_NOFILE up to the hard limit, for this process and what it starts (the
    fleet, the worker). Raising the hard limit needs CAP_SYS_RESOURCE (20,000 here)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


Endpoint = tuple[str, int]


def free_endpoints(count: int) -> list[Endpoint]:
    """`count` free (address, port) pairs below the ephemeral range, on 127.0.0.1, then
    127.0.0.2, ... (PORTS_PER_ADDRESS each; not contiguous: other programs, another
    benchmark's fleet among them, may hold some). The outbound guard allows 127.0.0.0/8
    outside production (controlplane/settings.py), so every one of them may be probed."""
    low, _ = (int(x) for x in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    found: list[Endpoint] = []
    for address_index in range(1, 255):
        host = f"127.0.0.{address_index}"
        here = 0
        for port in range(2_000, low):
            with socket.socket() as probe:
                try:
                    probe.bind((host, port))
                except OSError:
                    continue
            found.append((host, port))
            here += 1
            if len(found) == count:
                return found
            if here == PORTS_PER_ADDRESS:
                break
    raise SystemExit(f"only {len(found)} free loopback ports below {low}; stop what uses them")


def start_fleet(endpoints: list[Endpoint]) -> list[subprocess.Popen[bytes]]:
    processes = max(2, -(-len(endpoints) // INSTANCES_PER_FLEET_PROCESS))
    per = -(-len(endpoints) // processes)
    indexed = [(h, p, i) for i, (h, p) in enumerate(endpoints)]
    procs = []
    for i in range(processes):
        part = ROOT / "var" / "bench" / f"fleet-endpoints-{os.getpid()}-{i}.json"
        part.parent.mkdir(parents=True, exist_ok=True)
        part.write_text(json.dumps(indexed[i * per : (i + 1) * per]))
        command = [
            sys.executable, "-m", "bench.health_throughput.fleet", "--endpoints-file", str(part)
        ]  # fmt: skip
        procs.append(subprocess.Popen(command, cwd=ROOT))
    deadline = time.monotonic() + 120
    for endpoint in (endpoints[0], endpoints[-1]):
        while True:
            try:
                socket.create_connection(endpoint, timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                    raise SystemExit(
                        "the simulated fleet did not come up; see its output above"
                    ) from None
                time.sleep(0.2)
    return procs


def register(endpoints: list[Endpoint]) -> None:
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
                for i in range(-(-len(endpoints) // SERVICES_PER))
            ]
        )
        CheckSpec.objects.bulk_create([CheckSpec(service=s) for s in services])
        instances = Instance.objects.bulk_create(
            [
                Instance(
                    service=services[i // SERVICES_PER],
                    environment=env,
                    host=host,
                    port=port,
                )
                for i, (host, port) in enumerate(endpoints)
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


def ceiling(endpoints: list[Endpoint], concurrency: int, rounds: int = 3) -> dict[str, float]:
    """A bare aiohttp loop on the same URLs, same pool settings: no scheduling, no DB."""
    ports = endpoints[:CEILING_URLS]
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
                await asyncio.gather(*(fetch(f"http://{h}:{p}/health") for h, p in ports))
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
                "SELECT coalesce((SELECT sum(pg_total_relation_size(relid))"  # noqa: S608
                " FROM pg_partition_tree(%s)), pg_total_relation_size(%s)),"
                f" count(*) FROM {table}",
                [table, table],
            )
            size, rows = cursor.fetchone()
            sizes[table] = float(size) / rows if rows else 0.0
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


def proc_children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


def proc_cpu_rss(pids: list[int]) -> tuple[float, float]:
    """(CPU seconds, RSS MiB) summed over these processes."""
    tick = os.sysconf("SC_CLK_TCK")
    page = os.sysconf("SC_PAGE_SIZE")
    cpu = rss = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        cpu += (int(fields[11]) + int(fields[12])) / tick
        rss += int(fields[21]) * page / 2**20
    return cpu, rss


def socket_count(pid: int) -> int:
    """Open sockets of one process (its kept-alive probe connections, plus a few: the
    database, Redis)."""
    count = 0
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return 0
    for fd in fds:
        try:
            count += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
        except OSError:
            continue
    return count


def tcp_active_opens() -> int:
    """Machine-wide TCP connects so far (/proc/net/snmp ActiveOpens): includes every other
    process's, so the rate is an upper bound on the worker's."""
    lines = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines()]
    for head, values in itertools.pairwise(lines):
        if head[0] == "Tcp:" and values[0] == "Tcp:" and "ActiveOpens" in head:
            return int(values[head.index("ActiveOpens")])
    return 0


def slope_per_minute(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MiB) samples, in MiB per minute."""
    if len(samples) < 2:
        return float("nan")
    n = len(samples)
    mx = sum(t for t, _ in samples) / n
    my = sum(v for _, v in samples) / n
    var = sum((t - mx) ** 2 for t, _ in samples)
    return sum((t - mx) * (v - my) for t, v in samples) / var * 60 if var else float("nan")


def rephase() -> None:
    """Every check's first probe due at a random moment of the next period, as registering
    them now would (the ceiling phase took time since they were registered)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE health_instancecheck SET lease_until = NULL,"
            " next_due_at = now() + random() * interval '10 seconds'"
        )


class Worker:
    """The worker as the Procfile runs it (prefork, two children), on the probes queue."""

    def __init__(self) -> None:
        from controlplane.celery import app

        with app.connection_for_write() as conn:
            conn.default_channel.queue_purge("probes")  # type: ignore[attr-defined]  # leftovers
        command = [
            str(ROOT / ".venv" / "bin" / "celery"), "-A", "controlplane", "worker", "-Q",
            "probes", "--concurrency", "2", "--without-gossip", "--without-mingle",
            "--without-heartbeat", "--loglevel", "WARNING",
        ]  # fmt: skip
        env = {**os.environ, "DATABASE_CONN_MAX_AGE": os.environ.get("DATABASE_CONN_MAX_AGE", "60")}
        self.proc = subprocess.Popen(command, cwd=ROOT, env=env)
        deadline = time.monotonic() + 60
        while len(proc_children(self.proc.pid)) < 2:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise SystemExit("the celery worker did not start; see its output above")
            time.sleep(0.2)

    def pids(self) -> list[int]:
        return [self.proc.pid, *proc_children(self.proc.pid)]

    def children_rss(self) -> list[float]:
        return [proc_cpu_rss([pid])[1] for pid in proc_children(self.proc.pid)]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


class RowClock:
    """Lateness from the rows: a check's start (last_checked_at) minus the due time the row
    had when last seen (next_due_at), polled every POLL seconds (< the 10 s period, so no
    check runs twice between polls)."""

    POLL = 2.0

    def __init__(self) -> None:
        from django.db import connection

        self.connection = connection
        self.due: dict[int, float] = {}
        self.since = 0.0
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT id, extract(epoch FROM next_due_at), "
                "coalesce(extract(epoch FROM max(last_checked_at) OVER ()), 0) "
                "FROM health_instancecheck"
            )
            for row_id, due, newest in cursor.fetchall():
                self.due[row_id] = float(due)
                self.since = max(self.since, float(newest))

    def poll(self) -> list[float]:
        with self.connection.cursor() as cursor:
            cursor.execute(
                "SELECT id, extract(epoch FROM last_checked_at), extract(epoch FROM next_due_at) "
                "FROM health_instancecheck WHERE last_checked_at > to_timestamp(%s)",
                [self.since],
            )
            rows = cursor.fetchall()
        late = []
        for row_id, checked, due in rows:
            checked = float(checked)
            previous = self.due.get(row_id)
            if previous is not None:
                late.append(checked - previous)
            self.due[row_id] = float(due)
            self.since = max(self.since, checked)
        return late


def drive_celery(
    worker: Worker,
    seconds: float,
    rss_every: float = 60.0,
    until_steady: float = 0.0,
    fleet_pids: list[int] | None = None,
) -> dict[str, Any]:
    """Play beat (schedule_due every second, as beat sends it) for `seconds` (with
    `until_steady`, on until a poll's p90 lateness is under 0.5 s, at most that long); the
    worker does the rest. Lateness from the rows, CPU and RSS of the worker's processes."""
    from controlplane.celery import app

    clock = RowClock()
    lateness: list[float] = []
    started = time.monotonic()
    cpu0, rss0 = proc_cpu_rss(worker.pids())
    fleet0 = proc_cpu_rss(fleet_pids or [])[0]
    rss_samples: list[tuple[float, float]] = [(0.0, rss0)]
    children_rss = [worker.children_rss()]
    sockets = [[socket_count(pid) for pid in proc_children(worker.proc.pid)]]
    opens0 = tcp_active_opens()
    next_tick = next_poll = started
    next_rss = started + rss_every
    steady = False
    while True:
        now = time.monotonic()
        if now - started >= seconds and (
            not until_steady or steady or now - started >= until_steady
        ):
            break
        if now >= next_tick:
            app.send_task("health.tasks.schedule_due")
            next_tick += 1.0
        if now >= next_poll:
            polled = clock.poll()
            lateness += polled
            steady = bool(polled) and quantile(polled, 0.9) < 0.5
            next_poll += RowClock.POLL
        if now >= next_rss:
            rss_samples.append((now - started, proc_cpu_rss(worker.pids())[1]))
            children_rss.append(worker.children_rss())
            sockets.append([socket_count(pid) for pid in proc_children(worker.proc.pid)])
            print(
                f"   {now - started:.0f} s: worker RSS {rss_samples[-1][1]:.1f} MiB,"
                f" sockets per child {sockets[-1]}",
                flush=True,
            )
            next_rss += rss_every
        time.sleep(max(0.0, min(next_tick, next_poll) - time.monotonic()))
    elapsed = time.monotonic() - started
    lateness += clock.poll()
    cpu1, rss1 = proc_cpu_rss(worker.pids())
    fleet_cpu = proc_cpu_rss(fleet_pids or [])[0] - fleet0
    rss_samples.append((elapsed, rss1))
    children_rss.append(worker.children_rss())
    sockets.append([socket_count(pid) for pid in proc_children(worker.proc.pid)])
    opens = tcp_active_opens() - opens0
    return {
        "children_sockets": sockets, "connects_per_s": opens / elapsed,
        "elapsed": elapsed, "cpu": cpu1 - cpu0, "written": len(lateness),
        "lateness": lateness, "rss": rss_samples, "children_rss": children_rss,
        "transitions": 0, "batches": 0, "fleet_cpu": fleet_cpu,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description="Health throughput benchmark (see module doc).")
    parser.add_argument("--instances", type=int, default=10_000)
    parser.add_argument(
        "--sustain", "--duration", type=float, default=45.0, help="sustained phase, seconds"
    )
    parser.add_argument(
        "--celery", action="store_true",
        help="sustained phase through the celery worker (prefork, 2 children), as the Procfile",
    )  # fmt: skip
    parser.add_argument(
        "--soak", type=float, default=0.0,
        help="sustain at least this long (implies --celery), sampling worker RSS each minute",
    )  # fmt: skip
    parser.add_argument("--no-saturation", action="store_true", help="skip the saturation phase")
    args = parser.parse_args()
    use_celery = args.celery or args.soak > 0
    sustain = max(args.sustain, args.soak)
    raise_fd_limit()
    setup_django()
    load_before = os.getloadavg()[0]
    from django.conf import settings

    from health.models import ServiceHealth
    from health.probes.runtime import reset_runtime

    endpoints = free_endpoints(args.instances)
    addresses = sorted({h for h, _ in endpoints})
    fd_limit = resource.getrlimit(resource.RLIMIT_NOFILE)
    print(
        f"== starting {args.instances} simulated instances on {', '.join(addresses)}"
        f" (RLIMIT_NOFILE {fd_limit[0]})",
        flush=True,
    )
    fleet = start_fleet(endpoints)
    worker: Worker | None = None
    sat: dict[str, float] | None = None
    try:
        print("== registering them", flush=True)
        register(endpoints)
        pairs = ServiceHealth.objects.count()
        print("== ceiling: bare aiohttp loop on the same URLs", flush=True)
        roof = ceiling(endpoints, settings.SIGNALBOX_PROBE_CONCURRENCY)
        print(
            f"   {roof['warm']:.0f} req/s warm ({roof['cold']:.0f} cold),"
            f" {roof['cpu_s_per_1000']:.3f} CPU-s per 1,000",
            flush=True,
        )
        if use_celery:
            print("== starting the worker: celery prefork --concurrency 2 -Q probes", flush=True)
            rephase()
            worker = Worker()
            print("== warm-up: three periods through the worker", flush=True)
            warm = drive_celery(worker, 35, rss_every=1e9, until_steady=90)
            print(f"   {warm['written']} checks in {warm['elapsed']:.0f} s", flush=True)
            before = history_counts()
            print(f"== sustained: {sustain:.0f} s through the worker", flush=True)
            run = drive_celery(worker, sustain, fleet_pids=[p.pid for p in fleet])
            after = history_counts()
            worker.stop()
            worker = None
        else:
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
            print(f"== sustained: {sustain:.0f} s", flush=True)
            run = drive(sustain)
            after = history_counts()
        load_sustained = os.getloadavg()[0]
        if not args.no_saturation:
            print("== saturation: everything due at once", flush=True)
            sat = saturate(args.instances)
        reset_runtime()
        row_bytes = compact_row_bytes()
    finally:
        if worker is not None:
            worker.stop()
        for proc in fleet:
            proc.terminate()
        for proc in fleet:
            proc.wait(10)
        for part in (ROOT / "var" / "bench").glob(f"fleet-endpoints-{os.getpid()}-*.json"):
            part.unlink()

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
        "worker": "celery prefork --concurrency 2 -Q probes" if use_celery else "in-process",
        "rlimit_nofile": fd_limit[0],
        "loopback_addresses": len(addresses),
        "ceiling_warm_req_per_s": round(roof["warm"], 1),
        "ceiling_cold_req_per_s": round(roof["cold"], 1),
        "ceiling_cpu_s_per_1000": round(roof["cpu_s_per_1000"], 3),
        "storage": growth,
        "machine": {
            **machine(),
            "load_average_1m_at_start": load_before,
            "load_average_1m_sustained": load_sustained,
        },
    }
    cpu_ratio = figures["cpu_s_per_1000_checks"] / max(figures["ceiling_cpu_s_per_1000"], 1e-9)
    figures["cpu_per_check_vs_loop"] = round(cpu_ratio, 2)
    if sat is not None:
        figures["saturation_checks_per_s"] = round(sat["rate"], 1)
        figures["saturation_cpu_s_per_1000"] = round(sat["cpu"] / max(sat["checks"], 1) * 1000, 3)
        figures["saturation_vs_ceiling"] = round(sat["rate"] / roof["warm"], 2)
        figures["saturation_cpu_vs_loop"] = round(
            figures["saturation_cpu_s_per_1000"] / max(figures["ceiling_cpu_s_per_1000"], 1e-9), 2
        )
    if use_celery:
        figures["fleet_cpu_s_per_1000_checks"] = round(
            run["fleet_cpu"] / max(run["written"], 1) * 1000, 3
        )
        rss = run["rss"]
        figures["worker_rss_mib_start"] = round(rss[0][1], 1)
        figures["worker_rss_mib_end"] = round(rss[-1][1], 1)
        figures["worker_rss_slope_mib_per_min"] = round(slope_per_minute(rss), 3)
        figures["worker_children_rss_mib_end"] = [round(x, 1) for x in run["children_rss"][-1]]
        figures["worker_rss_samples"] = [(round(t), round(v, 1)) for t, v in rss]
        figures["worker_children_sockets_start"] = run["children_sockets"][0]
        figures["worker_children_sockets_end"] = run["children_sockets"][-1]
        figures["tcp_connects_per_s_machine_wide"] = round(run["connects_per_s"], 1)
    out = ROOT / "var" / "bench" / "health_throughput.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
    ok_rate = rate >= 0.99 * args.instances / 10
    ok_late = figures["lateness_p99_ms"] <= 1000
    print(
        f"load average (1 min): {load_before:.2f} at start, {load_sustained:.2f} sustained,"
        f" {os.getloadavg()[0]:.2f} at end"
    )
    print(
        f"sustained: {rate:.0f} checks/s of {args.instances / 10:.0f} offered"
        f" {'OK' if ok_rate else 'MISSED'}; lateness p50 {figures['lateness_p50_ms']:.0f} ms,"
        f" p99 {figures['lateness_p99_ms']:.0f} ms (<= 1 s {'OK' if ok_late else 'MISSED'})"
    )
    print(
        f"CPU per 1,000 checks: {figures['cpu_s_per_1000_checks']:.3f} s vs the bare loop's"
        f" {figures['ceiling_cpu_s_per_1000']:.3f} s = {cpu_ratio:.2f} x"
        f" (<= 1.0 {'OK' if cpu_ratio <= 1.0 else 'MISSED'})"
    )
    if sat is not None:
        print(
            f"saturation: {figures['saturation_checks_per_s']:.0f} checks/s vs the loop's"
            f" {roof['warm']:.0f} req/s = {figures['saturation_vs_ceiling']:.2f} x"
            f" (>= 1.0 {'OK' if figures['saturation_vs_ceiling'] >= 1.0 else 'MISSED'});"
            f" {figures['saturation_cpu_s_per_1000']:.3f} CPU-s per 1,000"
        )
    if use_celery:
        print(
            f"worker RSS: {figures['worker_rss_mib_start']:.1f} MiB at start,"
            f" {figures['worker_rss_mib_end']:.1f} MiB at end,"
            f" slope {figures['worker_rss_slope_mib_per_min']:+.3f} MiB/min over"
            f" {run['elapsed'] / 60:.1f} min (children {figures['worker_children_rss_mib_end']})"
        )
        print(
            f"open sockets per worker child: {figures['worker_children_sockets_start']} at"
            f" start, {figures['worker_children_sockets_end']} at end; TCP connects"
            f" {figures['tcp_connects_per_s_machine_wide']:.1f}/s (machine-wide)"
        )
        print(
            f"simulated fleet: {figures['fleet_cpu_s_per_1000_checks']:.3f} CPU-s per 1,000"
            f" checks ({run['fleet_cpu'] / run['elapsed']:.2f} cores); the worker:"
            f" {figures['worker_cpu_utilisation']:.2f} cores"
        )
    print(f"figures written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
