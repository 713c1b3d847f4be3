"""`python -m fleet plan|run|bench|statuspage`: lay out, run, or measure the demo fleet, or
serve a vendor's status page."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from fleet.bench import run_bench
from fleet.breaker import BreakerConfig
from fleet.errors import FleetError
from fleet.plan import ConfigError, Plan, build_plan, load_plan, point_vendors_at, write_plan
from fleet.reporter import TokenFile
from fleet.runtime import Fleet, listen_address
from fleet.statuspage import serve as serve_statuspage

TRAFFIC_ENV = "SIGNALBOX_FLEET_TRAFFIC_RPS"
LISTEN_ENV = "SIGNALBOX_FLEET_LISTEN"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="fleet %(levelname)s %(message)s")
    try:
        if args.command == "plan":
            return _plan(args)
        if args.command == "bench":
            return run_bench(args.config, args.count_per_service, args.probes, args.base_port)
        if args.command == "statuspage":
            components = [c.strip() for c in args.components.split(",") if c.strip()]
            asyncio.run(serve_statuspage(args.host, args.port, args.name, components))
            return 0
        return asyncio.run(_run(args))
    except (ConfigError, FleetError) as exc:
        print(f"fleet: {exc}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m fleet", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    plan = sub.add_parser("plan", help="write the plan JSON without starting anything")
    plan.add_argument("--config", type=Path, default=Path("fleet/demo.yaml"))
    plan.add_argument("--out", type=Path, default=Path("var/fleet.json"))
    plan.add_argument("--vendor-host", default=None, metavar="NAME",
                      help="where the demo status page runs when it is not this machine "
                           "(docker-compose: vendor): the YAML's loopback vendor URLs point there")
    _layout_options(plan)

    run = sub.add_parser("run", help="run the fleet until SIGINT or SIGTERM")
    source = run.add_mutually_exclusive_group(required=True)
    source.add_argument("--plan", type=Path, help="a plan written by `plan`")
    source.add_argument("--config", type=Path, help="plan from this YAML in memory")
    _layout_options(run)
    run.add_argument("--listen", default=None, metavar="ADDR",
                     help=f"the address to bind, 0.0.0.0 for all (default: ${LISTEN_ENV}, "
                          "the plan's host when it is an address of this machine, 127.0.0.1)")
    run.add_argument("--state", type=Path,
                     help="where to keep the instance list (default: the --plan file)")
    run.add_argument("--traffic", type=float, default=None, metavar="RPS",
                     help=f"calls per second to the entry services (default: ${TRAFFIC_ENV} or 0)")
    run.add_argument("--report-url", default=None, metavar="URL",
                     help="Signalbox's base URL: each instance reports memory_mb, cpu_percent "
                          "and in_flight to its POST /api/v1/metrics (default: off)")
    run.add_argument("--report-tokens", type=Path, default=Path("var/report-tokens.json"),
                     metavar="FILE", help="team slug -> report token JSON (seed_demo writes it)")
    run.add_argument("--otlp-url", default=None, metavar="URL",
                     help="export OpenTelemetry traces over OTLP/HTTP to this endpoint "
                          "(Signalbox: http://HOST:8000/v1/traces), with the team tokens of "
                          "--report-tokens")
    run.add_argument("--report-interval", type=float, default=10.0, metavar="SECONDS",
                     help="seconds between reports (default 10)")
    run.add_argument("--breaker-wait", type=float, default=None, metavar="SECONDS",
                     help="seconds a circuit stays open before trial calls (default 10)")
    run.add_argument("--breaker-minimum-calls", type=int, default=None, metavar="N",
                     help="calls in the window before a circuit may open (default 10)")

    page = sub.add_parser("statuspage", help="serve a vendor's Statuspage-format status page")
    page.add_argument("--host", default="127.0.0.1",
                      help="a loopback address, or 0.0.0.0 inside a container (default 127.0.0.1)")
    page.add_argument("--port", type=int, default=8950, help="0 picks a free port (default 8950)")
    page.add_argument("--name", default="Stripe", help="the vendor's name (default Stripe)")
    page.add_argument("--components", default="API,Checkout,Dashboard,Webhooks",
                      help="comma-separated component names")

    bench = sub.add_parser("bench", help="start a big fleet in a subprocess and measure it")
    bench.add_argument("--config", type=Path, default=Path("fleet/demo.yaml"))
    bench.add_argument("--count-per-service", type=int, default=64,
                       help="instances per service per environment")
    bench.add_argument("--probes", type=int, default=20_000,
                       help="GET /health requests to send across all instances")
    bench.add_argument("--base-port", type=int, default=0,
                       help="0 = free ports (Linux gives bind(0) only half its ephemeral "
                            "range, so above ~10,000 instances pass a free range, e.g. 10000)")
    return parser


def _layout_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base-port", type=int, default=None,
                        help="instances count up from this + 1; 0 = free ports "
                             "(default: $SIGNALBOX_FLEET_BASE_PORT, the YAML, 7100)")
    parser.add_argument("--control-port", type=int, default=None,
                        help="the control API's port; 0 = a free port "
                             "(default: $SIGNALBOX_FLEET_CONTROL_PORT, the YAML, 7900)")
    parser.add_argument("--count-per-service", type=int, default=None, metavar="N",
                        help="run N instances of every service in every environment")
    parser.add_argument("--host", default=None, metavar="NAME",
                        help="the address the plan gives every instance, which Signalbox "
                             "registers and probes (default: $SIGNALBOX_FLEET_HOST, the YAML, "
                             "127.0.0.1)")


def _plan(args: argparse.Namespace) -> int:
    plan = build_plan(
        args.config,
        base_port=args.base_port,
        control_port=args.control_port,
        count_per_service=args.count_per_service,
        host=args.host,
    )
    if args.vendor_host:
        point_vendors_at(plan, args.vendor_host)
    write_plan(plan, args.out)
    print(f"fleet: wrote {args.out}: {len(plan.services)} services, "
          f"{len(plan.instances)} instances on {plan.control_host}, "
          f"control API on port {plan.control_port}")
    return 0


async def _run(args: argparse.Namespace) -> int:
    plan: Plan
    if args.plan is not None:
        if any(v is not None for v in (args.base_port, args.count_per_service, args.host)):
            raise ConfigError("--base-port, --count-per-service and --host go with --config "
                              "(a plan's addresses are already laid out)")
        plan = load_plan(args.plan)
        if args.control_port is not None:
            plan.control_port = args.control_port
    else:
        plan = build_plan(
            args.config,
            base_port=args.base_port,
            control_port=args.control_port,
            count_per_service=args.count_per_service,
            host=args.host,
        )
    defaults = BreakerConfig()
    breaker = BreakerConfig(
        wait_in_open=args.breaker_wait if args.breaker_wait is not None
        else defaults.wait_in_open,
        minimum_calls=args.breaker_minimum_calls if args.breaker_minimum_calls is not None
        else defaults.minimum_calls,
    )
    fleet = Fleet(
        plan,
        state_path=args.state or args.plan,
        breaker_config=breaker,
        traffic_rps=args.traffic if args.traffic is not None else _traffic_from_env(),
        listen=_listen(args, plan),
        report_url=args.report_url,
        report_tokens=(
            TokenFile(args.report_tokens).current if args.report_url or args.otlp_url else None
        ),
        report_interval=args.report_interval,
        otlp_url=args.otlp_url,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await fleet.start()
    print(f"fleet: {len(fleet.instances)} instances up on {fleet.listen} (registered as "
          f"{plan.control_host}), control API at {fleet.control_url}, "
          f"traffic {fleet.traffic.rps:g} rps (Ctrl-C stops it)", flush=True)
    # local_host differs from listen only when listening on every address (0.0.0.0).
    if fleet.listen == fleet.local_host != plan.control_host:
        print(f"fleet: note: instances are registered as {plan.control_host} but listen on "
              f"{fleet.listen} only; unless {plan.control_host} leads Signalbox there, pass "
              f"--listen 0.0.0.0 (or the address {plan.control_host} resolves to)", flush=True)
    try:
        await stop.wait()
    finally:
        print("fleet: stopping", flush=True)
        await fleet.stop()
    return 0


def _listen(args: argparse.Namespace, plan: Plan) -> str:
    """The bind address: the flag, else the environment, else the fleet's default."""
    if args.listen is not None:
        return listen_address(args.listen, plan.control_host, "--listen")
    return listen_address(os.environ.get(LISTEN_ENV) or None, plan.control_host, LISTEN_ENV)


def _traffic_from_env() -> float:
    raw = os.environ.get(TRAFFIC_ENV, "")
    if not raw:
        return 0.0
    try:
        rps = float(raw)
    except ValueError:
        raise ConfigError(f"{TRAFFIC_ENV}={raw!r}: must be a number of calls per second") from None
    if rps < 0:
        raise ConfigError(f"{TRAFFIC_ENV}={raw!r}: must not be negative")
    return rps


if __name__ == "__main__":
    sys.exit(main())
