"""`manage.py seed_demo`: demo people, catalog and instances from the fleet plan; re-runnable."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import yaml
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from catalog.catalog_yaml import (
    API_VERSION,
    CatalogConflict,
    CatalogInvalid,
    ImportResult,
    Source,
    import_catalog,
)
from catalog.choices import InstanceEvent, Lifecycle, Role, Scope, TokenEvent
from catalog.models import ApiToken, Environment, Instance, Service, Team
from catalog.signals import instance_registered, send_on_commit
from controlplane.env import env_secret, local_secret
from controlplane.events import publish

ACTOR = "seed_demo"
ADMIN_USERNAME = "admin"
TOKEN_NAME = "demo"  # noqa: S105 (the token's label, not its secret)
# Each team's token for its fleet instances' metrics (`report` only), kept for the fleet.
REPORT_TOKEN_NAME = "demo-fleet-report"  # noqa: S105 (a label)
# Three demo people per team, in plan order: owner, deployer, viewer.
PEOPLE = [
    "alice",
    "bob",
    "carol",
    "dave",
    "erin",
    "frank",
    "grace",
    "heidi",
    "ivan",
    "judy",
    "mallory",
    "niaj",
    "olivia",
    "peggy",
    "rupert",
]
ROLES = (Role.OWNER, Role.DEPLOYER, Role.VIEWER)


class Command(BaseCommand):
    help = (
        "Create the demo admin, demo people per team, the fleet plan's catalog (through "
        "catalog YAML) and its instances. Safe to re-run: a second run changes nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--fleet",
            default=str(Path(settings.VAR_DIR) / "fleet.json"),
            metavar="FILE",
            help="the fleet plan (python -m fleet plan --config fleet/demo.yaml --out FILE)",
        )
        parser.add_argument(
            "--report-tokens",
            default=str(Path(settings.VAR_DIR) / "report-tokens.json"),
            metavar="FILE",
            help="where to keep each team's report token for the fleet's metrics "
            "(python -m fleet run --report-tokens FILE); kept while still valid",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["fleet"])
        plan = _read_plan(path)
        password, origin = _demo_password()
        with transaction.atomic():
            admin, reset = self._admin(password)
            people = {
                team["slug"]: self._people(position, team["slug"], admin.password, reset=reset)
                for position, team in enumerate(plan["teams"])
            }
            result = self._catalog(path, plan, people)
            created, updated, skipped = self._instances(plan["instances"])
            token = self._token(plan["teams"][0]["slug"]) if plan["teams"] else None
            tokens_path = Path(options["report_tokens"])
            reporting, issued = self._report_tokens([t["slug"] for t in plan["teams"]],
                                                    tokens_path)  # fmt: skip
        _write_secret(tokens_path, json.dumps(reporting, indent=2) + "\n")
        self.stdout.write(
            f"Report tokens for the fleet's metrics: {issued} issued, "
            f"{len(reporting) - issued} kept ({tokens_path})."
        )
        self.stdout.write(f"Catalog: {result.summary()}.")
        self.stdout.write(
            f"Instances: {created} created, {updated} updated, "
            f"{len(plan['instances']) - created - updated - skipped} unchanged"
            + (f", {skipped} skipped (port 0: chosen when the fleet starts)" if skipped else "")
            + "."
        )
        if token:
            self.stdout.write(
                f"Demo API token for team {plan['teams'][0]['slug']} (shown once; "
                f"only its hash is stored): {token}"
            )
        self._logins(password, origin, people)

    def _admin(self, password: str) -> tuple[Any, bool]:
        """The demo superuser, and whether its password had to be (re)set."""
        admin, created = get_user_model().objects.get_or_create(
            username=ADMIN_USERNAME, defaults={"email": f"{ADMIN_USERNAME}@example.com"}
        )
        reset = created or not admin.check_password(password)
        if reset or not (admin.is_staff and admin.is_superuser and admin.is_active):
            admin.is_staff = admin.is_superuser = admin.is_active = True
            if reset:
                admin.set_password(password)
            admin.save()
        return admin, reset

    def _people(self, position: int, team: str, hashed: str, *, reset: bool) -> dict[str, str]:
        """Owner, deployer and viewer of a team, sharing the admin's password hash.

        Hashing is slow by design (~0.3 s); the demo people reuse the admin's hash, and
        are only touched again when the demo password itself changed.
        """
        people: dict[str, str] = {}
        for offset, role in enumerate(ROLES):
            index = position * len(ROLES) + offset
            username = PEOPLE[index] if index < len(PEOPLE) else f"{team}-{role}"
            user, created = get_user_model().objects.get_or_create(
                username=username, defaults={"email": f"{username}@example.com", "password": hashed}
            )
            if not created and (reset or not user.is_active):
                user.password, user.is_active = hashed, True
                user.save(update_fields=["password", "is_active"])
            people[username] = str(role)
        return people

    def _catalog(
        self, path: Path, plan: dict[str, Any], people: dict[str, dict[str, str]]
    ) -> ImportResult:
        text = yaml.safe_dump_all(_documents(plan, people), explicit_start=True, sort_keys=False)
        try:
            return import_catalog([Source(f"{path} (as catalog YAML)", text)], actor=ACTOR)
        except CatalogInvalid as exc:
            for problem in exc.problems:
                self.stderr.write(f"error: {problem.located()}")
            raise CommandError(
                f"the fleet plan {path} does not make a valid catalog; fix the plan's config "
                "(fleet/demo.yaml) and run `python -m fleet plan` again"
            ) from exc
        except CatalogConflict as exc:
            raise CommandError(f"{exc}; run seed_demo again") from exc

    def _instances(self, planned: list[dict[str, Any]]) -> tuple[int, int, int]:
        services = {s.slug: s for s in Service.objects.all()}
        environments = {e.slug: e for e in Environment.objects.all()}
        existing = {
            (i.service_id, i.environment_id, i.host, i.port): i
            for i in Instance.objects.filter(service__slug__in={p["service"] for p in planned})
        }
        created = updated = skipped = 0
        for spec in planned:
            if not spec["port"]:
                skipped += 1
                continue
            service = services.get(spec["service"])
            environment = environments.get(spec["environment"])
            if service is None or environment is None:
                raise CommandError(
                    f"fleet plan instance {spec['id']} names service {spec['service']!r} and "
                    f"environment {spec['environment']!r}; the plan must declare both"
                )
            key = (service.pk, environment.pk, spec["host"], spec["port"])
            instance = existing.get(key)
            if instance is None:
                instance = Instance(
                    service=service, environment=environment, host=spec["host"], port=spec["port"]
                )
                created += 1
            elif _matches(instance, spec):
                continue
            else:
                updated += 1
            self._save_instance(instance, spec)
        return created, updated, skipped

    def _save_instance(self, instance: Instance, spec: dict[str, Any]) -> None:
        new = instance.pk is None
        revived = not new and instance.lifecycle != Lifecycle.ACTIVE
        instance.version = spec["version"]
        instance.zone = spec["zone"]
        instance.labels = {**instance.labels, **_labels(spec)}
        instance.lifecycle = Lifecycle.ACTIVE
        instance.save()
        publish(
            InstanceEvent.REGISTERED if new or revived else InstanceEvent.UPDATED,
            actor=ACTOR,
            subject=instance,
            message=f"{instance} from the demo fleet plan ({spec['id']})",
            payload={"version": instance.version, "fleet_id": spec["id"]},
        )
        if new or revived:
            send_on_commit(instance_registered, instance)

    def _token(self, team_slug: str) -> str | None:
        team = Team.objects.get(slug=team_slug)
        if ApiToken.objects.active().filter(team=team, name=TOKEN_NAME).exists():
            return None
        token, plain = ApiToken.issue(team=team, name=TOKEN_NAME, scopes=list(Scope.values))
        publish(
            TokenEvent.ISSUED,
            actor=ACTOR,
            subject=token,
            team=team,
            message=f"demo token {token} issued by seed_demo",
        )
        return plain

    def _report_tokens(self, teams: list[str], path: Path) -> tuple[dict[str, str], int]:
        """Each team's `report` token: the one in `path` while it still works, else a new one
        (the old one with that name revoked: its secret was only ever in that file)."""
        try:
            known = json.loads(path.read_text()) if path.exists() else {}
        except ValueError:
            known = {}
        tokens, issued = {}, 0
        for slug in teams:
            plain = known.get(slug) if isinstance(known, dict) else None
            found = ApiToken.find(plain) if isinstance(plain, str) else None
            if (
                found is not None
                and found.team.slug == slug
                and found.name == REPORT_TOKEN_NAME
                and found.has_scope(Scope.REPORT)
            ):
                tokens[slug] = str(plain)
                continue
            team = Team.objects.get(slug=slug)
            for old in ApiToken.objects.active().filter(team=team, name=REPORT_TOKEN_NAME):
                old.revoke()
            token, tokens[slug] = ApiToken.issue(
                team=team, name=REPORT_TOKEN_NAME, scopes=[Scope.REPORT]
            )
            publish(
                TokenEvent.ISSUED,
                actor=ACTOR,
                subject=token,
                team=team,
                message=f"report token {token} issued by seed_demo for the demo fleet's metrics",
            )
            issued += 1
        return tokens, issued

    def _logins(self, password: str, origin: str, people: dict[str, dict[str, str]]) -> None:
        self.stdout.write(f"Log in as {ADMIN_USERNAME} with password {password} ({origin}).")
        for team, members in people.items():
            who = ", ".join(f"{name} ({role})" for name, role in members.items())
            self.stdout.write(f"  team {team}: {who}; same password")


def _read_plan(path: Path) -> dict[str, Any]:
    hint = "create it with: python -m fleet plan --config fleet/demo.yaml --out " + str(path)
    try:
        plan = json.loads(path.read_text())
    except FileNotFoundError:
        raise CommandError(f"no fleet plan at {path}; {hint}") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise CommandError(f"cannot read the fleet plan {path}: {exc}; {hint}") from exc
    missing = [
        k
        for k in ("teams", "environments", "external_dependencies", "services", "instances")
        if not isinstance(plan.get(k), list)
    ]
    if missing:
        raise CommandError(f"the fleet plan {path} lacks the list(s) {', '.join(missing)}; {hint}")
    return dict(plan)


def _demo_password() -> tuple[str, str]:
    """The demo password and where it came from; generated once and kept under VAR_DIR."""
    given = env_secret("SIGNALBOX_DEMO_PASSWORD")
    if given:
        return given, "from SIGNALBOX_DEMO_PASSWORD"
    path = Path(settings.VAR_DIR) / "demo_password"
    return local_secret(path, lambda: secrets.token_urlsafe(12)), f"kept in {path}"


def _documents(plan: dict[str, Any], people: dict[str, dict[str, str]]) -> list[dict[str, Any]]:
    """The plan as catalog YAML documents, so the seed goes through catalog-as-code."""

    def doc(
        kind: str, name: str, title: str, spec: dict[str, Any], description: str = ""
    ) -> dict[str, Any]:
        metadata = {"name": name, "title": title}
        if description:
            metadata["description"] = description
        return {"apiVersion": API_VERSION, "kind": kind, "metadata": metadata, "spec": spec}

    documents = [
        doc("Team", t["slug"], t["name"], {"members": people[t["slug"]]}) for t in plan["teams"]
    ]
    documents += [
        doc(
            "Environment",
            e["slug"],
            e["name"],
            {"order": e["order"], "production": e["is_production"]},
        )
        for e in plan["environments"]
    ]
    documents += [
        doc(
            "ExternalDependency",
            x["slug"],
            x["name"],
            _external_spec(x),
        )
        for x in plan["external_dependencies"]
    ]
    for s in plan["services"]:
        spec = {"owner": s["team"], "tier": s["tier"]}
        for key, field in (("repository", "repository_url"), ("runbook", "runbook_url")):
            if s.get(field):
                spec[key] = s[field]
        spec["dependsOn"] = [f"service:{d}" for d in s.get("depends_on", [])] + [
            f"external:{x}" for x in s.get("external", [])
        ]
        documents.append(doc("Service", s["slug"], s["name"], spec, s.get("description", "")))
    return documents


def _external_spec(x: dict[str, Any]) -> dict[str, Any]:
    """The catalog file's spec of a demo vendor: its page and how Signalbox watches it."""
    keys = (
        ("statusPage", "status_page_url"),
        ("statusSource", "status_source"),
        ("statusComponents", "status_components"),
        ("probeUrl", "probe_url"),
    )
    return {key: x[field] for key, field in keys if x.get(field)}


def _labels(spec: dict[str, Any]) -> dict[str, str]:
    # Every demo instance serves resilience4j metrics, so circuits are scraped from the start.
    labels = {"fleet_id": str(spec["id"]), "circuits.prometheus_path": "/metrics"}
    if spec.get("grpc_port"):
        labels["grpc_port"] = str(spec["grpc_port"])
    return labels


def _matches(instance: Instance, spec: dict[str, Any]) -> bool:
    ours = _labels(spec)
    return (
        instance.version == spec["version"]
        and instance.zone == spec["zone"]
        and instance.lifecycle == Lifecycle.ACTIVE
        and all(instance.labels.get(k) == v for k, v in ours.items())
    )


def _write_secret(path: Path, text: str) -> None:
    """Write a file only its owner may read, replacing it whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".tmp")
    partial.touch(mode=0o600)
    partial.chmod(0o600)
    partial.write_text(text)
    partial.replace(path)
