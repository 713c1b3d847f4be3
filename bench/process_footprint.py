"""Memory and CPU of each Signalbox process as deployed: the figures behind the Helm chart's
resource requests (deploy/helm/signalbox/values.yaml, docs/operations.md, Kubernetes).

    BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/signalbox_footprint_bench \\
      REDIS_URL=redis://127.0.0.1:6379/3 .venv/bin/python bench/process_footprint.py [--seconds 60]

Production settings, the commands of docker-compose.yml (the worker with the chart's
`--concurrency 2`, what the rollout and probe benchmarks ran): `migrate` on an empty
database (peak RSS and CPU seconds, as the migrations Job would use them), then web
(uvicorn, the image's CMD on a free port), worker and beat side by side for `--seconds`,
beat ticking every second, while one logged-in client fetches dashboard pages, the API and
the OpenAPI schema in a loop and /readyz is asked every second like a kubelet. Sampled once
a second: each process tree's PSS (shared pages counted once, as the container's cgroup
counts them; the worker is a parent and its prefork children) and RSS, and CPU as cores
averaged over the window. The fleet is empty: the worker's figure is its floor (code,
connections, beat ticks); the probe and rollout benchmarks give the CPU per check and step.
The database is dropped and made again at the start.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

import httpx
import psycopg
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PAGES = ["/", "/health/?env=production", "/events/", "/dependencies/", "/api/v1/services",
         "/api/schema/", "/login/"]  # fmt: skip
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fresh_database(url: str) -> None:
    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    admin = parsed._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def tree(pid: int) -> list[int]:
    """pid and every descendant (the prefork children of a Celery worker)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def sample(pid: int) -> tuple[float, float, float]:
    """(PSS MiB, RSS MiB, CPU seconds) of pid's process tree."""
    pss = rss = cpu = 0.0
    for member in tree(pid):
        try:
            rollup = Path(f"/proc/{member}/smaps_rollup").read_text()
            stat = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pss += int(re.search(r"^Pss:\s+(\d+)", rollup, re.M).group(1)) / 1024  # type: ignore[union-attr]
        rss += int(re.search(r"^Rss:\s+(\d+)", rollup, re.M).group(1)) / 1024  # type: ignore[union-attr]
        cpu += (int(stat[11]) + int(stat[12])) / CLOCK_TICKS
    return pss, rss, cpu


def measured_run(command: list[str], env: dict[str, str]) -> dict[str, float]:
    """Peak RSS and CPU seconds of a command run to completion (GNU time)."""
    with tempfile.NamedTemporaryFile("r") as out:
        subprocess.run(["/usr/bin/time", "-o", out.name, "-f", "%M %U %S", *command],
                       cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)  # fmt: skip
        peak_kib, user, system = out.read().split()[-3:]
    cpu = float(user) + float(system)
    return {"peak_rss_mib": round(int(peak_kib) / 1024, 1), "cpu_seconds": cpu}


