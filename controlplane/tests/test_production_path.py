"""The production path, as the image and docker-compose.yml run it, without Docker.

The test reads the Dockerfile (its ENV, the `collectstatic` line, the web CMD) and
docker-compose.yml (each service's command, environment and secrets) and runs them as
processes here: collectstatic as the image build runs it, compose's `migrate` service
(migrations and the first admin from the secrets file), then uvicorn, a Celery worker and
beat with SIGNALBOX_ENV=production and compose's environment. A change to either file is
a change to this test.

What Docker would provide is stood in for, and only that: the image's paths
(/var/lib/signalbox, STATIC_ROOT, /run/secrets) become this test's temporary directories,
DATABASE_URL and REDIS_URL point at the test's own database and Redis database instead of
compose's `postgres` and `redis` hosts, and the web process gets a listening socket of ours
(`--fd`) instead of `--host 0.0.0.0 --port 8000`.

Then a real browser (Debian's chromium) logs in through the login form as the admin the
`migrate` service created, opens every page (every URL pattern outside /api/v1/ and the
admin's model pages, its arguments filled from seeded objects: a new page is covered the
day it is added) and the API docs: each answers 200 (405 where only POST is taken), and
every static file a page loads has a hashed name and far-future, immutable caching.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.fernet import Fernet
from django.conf import settings
from django.test import override_settings
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from catalog.tests.matrix import Case
from controlplane import crypto

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

REPO = Path(settings.BASE_DIR)
START_SECONDS = 90  # a bound for a loaded machine; a quiet one starts in a few seconds
ADMIN_PASSWORD = "first-login-" + secrets.token_hex(8)
# WhiteNoise's "forever" for files with a hash in their name; at least a year is what
# browsers and CDNs treat as far-future.
YEAR_SECONDS = 365 * 24 * 3600
HASHED_NAME = re.compile(r"\.[0-9a-f]{12}\.")


# -- reading the Dockerfile and docker-compose.yml ------------------------------------------


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, its arguments) in order, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in (REPO / "Dockerfile").read_text().splitlines():
        if line.strip().startswith("#") or not line.strip():
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        keyword, _, rest = pending.strip().partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        pending = ""
    return instructions


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, rest in dockerfile():
        if keyword == "ENV":
            for token in shlex.split(rest):
                name, _, value = token.partition("=")
                env[name] = value
    return env


def collectstatic_step() -> str:
    """The shell command of the RUN line that collects static files, as the build runs it."""
    runs = [rest for keyword, rest in dockerfile() if keyword == "RUN" and "collectstatic" in rest]
    assert len(runs) == 1, "one RUN line of the Dockerfile runs collectstatic"
    steps = [step.strip() for step in runs[0].split(" && ") if "collectstatic" in step]
    assert len(steps) == 1, runs[0]
    return steps[0]


def image_cmd() -> list[str]:
    [cmd] = [json.loads(rest) for keyword, rest in dockerfile() if keyword == "CMD"]
    return list(cmd)


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    return loaded


def interpolate(value: str) -> str:
    """Compose's ${VAR:-default} with nothing set in the environment: the defaults."""
    return re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", value)


# -- the stand-ins for what Docker provides ---------------------------------------------------


@dataclass
class Box:
    """The image's file system paths, mapped to this test's directories."""

    root: Path
    paths: dict[str, str] = field(default_factory=dict)

    def map(self, value: str) -> str:
        for image_path in sorted(self.paths, key=len, reverse=True):
            value = value.replace(image_path, self.paths[image_path])
        return value


def make_box(tmp_path: Path) -> Box:
    env = image_env()
    box = Box(tmp_path)
    for name, image_path in [
        ("static", env["STATIC_ROOT"]),
        ("var", env["SIGNALBOX_VAR_DIR"]),
        ("secrets", "/run/secrets"),
    ]:
        (tmp_path / name).mkdir()
        box.paths[image_path] = str(tmp_path / name)
    return box


def write_secrets(box: Box) -> None:
    """What ./secrets/ holds, as the README has a user make it, under compose's names."""
    values = {
        "secret_key": secrets.token_urlsafe(50),
        "encryption_key": Fernet.generate_key().decode(),
        "admin_password": ADMIN_PASSWORD,
    }
    for name, spec in compose()["secrets"].items():
        source = Path(spec["file"]).name
        assert source in values, f"compose names a secret file the README does not: {source}"
        (box.root / "secrets" / name).write_text(values[source] + "\n")


