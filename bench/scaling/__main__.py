"""Scaling benchmark (issue 12), one command:

    python -m bench.scaling [--quick] [--cycles 20] [--rate 200] [--groups 250,1000]
                            [--rounds 3] [--sync 1] [--skip-rig] [--skip-decide]

(a) seconds from a metric crossing its target to the new instance taking traffic (HAProxy's
own counters), (b) seconds from a scale-down decision to termination with the handshake,
(c) failed requests during the scale-downs under steady traffic (the client's own count), all
on the real rig (bench/scaling/rig.py); (d) the decision loop at 250 and 1,000 groups x 5
metrics (bench/scaling/decide.py). Uses its own database (BENCH_DATABASE_URL, else
signalbox_bench). Prints the machine and the figures; writes var/bench/scaling.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from bench.scaling.common import ROOT, machine, setup_django


def main() -> int:
    parser = argparse.ArgumentParser(description="Scaling benchmark (see module doc).")
    parser.add_argument(
        "--quick", action="store_true", help="5 cycles, 250 groups x 2 rounds: about two minutes"
    )
    parser.add_argument(
        "--cycles", type=int, default=20, help="scale-up + scale-down cycles on the rig"
    )
    parser.add_argument("--rate", type=float, default=200.0, help="requests/s through HAProxy")
    parser.add_argument("--groups", default="250,1000", help="decision loop sizes, comma-separated")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="decision rounds per size (each decides every group once)",
    )
    parser.add_argument(
        "--sync",
        type=int,
        default=1,
        help="the rig group's sync period in seconds (HPA's default: 15)",
    )
    parser.add_argument("--skip-rig", action="store_true")
    parser.add_argument("--skip-decide", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.cycles, args.groups, args.rounds = 5, "250", 2
    setup_django()
    from bench.scaling import decide, rig

    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    print(f"== scaling benchmark, {started}\n   machine: {machine()}", flush=True)
    report: dict[str, Any] = {
        "started": started,
        "machine_at_start": machine(),
        "command": "python -m bench.scaling " + " ".join(sys.argv[1:]),
    }
    out = ROOT / "var" / "bench" / "scaling.json"
    out.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:  # after each part: a failing part keeps the figures of the others
        out.write_text(json.dumps(report, indent=2, default=str) + "\n")

    if not args.skip_rig:
        print(
            f"== rig: {args.cycles} cycles at {args.rate:g} req/s, sync {args.sync} s", flush=True
        )
        report["rig"] = rig.run(args.cycles, args.rate, args.sync)
        save()
    if not args.skip_decide:
        sizes = [int(s) for s in args.groups.split(",") if s]
        report["decide"] = decide.run(sizes, args.rounds)
    report["machine_at_end"] = machine()
    save()
    _print(report)
    print(f"figures written to {out.relative_to(ROOT)}")
    failed = report.get("rig", {}).get("traffic", {}).get("failed", 0)
    return 1 if failed else 0


def _print(report: dict[str, Any]) -> None:
    print("\n== figures")
    print(f"   machine at the end: {report['machine_at_end']}")
    found = report.get("rig")
    if found:
        for name, what in (
            ("scale_up", "metric crossed -> new instance's first session in HAProxy"),
            ("scale_down", "decision -> terminated"),
        ):
            part = found[name]
            print(f"   ({'a' if name == 'scale_up' else 'b'}) {what}, {len(part['runs'])} runs:")
            print("       each: " + ", ".join(f"{r['seconds']}" for r in part["runs"]))
            for key, value in part.items():
                if isinstance(value, dict) and "p50" in value:
                    print(f"       {key}: p50 {value['p50']:.2f} s, max {value['max']:.2f} s")
            if "endings" in part:
                print(f"       endings: {part['endings']}")
        traffic = found["traffic"]
        print(
            f"   (c) {traffic['failed']} failed of {traffic['requests']} requests during "
            f"{traffic['scale_downs']} scale-downs at {traffic['achieved_rate']} req/s "
            f"(offered {traffic['offered_rate']:g}); HAProxy counted "
            f"{traffic['router_5xx_during_drains']} 5xx on the drained servers"
        )
        for failure in traffic["failures"]:
            print(f"       failed: {failure}")
    for row in report.get("decide", []):
        print(
            f"   (d) {row['groups']} groups x {row['metrics']} metrics: one tick of the loop "
            f"(every group decided once) p50 {row['tick_p50_s']} s, p99 {row['tick_p99_s']} s "
            f"over {row['rounds']} ticks ({row['per_group_ms']} ms a group; the loop's own "
            f"CPU p50 {row['tick_cpu_p50_s']} s), "
            f"{row['queries_per_tick']} queries per tick, {row['queries_per_batch']} per claim "
            f"batch (p50 {row['batch_p50_ms']} ms, p99 {row['batch_p99_ms']} ms); one worker "
            f"busy {row['worker_share_at_15s_sync']:.1%} of a 15 s sync period"
        )


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