def log_in(client: httpx.Client, password: str) -> None:
    """A session as a browser behind a TLS proxy gets one. Production cookies are Secure,
    which httpx keeps off plain HTTP, so the cookies go into a header by hand."""
    origin = f"https://{client.base_url.host}:{client.base_url.port}"
    client.headers.update(
        {"X-Forwarded-Proto": "https", "Origin": origin, "Referer": origin + "/login/"}
    )
    page = client.get("/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert token, f"no CSRF token on /login/ (status {page.status_code})"
    csrf = page.cookies.get("csrftoken", "")
    answer = client.post("/login/", headers={"Cookie": f"csrftoken={csrf}"},
                         data={"username": "footprint", "password": password,
                               "csrfmiddlewaretoken": token.group(1)})  # fmt: skip
    session = answer.cookies.get("sessionid")
    assert answer.status_code == 302 and session, f"login failed ({answer.status_code})"
    client.cookies.clear()
    client.headers["Cookie"] = f"sessionid={session}; csrftoken={csrf}"


def main() -> int:
    parser = argparse.ArgumentParser(description="Process footprint (see module doc).")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the window")
    args = parser.parse_args()
    database_url = os.environ.get("BENCH_DATABASE_URL", "")
    if not database_url or not os.environ.get("REDIS_URL"):
        raise SystemExit("set BENCH_DATABASE_URL (dropped and made again) and REDIS_URL")
    work = Path(tempfile.mkdtemp(prefix="footprint-"))
    env = {
        **os.environ, "SIGNALBOX_ENV": "production", "DATABASE_URL": database_url,
        "ALLOWED_HOSTS": "127.0.0.1", "SECURE_SSL_REDIRECT": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "SIGNALBOX_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "SIGNALBOX_VAR_DIR": str(work), "STATIC_ROOT": str(work / "static"),
        "PATH": f"{BIN}:{os.environ['PATH']}",
    }  # fmt: skip
    env.pop("BENCH_DATABASE_URL")
    fresh_database(database_url)
    load_before = os.getloadavg()[0]
    print("== migrate on an empty database", flush=True)
    migrate = measured_run([str(BIN / "python"), "manage.py", "migrate", "--no-input"], env)
    subprocess.run([str(BIN / "python"), "manage.py", "collectstatic", "--no-input"],
                   cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    password = secrets.token_urlsafe(16)
    subprocess.run([str(BIN / "python"), "manage.py", "shell", "-c",
                    "from django.contrib.auth import get_user_model; "
                    "get_user_model().objects.create_superuser("
                    f"'footprint', password='{password}')"],
                   cwd=ROOT, env=env, check=True)  # fmt: skip
    port = free_port()
    commands = {
        "web": ["uvicorn", "controlplane.asgi:application", "--host", "127.0.0.1", "--port",
                str(port), "--ws", "websockets-sansio", "--ws-per-message-deflate", "false"],
        "worker": ["celery", "-A", "controlplane", "worker", "-Q", "probes,rollouts,notify,default",
                   "--concurrency", "2", "--without-gossip", "--without-mingle",
                   "--without-heartbeat", "--loglevel", "WARNING"],
        "beat": ["celery", "-A", "controlplane", "beat", "--loglevel", "WARNING",
                 "--schedule", str(work / "celerybeat-schedule")],
    }  # fmt: skip
    extra = {"web": {"SIGNALBOX_DB_POOL_SIZE": "8"}, "worker": {"DATABASE_CONN_MAX_AGE": "60"}}
    logs = {role: (work / f"{role}.log").open("w") for role in commands}
    processes = {
        role: subprocess.Popen(command, cwd=ROOT, env={**env, **extra.get(role, {})},
                               stdout=subprocess.DEVNULL, stderr=logs[role])
        for role, command in commands.items()
    }  # fmt: skip
    figures: dict[str, dict[str, float]] = {"migrate": migrate}
    try:
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
        deadline = time.monotonic() + 60
        while True:
            try:
                if client.get("/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"web not ready within 60 s; see {work / 'web.log'}")
            time.sleep(0.2)
        log_in(client, password)
        print(f"== web, worker and beat for {args.seconds:g} s", flush=True)
        started = {role: sample(p.pid) for role, p in processes.items()}
        peaks = {role: [0.0, 0.0] for role in processes}
        began = time.monotonic()
        next_sample = began
        statuses: dict[str, dict[int, int]] = {page: {} for page in PAGES}
        while time.monotonic() - began < args.seconds:
            for page in PAGES:
                status = client.get(page).status_code
                statuses[page][status] = statuses[page].get(status, 0) + 1
            if time.monotonic() >= next_sample:
                client.get("/readyz")
                for role, process in processes.items():
                    pss, rss, _ = sample(process.pid)
                    peaks[role] = [max(peaks[role][0], pss), max(peaks[role][1], rss)]
                next_sample += 1.0
        elapsed = time.monotonic() - began
        for role, process in processes.items():
            pss, rss, cpu = sample(process.pid)
            figures[role] = {
                "pss_mib_end": round(pss, 1), "pss_mib_peak": round(peaks[role][0], 1),
                "rss_mib_peak": round(peaks[role][1], 1),
                "cpu_cores": round((cpu - started[role][2]) / elapsed, 3),
            }  # fmt: skip
        figures["pages"] = statuses  # type: ignore[assignment]
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
    print(json.dumps({
        "command": "bench/process_footprint.py " + " ".join(sys.argv[1:]),
        "figures": figures,
        "machine": {"cores": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform(), "load_average_1m_at_start": load_before,
                    "load_average_1m_at_end": os.getloadavg()[0]},
    }, indent=2))  # fmt: skip
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