def own_database_url() -> str:
    db = {key: str(value or "") for key, value in settings.DATABASES["default"].items()}
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    port = f":{db['PORT']}" if db["PORT"] else ""
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}{port}/{db['NAME']}"


def service_env(box: Box, service: str) -> dict[str, str]:
    """The process environment of a compose service, in the image, on this machine."""
    spec = compose()["services"][service]
    env = {key: box.map(value) for key, value in image_env().items()}
    for key, value in spec["environment"].items():
        env[key] = box.map(interpolate(str(value)))
    for secret in spec.get("secrets", []):
        assert Path(box.map(f"/run/secrets/{secret}")).exists(), secret
    # compose's hosts `postgres` and `redis` are the test's own database and Redis database
    assert env["DATABASE_URL"].startswith("postgres://") and env["REDIS_URL"].startswith("redis")
    env["DATABASE_URL"] = own_database_url()
    env["REDIS_URL"] = settings.REDIS_URL
    env["PATH"] = f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin"
    env["HOME"] = str(box.root)
    return env


def service_command(box: Box, service: str) -> list[str]:
    spec = compose()["services"][service]
    return [box.map(arg) for arg in spec.get("command") or image_cmd()]


# -- the processes ----------------------------------------------------------------------------


@dataclass
class Processes:
    box: Box
    running: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self, name: str) -> str:
        path = self.box.root / f"{name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def run(
        self, name: str, command: list[str], env: dict[str, str], fds: tuple[int, ...] = ()
    ) -> subprocess.Popen[bytes]:
        with (self.box.root / f"{name}.log").open("ab") as output:
            process = subprocess.Popen(
                command, cwd=REPO, env=env, stdout=output, stderr=subprocess.STDOUT, pass_fds=fds
            )
        self.running[name] = process
        return process

    def start_web(self) -> None:
        command = service_command(self.box, "web")
        for option in ("--host", "--port"):  # Docker's published port: a socket of ours
            at = command.index(option)
            del command[at : at + 2]
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        env = service_env(self.box, "web")
        self.run("web", [*command, "--fd", str(listener.fileno())], env, (listener.fileno(),))
        listener.close()

    def stop(self) -> None:
        for process in self.running.values():
            process.terminate()
        for process in self.running.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_for(what: str, condition: Callable[[], bool], processes: Processes) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        for name, process in processes.running.items():
            if process.poll() is not None and name not in {"build", "migrate"}:
                pytest.fail(f"{name} exited with {process.returncode}:\n{processes.log(name)}")
        if condition():
            return
        time.sleep(0.2)
    logs = "\n".join(f"== {name}\n{processes.log(name)}" for name in processes.running)
    pytest.fail(f"{what} not within {START_SECONDS} s\n{logs}")


