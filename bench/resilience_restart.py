"""Redis and PostgreSQL restarted mid-run: seconds until each part recovers, items lost.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/signalbox_resilience \\
      REDIS_URL=redis://127.0.0.1:6379/13 .venv/bin/python bench/resilience_restart.py [--outage 20]

Runs the two restart tests (controlplane/tests/test_resilience_redis.py and
test_resilience_postgres.py: web, a worker and beat as real processes, a Redis and a
PostgreSQL of their own, a rollout through a real HAProxy, a notification in flight) with
the outage the issue describes (20 s; the tests default to 8 s), and prints what they
measured: seconds from the server coming back until /readyz passes, the worker is
connected, the rollout has finished, probes have resumed and the resolve was sent; and
what was lost (steps, notifications, processes restarted by hand). The machine is printed
with them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = [
    "controlplane/tests/test_resilience_redis.py",
    "controlplane/tests/test_resilience_postgres.py",
]


def main() -> int:
    parser = argparse.ArgumentParser(description="Restart benchmark (see module doc).")
    parser.add_argument("--outage", type=float, default=20.0, help="seconds each server is down")
    args = parser.parse_args()
    with tempfile.NamedTemporaryFile(suffix=".jsonl", delete=False) as figures:
        path = Path(figures.name)
    env = {
        **os.environ,
        "SIGNALBOX_RESILIENCE_OUTAGE_SECONDS": str(args.outage),
        "SIGNALBOX_RESILIENCE_FIGURES": str(path),
    }
    load_before = os.getloadavg()[0]
    print(f"== restart tests with a {args.outage:g} s outage (about a minute each)", flush=True)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", *TESTS, "-q", "-p", "no:cacheprovider"],
        cwd=ROOT, env=env,
    )  # fmt: skip
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    path.unlink()
    report = {
        "command": "bench/resilience_restart.py " + " ".join(sys.argv[1:]),
        "runs": rows,
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_average_1m_at_start": load_before,
            "load_average_1m_at_end": os.getloadavg()[0],
        },
    }
    out = ROOT / "var" / "bench" / "resilience_restart.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    if result.returncode != 0:
        print("a restart test failed: its figures are missing; see the pytest output above")
        return result.returncode
    lost = sum(v for row in rows for k, v in row.items() if k.endswith(("_lost", "_restarts")))
    print(f"items lost or processes restarted by hand: {lost} (want 0)")
    return 0 if lost == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
