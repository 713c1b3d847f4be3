"""Live fan-out benchmark: 500 websocket clients, 100 events/s, commit to receipt.

    python -m bench.live_fanout [--clients 500] [--rate 100] [--seconds 15] [--deflate on|off]
        [--audiences "events page,home,service pages"]

Against real PostgreSQL (its own database, signalbox_bench_live unless BENCH_DATABASE_URL
says otherwise), Redis ($REDIS_URL) and one uvicorn process serving controlplane.asgi as
the Procfile runs it, for three kinds of audience:

- events page: every client watches the `events` topic (the Events page): every event's
  row to every client;
- home: every client watches home (`dashboard:home`): every event's row goes on top of
  home's timeline (the page keeps ten);
- service pages: clients spread over 50 service pages (`dashboard:service.<slug>`), each
  event goes to the ten clients watching its service.

Each event is published once on its topic's Redis channel; the web process's hub
(`controlplane.live.Hub`) writes it to its clients' websockets, batching a topic's rows
into one message per `BATCH_WINDOW_SECONDS` (100 ms; the first after a quiet spell goes
at once). So at 100 events/s a client gets ~10 messages a second, not 100.

It starts the server, connects the clients (bench/live_fanout/clients.py, a separate
process), publishes at the rate through the spine (bench/live_fanout/publisher.py, a
separate process, each event committed in its own transaction) and reports commit-to-
receipt latency (p50/p99/max) of the first message that brought each event to each client,
how many (client, event) pairs had not arrived 2 s after the last publish, and the CPU of
the server, the clients, the publisher and Redis. Prints the machine; writes
var/bench/live_fanout-deflate-<on|off>.json.

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
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import redis

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


def start_server(
    settings_module: str, log: Path, deflate: bool
) -> tuple[subprocess.Popen[bytes], int]:
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    command = [
        sys.executable, "-m", "uvicorn", "controlplane.asgi:application", "--fd",
        str(listener.fileno()), "--ws", "websockets", "--lifespan", "off", "--log-level", "warning",
        "--ws-per-message-deflate", "true" if deflate else "false",
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


def run_once(
    settings_module: str, topics: list[str], receivers: int, cookie: str, args: Any, work: Path
) -> dict[str, Any]:
    server, port = start_server(settings_module, work / "server.log", args.deflate == "on")
    receipts, commits = work / "receipts.json", work / "commits.json"
    clients = subprocess.Popen(
        [sys.executable, "-m", "bench.live_fanout.clients", "--url", f"ws://127.0.0.1:{port}",
         "--cookie", cookie, "--topics", ";".join(topics), "--count", str(args.clients),
         "--out", str(receipts)],
        cwd=ROOT, stdout=subprocess.PIPE, env=environment(settings_module),
    )  # fmt: skip
    try:
        assert clients.stdout is not None
        ready = clients.stdout.readline().decode().strip()
        if not ready.startswith("ready"):
            raise RuntimeError(f"clients did not connect: {ready!r}")
        store = redis.Redis.from_url(os.environ["REDIS_URL"])
        server_cpu0, clients_cpu0 = cpu_seconds(server.pid), cpu_seconds(clients.pid)
        redis_cpu0, began = redis_cpu(store), time.monotonic()
        subprocess.run(
            [sys.executable, "-m", "bench.live_fanout.publisher", "--rate", str(args.rate),
             "--seconds", str(args.seconds), "--services", str(SERVICES), "--out", str(commits)],
            cwd=ROOT, env=environment(settings_module), check=True,
        )  # fmt: skip
        time.sleep(2.0)  # stragglers
        wall = time.monotonic() - began
        server_cpu = (cpu_seconds(server.pid) - server_cpu0) / wall
        clients_cpu = (cpu_seconds(clients.pid) - clients_cpu0) / wall
        redis_share = (redis_cpu(store) - redis_cpu0) / wall
    finally:
        clients.terminate()
        clients.wait(30)
        server.terminate()
        server.wait(30)
    published = json.loads(commits.read_text())
    committed = dict((int(k), t) for k, t in published["commits"])
    seen = json.loads(receipts.read_text())
    first: dict[tuple[int, int], float] = {}
    for client, event, at in seen:
        if event in committed and (client, event) not in first:
            first[(client, event)] = at
    latencies = sorted(1000 * (at - committed[event]) for (_, event), at in first.items())
    expected = len(committed) * receivers
    return {
        "events": len(committed),
        "achieved_rate": round(published["achieved_rate"], 1),
        "deliveries_expected": expected,
        "deliveries_seen": len(latencies),
        "messages_received": len(seen),
        "missing_percent": round(100 * (expected - len(latencies)) / expected, 2)
        if expected
        else 0,
        "p50_ms": round(statistics.median(latencies), 1) if latencies else None,
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1], 1) if latencies else None,
        "max_ms": round(latencies[-1], 1) if latencies else None,
        "server_cpu_percent": round(100 * server_cpu, 1),
        "clients_cpu_percent": round(100 * clients_cpu, 1),
        "publisher_cpu_ms_per_event": round(published["cpu_ms_per_event"], 2),
        "redis_cpu_percent": round(100 * redis_share, 1),
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
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--rate", type=float, default=100.0, help="events per second")
    parser.add_argument("--seconds", type=float, default=15.0, help="how long to publish")
    parser.add_argument(
        "--deflate", choices=["on", "off"], default="on",
        help="uvicorn's per-message deflate (on: uvicorn's default, as the Procfile runs it)",
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
            row.update(audience=audience, receivers_per_event=receivers, deflate=args.deflate)
            results.append(row)
            print("   " + json.dumps(row), flush=True)
    report = {"machine": machine(), "clients": args.clients, "rate": args.rate,
              "seconds": args.seconds, "results": results}  # fmt: skip
    print(json.dumps(report["machine"]))
    out = ROOT / "var" / "bench" / f"live_fanout-deflate-{args.deflate}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"== wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