def get(url: str) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers={"Accept-Encoding": "gzip"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            headers = {key.lower(): value for key, value in response.headers.items()}
            return response.status, headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, {key.lower(): value for key, value in error.headers.items()}, b""


def answers(url: str) -> bool:
    """The URL answers 200 now (the listening socket accepts before uvicorn serves)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@pytest.fixture
def box(tmp_path: Path) -> Box:
    made = make_box(tmp_path)
    write_secrets(made)
    return made


@pytest.fixture
def processes(box: Box, transactional_db: None) -> Iterator[Processes]:
    running = Processes(box)
    try:
        yield running
    finally:
        running.stop()


# -- the pages and what fills their arguments -------------------------------------------------


def seed(world: Any) -> Case:
    """One of everything a page shows, through the permission matrices' own builders."""
    from django.utils import timezone

    from alerts.tests.permission_matrix import a_route, a_silence, an_incident
    from catalog.models import ExternalDependency, Invitation
    from catalog.tests.permission_matrix import a_ci_token
    from circuits.tests.permission_matrix import a_circuit, an_override
    from debugging.tests.permission_matrix import a_window
    from deployments.tests.permission_matrix import a_freeze, a_rollout
    from health import services as health_services
    from health.models import MaintenanceWindow
    from health.tests.permission_matrix import a_heartbeat
    from scaling.models import ScalingGroup, ScalingMetric

    case = Case(world=world)
    for build in (a_rollout(), an_incident, a_silence, a_circuit, an_override, a_window):
        build(case)
    world.service.trace_link_template = "https://traces.example.com/{service}/{trace_id}"
    world.service.save(update_fields=["trace_link_template"])
    group = ScalingGroup.objects.create(
        service=world.service,
        environment=world.production,
        driver="process",
        driver_config={"control_url": "http://10.0.0.9:7900"},
        min_instances=1,
        max_instances=4,
        desired=2,
    )
    ScalingMetric.objects.create(group=group, source="cpu", target=60)
    case.made["group"] = group
    case.made["external"] = ExternalDependency.objects.create(slug="stripe", name="Stripe")
    # What the team, heartbeat, check, maintenance and freeze pages act on.
    for build in (a_route, a_heartbeat, a_ci_token, a_freeze):
        build(case)
    now = timezone.now()
    case.made["maintenance"] = MaintenanceWindow.objects.create(
        service=world.service, starts_at=now, ends_at=now + timedelta(hours=1)
    )
    case.made["invitation"] = Invitation.objects.create(
        team=world.team, email="new@example.com", token_hash=Invitation.hash_token(INVITE),
        invited_by=world.owner, expires_at=now + timedelta(days=1),
    )  # fmt: skip
    case.made["membership"] = world.team.memberships.filter(user=world.viewer).get()
    # A published status page and a badge: the public pages (no login)
    from statuspage.tests.permission_matrix import a_badge, a_page

    a_page(case)
    case.made["status_page"] = case.made.pop("page")
    case.made["status_page"].published = True
    case.made["status_page"].save(update_fields=["published"])
    a_badge(case)
    instance = world.service.instances.order_by("pk").first()
    health_services.ensure_checks(instance)
    case.made["instance"] = instance
    return case


def _service(c: Case) -> dict[str, Any]:
    return {"slug": c.world.service.slug}


def _team(c: Case) -> dict[str, Any]:
    return {"slug": c.world.team.slug}


def _config(c: Case) -> dict[str, Any]:
    return {"service": c.world.service.slug, "environment": c.world.production.slug}


def _pk(made: str) -> Callable[[Case], dict[str, Any]]:
    return lambda c: {"pk": c.made[made].pk}


INVITE = "an-invitation-token-for-the-production-path-test"

# How each page with arguments is filled. A page added without a line here fails the test
# naming it: add how to fill it, and it is covered from then on.
FILL: dict[str, Callable[[Case], dict[str, Any]]] = {
    "dashboard:team": lambda c: {"slug": c.world.team.slug},
    "dashboard:service": _service,
    "dashboard:service-deploy": _service,
    "dashboard:service-markers": _service,
    "dashboard:external-dependency": lambda c: {"slug": c.made["external"].slug},
    "catalog:instance": _pk("instance"),
    "deployments:rollout": _pk("rollout"),
    "deployments:rollout-actions": _pk("rollout"),
    "deployments:rollout-action": lambda c: {"pk": c.made["rollout"].pk, "action": "promote"},
    "health:service": _service,
    "health:instance": _pk("instance"),
    "alerts:incident": _pk("incident"),
    "alerts:acknowledge": _pk("incident"),
    "alerts:resolve": _pk("incident"),
    "alerts:silence_expire": _pk("silence"),
    "alerts:team_settings": lambda c: {"slug": c.world.team.slug},
    "circuits:circuit": _pk("circuit"),
    "circuits:set-override": _pk("circuit"),
    "circuits:clear-override": _pk("override"),
    "scaling:group": _pk("group"),
    "scaling:group-actions": _pk("group"),
    "scaling:group-desired": _pk("group"),
    "scaling:group-pause": _pk("group"),
    "scaling:group-resume": _pk("group"),
    "scaling:group-restart": _pk("group"),
    "debugging:config": lambda c: _config(c),
    "debugging:revert": lambda c: {**_config(c), "number": 1},
    "debugging:set-delivery": lambda c: {"service": c.world.service.slug},
    "debugging:open-window": lambda c: {"service": c.world.service.slug},
    "debugging:close-window": _pk("window"),
    "topology:blast": lambda c: {"kind": "service", "name": c.world.service.slug},
    "topology:trace": _service,
    # an unknown reset link: the page says the link is no longer valid
    "password_reset_confirm": lambda c: {"uidb64": "MQ", "token": "set-password"},
    "deployments:freeze-create": lambda c: {"kind": "one-off"},
    "deployments:freeze-end": lambda c: {"kind": "one-off", "pk": c.made["freeze"].pk},
    "health:check": _service,
    "health:maintenance-create": _service,
    "health:maintenance-end": _pk("maintenance"),
    "health:instance-check": _pk("instance"),
    "dashboard:team-invite": _team,
    "dashboard:team-invitation-cancel": lambda c: {**_team(c), "pk": c.made["invitation"].pk},
    "dashboard:team-member-role": lambda c: {**_team(c), "pk": c.made["membership"].pk},
    "dashboard:team-member-remove": lambda c: {**_team(c), "pk": c.made["membership"].pk},
    "dashboard:team-token-create": _team,
    "dashboard:team-token-revoke": lambda c: {**_team(c), "pk": c.made["token"].pk},
    "dashboard:team-channel-create": _team,
    "dashboard:team-channel-edit": lambda c: {**_team(c), "pk": c.made["channel"].pk},
    "dashboard:team-channel-test": lambda c: {**_team(c), "pk": c.made["channel"].pk},
    "dashboard:team-channel-delete": lambda c: {**_team(c), "pk": c.made["channel"].pk},
    "dashboard:team-route-create": _team,
    "dashboard:team-route-edit": lambda c: {**_team(c), "pk": c.made["route"].pk},
    "dashboard:team-route-delete": lambda c: {**_team(c), "pk": c.made["route"].pk},
    "dashboard:invitation": lambda c: {"token": INVITE},
    "dashboard:heartbeats": _service,
    "dashboard:heartbeat-create": _service,
    "dashboard:heartbeat": lambda c: {**_service(c), "pk": c.made["heartbeat"].pk},
    "dashboard:heartbeat-edit": lambda c: {**_service(c), "pk": c.made["heartbeat"].pk},
    "dashboard:heartbeat-pause": lambda c: {**_service(c), "pk": c.made["heartbeat"].pk},
    "dashboard:heartbeat-resume": lambda c: {**_service(c), "pk": c.made["heartbeat"].pk},
    "dashboard:heartbeat-delete": lambda c: {**_service(c), "pk": c.made["heartbeat"].pk},
    "statuspage:page": lambda c: {"slug": c.made["status_page"].slug},
    "statuspage:summary": lambda c: {"slug": c.made["status_page"].slug},
    "statuspage:status": lambda c: {"slug": c.made["status_page"].slug},
}
# Pages on a regular expression the walk below passes over, with how they are filled.
PATTERN_PAGES: dict[str, Callable[[Case], dict[str, Any]]] = {
    "statuspage:badge": lambda c: {"token": c.made["badge"].token},
}
# Each page answers 200, or 405 when it only takes POST (actions, logout, webhooks), but:
EXPECTED = {
    # without ?trace_id= it says what to give (with one it redirects to the trace UI, off-site)
    "topology:trace": 400,
}
# Not pages: the API (its own matrix, catalog/tests/matrix.py) and the admin's model pages
# (Django's own; the admin index is opened).
SKIP_PREFIXES = ("api/v1/", "admin/")


def page_routes() -> list[tuple[str, bool]]:
    """(URL name, whether it takes arguments) of every page."""
    found: list[tuple[str, bool]] = [("admin:index", False)]

    def walk(patterns: list[Any], prefix: str, namespace: str) -> None:
        for entry in patterns:
            route = prefix + str(entry.pattern)
            if isinstance(entry, URLResolver):
                inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
                walk(entry.url_patterns, route, inner)
            elif isinstance(entry, URLPattern) and entry.name and not route.startswith(
                SKIP_PREFIXES
            ) and not route.startswith("^"):
                found.append((namespace + entry.name, bool(entry.pattern.converters)))

    walk(get_resolver().url_patterns, "", "")
    return found


def page_urls(case: Case) -> list[tuple[str, str]]:
    """(URL name, URL) of every page."""
    urls = []
    unfilled = []
    for name, takes_arguments in page_routes():
        if not takes_arguments:
            urls.append((name, reverse(name)))
        elif name in FILL:
            urls.append((name, reverse(name, kwargs=FILL[name](case))))
        else:
            unfilled.append(name)
    assert not unfilled, f"add to FILL how to fill the arguments of: {', '.join(unfilled)}"
    urls += [(name, reverse(name, kwargs=fill(case))) for name, fill in PATTERN_PAGES.items()]
    return urls


# -- the test ---------------------------------------------------------------------------------


def test_the_image_and_compose_serve_every_page_in_production(
    box: Box, processes: Processes, world: Any
) -> None:
    from django.contrib.auth import get_user_model

    from health.models import InstanceCheck

    # given the static files collected exactly as the image build does, and compose's
    # migrate service run (the build comes first; side by side here, to save time)
    get_user_model().objects.filter(is_superuser=True).delete()  # `world` made one
    build_env = {key: box.map(value) for key, value in image_env().items()}
    build_env["PATH"] = f"{Path(sys.executable).parent}:/usr/bin:/bin"
    collect = processes.run("build", ["sh", "-c", collectstatic_step()], build_env)
    migrate = processes.run(
        "migrate", service_command(box, "migrate"), service_env(box, "migrate")
    )
    assert collect.wait(timeout=120) == 0, processes.log("build")
    assert (box.root / "static" / "staticfiles.json").exists(), "no manifest: pages would 500"
    assert not list((box.root / "var").iterdir()), "the build left files (secrets?) in the image"
    assert migrate.wait(timeout=120) == 0, processes.log("migrate")
    assert "Created the admin 'admin'" in processes.log("migrate")
    # Seeded with the deployment's own encryption key: its channels' secrets are read by
    # the production processes, which would refuse ciphertext made with the test's key.
    key = next((box.root / "secrets").glob("*encryption_key")).read_text().strip()
    with override_settings(SIGNALBOX_ENCRYPTION_KEY=key):
        crypto._fernet.cache_clear()
        try:
            case = seed(world)
        finally:
            crypto._fernet.cache_clear()

    # when web, worker and beat start as compose starts them
    processes.start_web()
    for service in ("worker", "beat"):
        processes.run(service, service_command(box, service), service_env(box, service))

    # then the web container's health check passes (compose's own check, our port) ...
    healthcheck = " ".join(compose()["services"]["web"]["healthcheck"]["test"])
    [check_url] = re.findall(r"http://127\.0\.0\.1:8000(/\w+)", healthcheck)
    wait_for("/readyz", lambda: answers(processes.url + check_url), processes)
    ready = json.loads(get(processes.url + check_url)[2])
    assert {name: c[0]["status"] for name, c in ready["checks"].items()} == dict.fromkeys(
        ready["checks"], "pass"
    )
    assert "staticfiles:manifest" in ready["checks"]

    # ... the admin logs in through the login form in a real browser and every page opens
    statics = browse(processes.url, page_urls(case))

    # ... every static file a page loaded has a hashed name and is cached for good
    assert any("pico" in url for url in statics), statics
    for url in sorted(statics):
        status, headers, _ = get(url)
        assert status == 200, url
        assert HASHED_NAME.search(url), f"{url} is not a hashed name"
        cache = headers.get("cache-control", "")
        max_age = re.search(r"max-age=(\d+)", cache)
        assert max_age and int(max_age.group(1)) >= YEAR_SECONDS, (url, cache)
        assert "immutable" in cache, (url, cache)

    # ... and beat and the worker run: the instance's health check gets probed
    wait_for(
        "the worker to probe the seeded instance",
        lambda: InstanceCheck.objects.filter(last_checked_at__isnull=False).exists(),
        processes,
    )


def browse(base: str, urls: list[tuple[str, str]]) -> set[str]:
    """Log in as the first admin in chromium and open each URL; the static URLs loaded."""
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    from controlplane.tests.browser import CHROMIUM, CHROMIUM_ARGS

    statics: set[str] = set()
    failures: list[str] = []
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # Playwright's loop, not ours
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
            )
            context = browser.new_context(base_url=base)
            context.set_default_timeout(15_000)
            page = context.new_page()
            page.on("response", lambda r: statics.add(r.url) if "/static/" in r.url else None)
            page.goto("/login/")
            page.fill("#id_username", "admin")
            page.fill("#id_password", ADMIN_PASSWORD)
            with page.expect_navigation():
                page.click("button[type=submit]")
            assert page.url == base + reverse("dashboard:home"), page.url
            for name, url in urls:
                try:
                    response = page.goto(url, wait_until="domcontentloaded")
                    status = response.status if response else 0
                except PlaywrightError:  # chromium shows no page for an empty 405 (POST-only)
                    status = page.request.get(url, max_redirects=0).status
                if status not in (EXPECTED.get(name, 200), 405):
                    failures.append(f"{url}: {status}")
            # A tab of its own: chromium's error page for a POST-only URL above may still be
            # on its way into the first tab and would interrupt this navigation.
            page = context.new_page()
            page.on("response", lambda r: statics.add(r.url) if "/static/" in r.url else None)
            docs = page.goto(reverse("api-docs"))
            assert docs is not None and docs.status == 200
            page.wait_for_selector(".swagger-ui .info .title")  # drawn from /api/schema/
            html = docs.text()
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous
    assert not failures, failures
    # The API docs work offline: everything they load is ours
    referenced = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
    local = [url for url in referenced if url.startswith("/") and not url.startswith("//")]
    assert referenced and local == referenced, referenced
    for url in referenced:
        assert get(base + url)[0] == 200, url
    return statics
