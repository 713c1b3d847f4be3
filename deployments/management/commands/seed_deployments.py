"""`manage.py seed_deployments --fleet var/fleet.json`: the demo's HAProxy config and router."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import httpx
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from deployments import demo


class Command(BaseCommand):
    help = (
        "Write an HAProxy config for the demo fleet's production services (one frontend "
        "port each, from 7800, and one preview frontend each, from 7850) and register it as "
        "their traffic router. Safe to re-run."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--fleet", default="var/fleet.json", help="the fleet plan JSON")
        parser.add_argument("--config", default="", help="where to write (var/haproxy.cfg)")
        parser.add_argument(
            "--route-fleet",
            action="store_true",
            help="instead: wait for the fleet's control API, send its calls through HAProxy "
            "and its preview traffic to the preview frontends",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        plan_path = Path(options["fleet"])
        if not plan_path.exists():
            raise CommandError(
                f"{plan_path} does not exist; run: python -m fleet plan --config fleet/demo.yaml "
                f"--out {plan_path}"
            )
        plan = demo.load_plan(plan_path)
        if options["route_fleet"]:
            self.route_fleet(plan)
            return
        config = Path(options["config"] or settings.VAR_DIR / "haproxy.cfg").resolve()
        socket_path = config.with_name("haproxy.sock")
        config.write_text(demo.haproxy_config(plan, socket_path))
        routes = demo.register(plan, socket_path)
        self.stdout.write(f"seed_deployments: wrote {config}; {len(routes)} services routed")
        for frontend in demo.frontends(plan):
            self.stdout.write(
                f"  {frontend.service}: http://127.0.0.1:{frontend.port}/ "
                f"(preview: http://127.0.0.1:{frontend.preview_port}/)"
            )
        if shutil.which("haproxy") is None:
            self.stdout.write(
                "seed_deployments: haproxy is not installed, so rollouts will wait for their "
                "router (apt-get install haproxy, then make run again)"
            )

    def route_fleet(self, plan: dict[str, Any]) -> None:
        control = plan["control"]
        base = f"http://{control['host']}:{control['port']}"
        for _ in range(120):
            try:
                httpx.get(f"{base}/health", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(1)
        else:
            raise CommandError(f"the fleet's control API at {base} did not answer in 2 minutes")
        for frontend in demo.frontends(plan):
            where = f"{frontend.service}/{demo.DEMO_ENVIRONMENT}"
            self.put(f"{base}/fleet/routes/{where}", f"http://127.0.0.1:{frontend.port}")
            self.put(f"{base}/fleet/previews/{where}", f"http://127.0.0.1:{frontend.preview_port}")
        self.stdout.write(
            f"seed_deployments: the fleet now calls production services through "
            f"HAProxy ({len(demo.frontends(plan))} frontends) and each preview frontend "
            "once a second"
        )

    def put(self, endpoint: str, url: str) -> None:
        response = httpx.put(endpoint, json={"url": url}, timeout=5)
        if response.status_code >= 400:
            raise CommandError(f"the fleet refused {url} at {endpoint}: {response.text[:200]}")
