"""`manage.py seed_scaling --fleet var/fleet.json`: the demo's scaling group (safe to re-run)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from catalog.models import Environment, Service
from deployments.models import TrafficRoute
from scaling.choices import DriverKind, Source
from scaling.models import ScalingGroup, ScalingMetric

DEMO_SERVICE = "search"
DEMO_ENVIRONMENT = "production"
# Requests per second one search instance should carry. The demo's traffic (5 req/s into
# web, each calling search once) keeps three busy; raise it and search scales out.
DEMO_TARGET_RPS = 2.0


class Command(BaseCommand):
    help = (
        "Create the demo's scaling group: search in production, on the process driver "
        "(the fleet's control API), scaling on the router's request rate. Safe to re-run: an "
        "existing group keeps its settings."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--fleet", default="var/fleet.json", help="the fleet plan JSON")
        parser.add_argument("--service", default=DEMO_SERVICE, help="which service scales")
        parser.add_argument("--environment", default=DEMO_ENVIRONMENT)

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["fleet"])
        if not path.exists():
            raise CommandError(
                f"{path} does not exist; run: python -m fleet plan --config fleet/demo.yaml "
                f"--out {path}"
            )
        plan = json.loads(path.read_text())
        control = plan["control"]
        control_url = f"http://{control['host']}:{control['port']}"
        service = Service.objects.filter(slug=options["service"]).first()
        environment = Environment.objects.filter(slug=options["environment"]).first()
        if service is None or environment is None:
            raise CommandError(
                f"no service {options['service']!r} in {options['environment']!r}: "
                "run manage.py seed_demo first"
            )
        if not TrafficRoute.objects.filter(service=service, environment=environment).exists():
            raise CommandError(
                f"{service.slug} has no traffic route in {environment.slug}: run "
                "manage.py seed_deployments first (a group scales behind its router)"
            )
        count = sum(
            1
            for i in plan["instances"]
            if i["service"] == service.slug and i["environment"] == environment.slug
        )
        with transaction.atomic():
            group, created = ScalingGroup.objects.get_or_create(
                service=service,
                environment=environment,
                defaults={
                    "driver": DriverKind.PROCESS,
                    "driver_config": {"control_url": control_url},
                    "min_instances": min(2, count),
                    "max_instances": max(6, count),
                    "desired": count,
                    "readiness_delay_seconds": 5,
                    "launch_deadline_seconds": 60,
                    "drain_timeout_seconds": 30,
                    "lifecycle_timeout_seconds": 30,
                    "termination_grace_seconds": 10,
                    "down_stabilization_seconds": 60,
                },
            )
            if created:
                ScalingMetric.objects.create(
                    group=group, source=Source.REQUEST_RATE, target=DEMO_TARGET_RPS
                )
            elif group.driver_config.get("control_url") != control_url:
                group.driver_config = {**group.driver_config, "control_url": control_url}
                group.save(update_fields=["driver_config", "updated_at"])
        verb = "created" if created else "kept"
        self.stdout.write(
            f"seed_scaling: {verb} {group} ({group.min_instances}-{group.max_instances} "
            f"instances, {DEMO_TARGET_RPS:g} req/s each); raise the demo's traffic with "
            f"curl -X POST {control_url}/fleet/traffic -d '{{\"rps\": 20}}' to see it scale out"
        )
