"""`manage.py bootstrap_admin`: the first admin, from the environment, if there is none yet.

Made for a step that runs on every deploy (compose's `migrate` service, a Kubernetes Job):
once any superuser exists it changes nothing, so a password changed in the UI stays
changed. See docs/operations.md, "First login".
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction

from controlplane.env import env_secret, env_str


class Command(BaseCommand):
    help = (
        "Create the first admin (a superuser) from SIGNALBOX_ADMIN_USERNAME (default admin), "
        "SIGNALBOX_ADMIN_EMAIL and SIGNALBOX_ADMIN_PASSWORD or SIGNALBOX_ADMIN_PASSWORD_FILE, "
        "unless a superuser exists already."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        users = get_user_model()
        username = env_str("SIGNALBOX_ADMIN_USERNAME", "admin")
        email = env_str("SIGNALBOX_ADMIN_EMAIL", "")
        try:
            password = env_secret("SIGNALBOX_ADMIN_PASSWORD")
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from None
        with transaction.atomic():
            # Two deploys running this at once: the second waits here, then finds the admin.
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", ["bootstrap_admin"])
            first = users.objects.filter(is_superuser=True).order_by("pk").first()
            if first is not None:
                self.stdout.write(
                    f"An admin exists already ({first.get_username()}); nothing changed."
                )
                return
            if not password:
                self.stdout.write(
                    "No admin yet and no SIGNALBOX_ADMIN_PASSWORD_FILE (or "
                    "SIGNALBOX_ADMIN_PASSWORD) set: set one and run this again, or run "
                    "`manage.py createsuperuser`."
                )
                return
            if users.objects.filter(**{users.USERNAME_FIELD: username}).exists():
                raise CommandError(
                    f"a user {username!r} exists but is not an admin; set "
                    "SIGNALBOX_ADMIN_USERNAME to another name, or make that user a superuser "
                    "in the admin"
                )
            candidate = users(**{users.USERNAME_FIELD: username}, email=email)
            try:
                validate_password(password, user=candidate)
            except ValidationError as exc:
                raise CommandError(
                    "SIGNALBOX_ADMIN_PASSWORD: " + " ".join(exc.messages)
                ) from None
            users.objects.create_superuser(username, email=email, password=password)
        self.stdout.write(f"Created the admin {username!r}; log in with its password.")
