"""Publishes events through the spine at a steady rate and records when each one committed.

    DJANGO_SETTINGS_MODULE=... python -m bench.live_fanout.publisher --rate 100 --seconds 15
        --services 50 --out commits.json [--share 0 --of 2 --start-at EPOCH]

With `--of N`, N processes share one schedule (this one publishes events share, share+N,
...; all from --start-at), so one process's CPU or a busy machine does not cap the rate.

Each event is `bench.tick` on one of the bench services (round robin), published with
`controlplane.events.publish` in its own transaction, as an app would: on commit the spine
renders the timeline rows once and pushes them to the `events`, home, team and service
topics that some page watches.
The commit time is taken by an on-commit callback registered before publish's own.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--services", type=int, default=50)
    parser.add_argument("--out", required=True)
    parser.add_argument("--share", type=int, default=0)
    parser.add_argument("--of", type=int, default=1)
    parser.add_argument("--start-at", type=float, default=0.0, help="epoch seconds")
    args = parser.parse_args()

    import django

    django.setup()
    from django.db import transaction

    from catalog.models import Service
    from controlplane.events import publish

    services = list(Service.objects.select_related("team").order_by("slug")[: args.services])
    commits: list[tuple[int, float]] = []
    total = int(args.rate * args.seconds)
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    began = max(args.start_at, time.time())
    late = 0
    for n in range(args.share, total, args.of):
        due = began + n / args.rate
        wait = due - time.time()
        if wait > 0:
            time.sleep(wait)
        else:
            late += 1
        stamp: dict[str, float] = {}

        def committed(stamp: dict[str, float] = stamp) -> None:
            stamp["at"] = time.time()

        with transaction.atomic():
            transaction.on_commit(committed)
            event = publish(
                "bench.tick", actor="bench", subject=services[n % len(services)],
                message=f"tick {n}",
            )  # fmt: skip
        commits.append((event.pk, stamp["at"]))
    elapsed = time.time() - began
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    Path(args.out).write_text(
        json.dumps(
            {
                "commits": commits,
                "elapsed_s": elapsed,
                "achieved_rate": len(commits) * args.of / elapsed,
                "late": late,
                "cpu_s": cpu,
                "cpu_ms_per_event": 1000 * cpu / max(1, len(commits)),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
