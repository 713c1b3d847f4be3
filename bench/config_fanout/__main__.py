"""Config fan-out benchmark: N long-polling watchers on one uvicorn process; time from a
config change to every watcher having it, and the server's memory per watcher.

    python -m bench.config_fanout [--watchers 2000] [--rounds 3]

Against real PostgreSQL (its own database, signalbox_bench_config unless BENCH_DATABASE_URL
says otherwise, migrated here), Redis ($REDIS_URL) and one uvicorn process serving
controlplane.asgi as the Procfile runs it. The watchers (aiohttp, this process) each hold
`GET /api/v1/config/<service>/<env>` with If-None-Match = the current version; a change is
committed through `debugging.config.change` (which announces it on Redis after commit);
each watcher's latency is from just before the change to its 200 arriving. Memory: the
server's RSS with no watchers and with all of them held, divided by N. Prints the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import resource
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[2]
TARGET_P99_MS = 1000
PATH = "/api/v1/config/bench-svc/production"


def database_url() -> str:
    return os.environ.get(
        "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/signalbox_bench_config"
    )


def prepare_database(env: dict[str, str]) -> None:
    name = database_url().rsplit("/", 1)[1]
    subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", name],
                   capture_output=True, check=False)  # fmt: skip
    print(f"migrating {name} ...", flush=True)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env,
                   check=True)  # fmt: skip


def setup_django(env: dict[str, str]) -> str:
    """Team, service, environment, a report token; returns the token."""
    os.environ.update(env)
    import django

    django.setup()
    from catalog.models import ApiToken, Environment, Service, Team

    team, _ = Team.objects.get_or_create(slug="bench-team", defaults={"name": "Bench"})
    Service.objects.get_or_create(slug="bench-svc", defaults={"name": "Bench", "team": team})
    Environment.objects.get_or_create(slug="production", defaults={"name": "Production"})
    _, plain = ApiToken.issue(team=team, name=f"bench-{time.time():.0f}", scopes=["report"])
    return plain


def change(value: int) -> None:
    from catalog.models import Environment, Service
    from debugging import config

    config.change(
        Service.objects.get(slug="bench-svc"),
        Environment.objects.get(slug="production"),
        set_items=[config.Item("value", "round", value)],
        actor="bench",
    )


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def held(base: str) -> float:
    with urllib.request.urlopen(base + "/metrics", timeout=30) as answer:
        for line in answer.read().decode().splitlines():
            if line.startswith("signalbox_config_watchers "):
                return float(line.split()[1])
    return 0.0


async def run(base: str, token: str, watchers: int, rounds: int, server_pid: int) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=400)
    async with aiohttp.ClientSession(base, connector=connector, timeout=timeout) as session:
        async with session.get(PATH, headers=headers) as first:
            etag = first.headers["ETag"]
        rss_before = rss_kib(server_pid)
        for number in range(1, rounds + 1):
            started = 0.0
            arrivals: list[float] = []

            async def watch(tag: str, arrivals: list[float] = arrivals) -> None:
                async with session.get(
                    PATH, params={"wait": "5m"}, headers={**headers, "If-None-Match": tag}
                ) as answer:
                    await answer.read()
                    assert answer.status == 200, answer.status
                    arrivals.append(time.perf_counter())

            tasks = [asyncio.create_task(watch(etag)) for _ in range(watchers)]
            setup = time.monotonic()
            while await asyncio.to_thread(held, base) < watchers:
                await asyncio.sleep(0.5)
                if time.monotonic() - setup > 240:
                    raise RuntimeError("the watchers were not all held within 240 s")
            rss_held = rss_kib(server_pid)
            await asyncio.sleep(1)
            started = time.perf_counter()
            await asyncio.to_thread(change, int(time.time() * 1000) + number)
            await asyncio.gather(*tasks)
            latencies = sorted((t - started) * 1000 for t in arrivals)
            p50 = statistics.median(latencies)
            p99 = latencies[int(len(latencies) * 0.99) - 1]
            per_watcher = (rss_held - rss_before) * 1024 / watchers
            print(
                f"round {number}: {len(latencies)} watchers got the change: "
                f"p50 {p50:.0f} ms, p99 {p99:.0f} ms, max {latencies[-1]:.0f} ms "
                f"(target p99 <= {TARGET_P99_MS} ms); setup {time.monotonic() - setup:.1f} s; "
                f"server RSS {rss_before / 1024:.1f} MiB idle, {rss_held / 1024:.1f} MiB held "
                f"= {per_watcher / 1024:.1f} KiB per watcher",
                flush=True,
            )
            async with session.get(PATH, headers=headers) as fresh:
                etag = fresh.headers["ETag"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--watchers", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, max(soft, args.watchers * 2 + 1024))
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    print(
        f"machine: {platform.node()} {platform.machine()} {os.cpu_count()} cores, "
        f"{platform.python_implementation()} {platform.python_version()}; "
        f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}; "
        f"fd limit {wanted}",
        flush=True,
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "controlplane.settings",
        "DATABASE_URL": database_url(),
        "DEBUG": "false",
        "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
    }
    prepare_database(env)
    token = setup_django(env)
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "controlplane.asgi:application", "--fd",
         str(listener.fileno()), "--lifespan", "off", "--log-level", "warning",
         "--backlog", "4096"],
        cwd=ROOT, env=env, pass_fds=[listener.fileno()],
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard)),
    )  # fmt: skip
    listener.close()
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(base + "/healthz", timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        asyncio.run(run(base, token, args.watchers, args.rounds, server.pid))
    finally:
        server.terminate()
        server.wait(timeout=15)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
