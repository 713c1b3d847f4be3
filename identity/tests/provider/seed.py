"""Migrate the provider's database and register Signalbox and the people (JSON on stdin).

{"client_id", "client_secret", "redirect_uri", "people": [{"username", "password",
"email", "first_name", "groups": [...]}]}
"""

from __future__ import annotations

import json
import os
import sys

import django


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "identity.tests.provider.settings")
    django.setup()
    from django.contrib.auth.models import Group, User
    from django.core.management import call_command
    from oauth2_provider.models import Application

    spec = json.load(sys.stdin)
    call_command("migrate", verbosity=0)
    Application.objects.create(
        name="Signalbox",
        client_id=spec["client_id"],
        client_secret=spec["client_secret"],
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=spec["redirect_uri"],
        algorithm=Application.RS256_ALGORITHM,
        skip_authorization=False,
    )
    for person in spec["people"]:
        user = User.objects.create_user(
            person["username"],
            email=person["email"],
            password=person["password"],
            first_name=person.get("first_name", ""),
        )
        for name in person["groups"]:
            user.groups.add(Group.objects.get_or_create(name=name)[0])
    print("seeded", len(spec["people"]), "people")


if __name__ == "__main__":
    main()
