"""Live fan-out benchmark: 2,000 websocket clients, 100 events/s, commit to receipt.

    python -m bench.live_fanout [--clients 2000] [--client-processes 4] [--rate 100]
        [--seconds 20] [--deflate on|off] [--ws websockets-sansio|websockets]
        [--audiences "events page,home,service pages"]

Against real PostgreSQL (its own database, signalbox_bench_live unless BENCH_DATABASE_URL
says otherwise), Redis ($REDIS_URL) and one uvicorn process serving controlplane.asgi as
the Procfile runs it (`--ws websockets-sansio --ws-per-message-deflate false`; `--ws` and
`--deflate` change that for comparisons), for three kinds of audience:

- events page: every client watches the `events` topic (the Events page): every event's
  row to every client;
- home: every client watches home (`dashboard:home`): every event's row goes on top of
  home's timeline (the page keeps ten);
- service pages: clients spread over 50 service pages (`dashboard:service.<slug>`), each
  event goes to the clients watching its service (40 of 2,000).

Each event is published once on its topic's Redis channel; the web process's hub
(`controlplane.live.Hub`) writes it to its clients' websockets, batching a topic's rows
into one message per `BATCH_WINDOW_SECONDS` (100 ms; the first after a quiet spell goes
at once). So at 100 events/s a client gets ~10 messages a second, not 100.

It starts the server, connects the clients (bench/live_fanout/clients.py, spread over
`--client-processes` processes so that their own CPU does not queue behind one core and get
counted as the server's latency), publishes at the rate through the spine
(bench/live_fanout/publisher.py, a separate process, each event committed in its own
transaction) and reports commit-to-
receipt latency (p50/p99/max) of the first message that brought each event to each client,
how many (client, event) pairs had not arrived 2 s after the last publish, and the CPU of
the server, the clients (all their processes), the publisher and Redis, each as % of one
core over the run, with the 1-minute load average before and after. Prints the machine;
writes var/bench/live_fanout-<ws>-deflate-<on|off>.json.

Earlier versions also ran channels-redis's default `RedisChannelLayer` for comparison
(`--layers core`). Live fragments no longer go through a channel layer at all (neither
pushing nor fanning out: the hub has its own pub/sub connection), so which layer is
configured does not change this path and the comparison was dropped.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import redis

from bench.live_fanout.clients import BUCKET_MS

ROOT = Path(__file__).resolve().parents[2]
SERVICES = 50
SETTINGS = "controlplane.settings"
TARGET_P99_MS = 250


def database_url() -> str:
    return os.environ.get(
        "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/signalbox_bench_live"
    )


def prepare() -> str:
    """Create and migrate the database, a team, its services and a signed-in session."""
    os.environ["DATABASE_URL"] = database_url()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")
    os.environ["SIGNALBOX_EVENT_CONSUMERS"] = ""
    sys.path.insert(0, str(ROOT))
    import psycopg

    from controlplane.env import database_from_url

    db = database_from_url(os.environ["DATABASE_URL"])
    with psycopg.connect(
        host=str(db["HOST"]), port=str(db["PORT"] or 5432), user=str(db["USER"]),
        password=str(db["PASSWORD"]), dbname="postgres", autocommit=True,
    ) as conn:  # fmt: skip
        if not conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [db["NAME"]]
        ).fetchone():
            print(f"== creating database {db['NAME']}", flush=True)
            conn.execute(f'CREATE DATABASE "{db["NAME"]}"')
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client

    from catalog.models import Service, Team

    print("== migrating", flush=True)
    call_command("migrate", verbosity=0)
    call_command("flush", interactive=False, verbosity=0)
    team = Team.objects.create(slug="bench", name="Bench")
    Service.objects.bulk_create(
        [Service(slug=f"svc-{i:02d}", name=f"Service {i}", team=team) for i in range(SERVICES)]
    )
    user = get_user_model().objects.create_user("viewer", password="x")  # noqa: S106
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


def environment(settings_module: str) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": settings_module,
        "DATABASE_URL": database_url(),
        "SIGNALBOX_EVENT_CONSUMERS": "",
        "PYTHONPATH": str(ROOT),
    }


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def redis_cpu(client: redis.Redis) -> float:
    info: Any = client.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def start_server(settings_module: str, log: Path, args: Any) -> tuple[subprocess.Popen[bytes], int]:
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    # The Procfile's web command (one uvicorn process, its websocket flags), on our socket.
    command = [
        sys.executable, "-m", "uvicorn", "controlplane.asgi:application", "--fd",
        str(listener.fileno()), "--ws", args.ws, "--lifespan", "off", "--log-level", "warning",
        "--ws-per-message-deflate", "true" if args.deflate == "on" else "false",
        "--backlog", str(max(2048, args.clients)),
    ]  # fmt: skip
    with log.open("w") as output:
        server = subprocess.Popen(
            command, cwd=ROOT, env=environment(settings_module), stdout=output,
            stderr=subprocess.STDOUT, pass_fds=[listener.fileno()],
        )  # fmt: skip
    listener.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return server, port
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise RuntimeError(f"uvicorn did not start; see {log}")


def start_clients(
    port: int, cookie: str, topics: list[str], args: Any, work: Path, commits: Path
) -> list[tuple[subprocess.Popen[bytes], Path]]:
    """`--client-processes` processes sharing the clients, each connected when this returns."""
    per, extra = divmod(args.clients, args.client_processes)
    started: list[tuple[subprocess.Popen[bytes], Path]] = []
    first = 0
    for n in range(args.client_processes):
        count = per + (1 if n < extra else 0)
        out = work / f"receipts-{n}.json"
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.live_fanout.clients", "--url", f"ws://127.0.0.1:{port}",
             "--cookie", cookie, "--topics", ";".join(topics), "--first", str(first),
             "--count", str(count), "--commits", str(commits), "--out", str(out)],
            cwd=ROOT, stdout=subprocess.PIPE, env=environment(SETTINGS),
        )  # fmt: skip
        started.append((process, out))
        first += count
    for process, _ in started:
        assert process.stdout is not None
        ready = process.stdout.readline().decode().strip()
        if not ready.startswith("ready"):
            raise RuntimeError(f"clients did not connect: {ready!r}")
    return started


def publish(args: Any, work: Path, commits: Path, settings_module: str) -> None:
    """`--publisher-processes` publishers sharing one schedule; their commits merged."""
    start_at = time.time() + 1.0  # every publisher set up by then
    outs = [work / f"commits-{n}.json" for n in range(args.publisher_processes)]
    publishers = []
    for n, out in enumerate(outs):
        command = [
            sys.executable, "-m", "bench.live_fanout.publisher", "--rate", str(args.rate),
            "--seconds", str(args.seconds), "--services", str(SERVICES), "--out", str(out),
            "--share", str(n), "--of", str(len(outs)), "--start-at", str(start_at),
        ]  # fmt: skip
        publishers.append(subprocess.Popen(command, cwd=ROOT, env=environment(settings_module)))
    for publisher in publishers:
        if publisher.wait() != 0:
            raise RuntimeError(f"a publisher failed with {publisher.returncode}")
    parts = [json.loads(out.read_text()) for out in outs]
    events = sum(len(part["commits"]) for part in parts)
    cpu = sum(part["cpu_s"] for part in parts)
    commits.write_text(
        json.dumps(
            {
                "commits": [pair for part in parts for pair in part["commits"]],
                "achieved_rate": events / max(part["elapsed_s"] for part in parts),
                "late": sum(part["late"] for part in parts),
                "cpu_ms_per_event": 1000 * cpu / max(1, events),
            }
        )
    )


def percentile(histogram: dict[int, int], total: int, fraction: float) -> float:
    """The latency (ms, bucket's upper edge) below which `fraction` of pairs arrived."""
    rank, seen = max(1, int(total * fraction)), 0
    for bucket in sorted(histogram):
        seen += histogram[bucket]
        if seen >= rank:
            return round((bucket + 1) * BUCKET_MS, 1)
    return float("nan")


def run_once(
    settings_module: str, topics: list[str], receivers: int, cookie: str, args: Any, work: Path
) -> dict[str, Any]:
    server, port = start_server(settings_module, work / "server.log", args)
    commits = work / "commits.json"
    commits.unlink(missing_ok=True)
    clients: list[tuple[subprocess.Popen[bytes], Path]] = []
    try:
        clients = start_clients(port, cookie, topics, args, work, commits)
        store = redis.Redis.from_url(os.environ["REDIS_URL"])
        time.sleep(1.0)  # the last joins' subscriptions and accept writes settle
        load_before = os.getloadavg()[0]
        server_cpu0 = cpu_seconds(server.pid)
        clients_cpu0 = sum(cpu_seconds(process.pid) for process, _ in clients)
        redis_cpu0, began = redis_cpu(store), time.monotonic()
        publish(args, work, commits, settings_module)
        time.sleep(2.0)  # stragglers
        wall = time.monotonic() - began
        server_cpu = (cpu_seconds(server.pid) - server_cpu0) / wall
        clients_cpu = (
            sum(cpu_seconds(process.pid) for process, _ in clients) - clients_cpu0
        ) / wall
        redis_share = (redis_cpu(store) - redis_cpu0) / wall
        load_after = os.getloadavg()[0]
    finally:
        for process, _ in clients:
            process.terminate()
        for process, _ in clients:
            process.wait(120)
        server.terminate()
        server.wait(30)
    published = json.loads(commits.read_text())
    histogram: dict[int, int] = {}
    pairs = messages = closed = 0
    for _, out in clients:
        seen = json.loads(out.read_text())
        for bucket, count in seen["histogram"].items():
            histogram[int(bucket)] = histogram.get(int(bucket), 0) + count
        pairs += seen["pairs"]
        messages += seen["messages"]
        closed += seen["closed_during_run"]
    expected = len(published["commits"]) * receivers
    return {
        "events": len(published["commits"]),
        "achieved_rate": round(published["achieved_rate"], 1),
        "deliveries_expected": expected,
        "deliveries_seen": pairs,
        "messages_received": messages,
        "clients_closed_during_run": closed,
        "missing_percent": round(100 * (expected - pairs) / expected, 2) if expected else 0,
        "p50_ms": percentile(histogram, pairs, 0.5) if pairs else None,
        "p99_ms": percentile(histogram, pairs, 0.99) if pairs else None,
        "max_ms": round((max(histogram) + 1) * BUCKET_MS, 1) if pairs else None,
        "server_cpu_percent": round(100 * server_cpu, 1),
        "clients_cpu_percent": round(100 * clients_cpu, 1),
        "publisher_cpu_percent": round(
            published["cpu_ms_per_event"] * published["achieved_rate"] / 10, 1
        ),
        "publisher_cpu_ms_per_event": round(published["cpu_ms_per_event"], 2),
        "redis_cpu_percent": round(100 * redis_share, 1),
        "load_average_1m": [round(load_before, 2), round(load_after, 2)],
    }


def machine() -> dict[str, Any]:
    model = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")), "",
    )  # fmt: skip
    import channels_redis
    import uvicorn

    return {
        "cpu": model, "cores": os.cpu_count(), "os": platform.platform(),
        "python": platform.python_version(), "uvicorn": uvicorn.__version__,
        "channels_redis": channels_redis.__version__,
        "load_average_1m_at_end": os.getloadavg()[0],
    }  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.live_fanout", description=__doc__)
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument(
        "--client-processes", type=int, default=4,
        help="processes sharing the clients (each ~500 pages: ~a quarter of its core)",
    )  # fmt: skip
    parser.add_argument("--rate", type=float, default=100.0, help="events per second")
    parser.add_argument(
        "--publisher-processes", type=int, default=2,
        help="processes sharing the publishing (one needs ~40 %% of a core at 100 events/s)",
    )  # fmt: skip
    parser.add_argument("--seconds", type=float, default=20.0, help="how long to publish")
    parser.add_argument(
        "--deflate", choices=["on", "off"], default="off",
        help="uvicorn's per-message deflate (off as the Procfile runs it; on: uvicorn's default)",
    )  # fmt: skip
    parser.add_argument(
        "--ws", choices=["websockets-sansio", "websockets", "wsproto"],
        default="websockets-sansio", help="uvicorn's websocket protocol (the Procfile's)",
    )  # fmt: skip
    parser.add_argument(
        "--audiences", default="events page,home,service pages", help="comma-separated"
    )
    args = parser.parse_args()
    if "REDIS_URL" not in os.environ:
        print("Set REDIS_URL (e.g. redis://127.0.0.1:6379/9): the bench uses that Redis.")
        return 2
    cookie = prepare()
    audiences = {
        "events page": (["events"], args.clients),
        "home": (["dashboard:home"], args.clients),
        "service pages": (
            [f"dashboard:service.svc-{i:02d}" for i in range(SERVICES)],
            args.clients // SERVICES,
        ),
    }
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for audience in args.audiences.split(","):
            topics, receivers = audiences[audience]
            print(
                f"== {audience}: {args.clients} clients, {args.rate:g} events/s "
                f"for {args.seconds:g} s, {receivers} receivers per event",
                flush=True,
            )
            row = run_once(SETTINGS, topics, receivers, cookie, args, Path(tmp))
            row.update(
                audience=audience, receivers_per_event=receivers, deflate=args.deflate, ws=args.ws
            )
            results.append(row)
            print("   " + json.dumps(row), flush=True)
            met = row["p99_ms"] is not None and row["p99_ms"] <= TARGET_P99_MS
            print(
                f"   target p99 <= {TARGET_P99_MS} ms, 0 missing: "
                + (
                    "met"
                    if met and row["deliveries_seen"] == row["deliveries_expected"]
                    else "NOT met"
                ),
                flush=True,
            )
    report = {"machine": machine(), "clients": args.clients, "rate": args.rate,
              "seconds": args.seconds, "results": results}  # fmt: skip
    print(json.dumps(report["machine"]))
    out = ROOT / "var" / "bench" / f"live_fanout-{args.ws}-deflate-{args.deflate}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"== wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
