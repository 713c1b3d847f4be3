"""`manage.py demo_canary --service checkout --version 1.5.0 --error-rate 50`: a new version."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from catalog.models import Environment, Instance, Service
from catalog.signals import instance_registered, send_on_commit
from deployments import demo


class Command(BaseCommand):
    help = (
        "Start an instance of a new version in the demo fleet (optionally failing a share of "
        "its requests), register it, and print the command that rolls it out."
    )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        # Django's own --version (its release number) would clash with the documented one:
        # the command's --version replaces it.
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--service", required=True, help="a demo service's slug (checkout)")
        parser.add_argument(
            "--version",
            required=True,
            help="the new version; one containing 'bad' misbehaves by itself (docs/fleet.md)",
        )
        parser.add_argument("--error-rate", type=int, default=0, help="percent of 5xx answers")
        parser.add_argument("--fleet", default="var/fleet.json", help="the running fleet's plan")

    def handle(self, *args: Any, **options: Any) -> None:
        plan = demo.load_plan(Path(options["fleet"]))
        service = Service.objects.filter(slug=options["service"]).first()
        if service is None:
            raise CommandError(f"no service {options['service']!r}")
        environment = Environment.objects.get(slug=demo.DEMO_ENVIRONMENT)
        base = f"http://{plan['control']['host']}:{plan['control']['port']}"
        try:
            started = httpx.post(
                f"{base}/fleet/instances",
                json={
                    "service": service.slug,
                    "environment": environment.slug,
                    "version": options["version"],
                },
                timeout=5,
            )
        except httpx.HTTPError as exc:
            raise CommandError(
                f"the fleet's control API at {base} is not answering ({exc}); "
                "is `make run` running?"
            ) from None
        if started.status_code >= 400:
            raise CommandError(f"the fleet refused: {started.text[:300]}")
        instance = started.json()
        if options["error_rate"]:
            httpx.post(
                f"{base}/fleet/instances/{instance['id']}/faults",
                json={"error_rate": options["error_rate"]},
                timeout=5,
            )
        with transaction.atomic():
            registered, _ = Instance.objects.update_or_create(
                service=service,
                environment=environment,
                host=instance["host"],
                port=instance["port"],
                defaults={"version": options["version"]},
            )
            # As the registration API does: health checks it from now on, so the rollout's
            # health metric has a result by its first reading.
            send_on_commit(instance_registered, registered)
        self.stdout.write(
            f"demo_canary: {service.slug} {options['version']} runs at "
            f"{instance['host']}:{instance['port']}"
            + (f", failing {options['error_rate']}% of requests" if options["error_rate"] else "")
        )
        self.stdout.write(
            "roll it out:  SIGNALBOX_URL=http://127.0.0.1:8000 SIGNALBOX_TOKEN=... "
            f".venv/bin/signalbox rollout start --service {service.slug} --env "
            f"{environment.slug} --version {options['version']} --wait"
        )
