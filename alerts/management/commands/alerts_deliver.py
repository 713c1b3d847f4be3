"""A standalone delivery loop for the notification outbox (instead of, or beside, Celery)."""

from __future__ import annotations

import os
import socket
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from alerts import outbox


class Command(BaseCommand):
    help = "Claim due notifications (SKIP LOCKED, with a lease) and deliver them, in a loop."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="one pass, then exit")
        parser.add_argument("--batch", type=int, default=50)
        parser.add_argument(
            "--idle-sleep", type=float, default=0.2, help="seconds to sleep when nothing was due"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        worker = f"{socket.gethostname()}:{os.getpid()}"
        self.stdout.write(f"delivering notifications as {worker}")
        while True:
            sent = outbox.deliver_due(worker, options["batch"])
            if sent:
                self.stdout.write(f"sent {sent}")
            if options["once"]:
                return
            if not sent:
                time.sleep(options["idle_sleep"])
