"""Dashboard test fixtures: a fleet of any size in a few bulk inserts, and what gets pushed live."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis
from channels.layers import channel_layers, get_channel_layer
from django.conf import settings as django_settings
from django.utils import timezone

from alerts.choices import IncidentState, RuleKind, Severity
from alerts.models import Incident, Rule
from alerts.tests.conftest import receiver, smtp  # noqa: F401 (the real HTTP and SMTP receivers)
from catalog.models import Instance, Service, Team
from circuits.choices import SEVERITY, AggregateState
from circuits.models import Circuit
from controlplane.live import _pubsub_group_channel, group_name
from deployments.choices import RolloutState, Strategy
from deployments.models import Rollout
from health.choices import CheckStatus, ServiceStatus
from health.models import InstanceCheck, ServiceHealth


@pytest.fixture(autouse=True)
def fast_password_hashing(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@dataclass
class Fleet:
    """What `fleet(n)` made: services, and the problems planted among them."""

    services: list[Service] = field(default_factory=list)
    down: list[ServiceHealth] = field(default_factory=list)
    incidents: list[Incident] = field(default_factory=list)
    rollouts: list[Rollout] = field(default_factory=list)
    circuits: list[Circuit] = field(default_factory=list)


def incident(
    world: Any, service: Service, title: str, state: str = IncidentState.FIRING
) -> Incident:
    rule, _ = Rule.objects.get_or_create(
        team=service.team,
        name="down",
        defaults={"kind": RuleKind.SERVICE_STATE, "severity": Severity.PAGE},
    )
    return Incident.objects.create(
        rule=rule, team=service.team, service=service, environment=world.production,
        subject_type="catalog.service", subject_id=str(service.pk), subject_label=service.slug,
        dedup_key=f"{rule.pk}:{service.pk}:{uuid.uuid4().hex}", severity=Severity.PAGE,
        state=state, title=title, reason=f"{service.slug} in production is down",
        fired_at=timezone.now(),
    )  # fmt: skip


def probe_history(service: Service, environment: Any, failing_minute: int | None = None) -> None:
    """The last 90 minutes of probes in the rollups, one minute in five: 20 probes a minute,
    latency 40 ms plus the minutes ago; half of them fail `failing_minute` minutes ago."""
    from datetime import timedelta

    from health import rollups

    now = timezone.now()
    buckets = {}
    for minutes in range(0, 90, 5):
        bucket = rollups.Bucket()
        for n in range(20):
            bucket.add("fail" if minutes == failing_minute and n < 10 else "pass", 40.0 + minutes)
        buckets[
            (service.pk, environment.pk, rollups.minute_of(now - timedelta(minutes=minutes)))
        ] = bucket
    rollups.upsert(buckets)


def rollout(world: Any, service: Service, to_version: str = "2.0") -> Rollout:
    return Rollout.objects.create(
        team=service.team, service=service, environment=world.production, from_version="1.0",
        to_version=to_version, strategy=Strategy.CANARY,
        steps=[{"set_weight": 25}, {"set_weight": 100}], state=RolloutState.PROGRESSING,
        desired_weight=25, applied_weight=25.0, started_at=timezone.now(),
    )  # fmt: skip


def circuit(world: Any, caller: Service, target: Service, state: str, name: str = "") -> Circuit:
    return Circuit.objects.create(
        service=caller, environment=world.production, name=name or f"{target.slug}-client",
        protects_service=target, state=state, severity=SEVERITY[state], open_instances=2,
        total_instances=3, failure_rate=62.5, updated_at=timezone.now(),
    )  # fmt: skip


@pytest.fixture
def fleet(world: Any) -> Callable[[int], Fleet]:
    """fleet(n): n more services in n/50 teams, 3 instances each in production (checked),
    healthy but for every 10th (down), plus a firing incident, a rollout and an open circuit
    per 100 services. Bulk inserts: a thousand services take about a second."""

    def make(n: int) -> Fleet:
        made = Fleet()
        tag = uuid.uuid4().hex[:6]  # fleets made in one test do not clash
        teams = Team.objects.bulk_create(
            [Team(slug=f"team-{tag}-{i}", name=f"Team {i}") for i in range(max(1, n // 50))]
        )
        made.services = Service.objects.bulk_create(
            [
                Service(slug=f"svc-{tag}-{i}", name=f"Service {i}", team=teams[i % len(teams)])
                for i in range(n)
            ]
        )
        instances = Instance.objects.bulk_create(
            [
                Instance(service=s, environment=world.production, host="10.0.0.1",
                         port=10000 + 3 * i + k, version="1.0")
                for i, s in enumerate(made.services) for k in range(3)
            ]
        )  # fmt: skip
        InstanceCheck.objects.bulk_create(
            [InstanceCheck(instance=i, status=CheckStatus.PASS) for i in instances]
        )
        healths = ServiceHealth.objects.bulk_create(
            [
                ServiceHealth(
                    service=s, environment=world.production, passing=0 if i % 10 == 0 else 3,
                    failing=3 if i % 10 == 0 else 0,
                    status=ServiceStatus.DOWN if i % 10 == 0 else ServiceStatus.HEALTHY,
                    reason="3 of 3 instances failing" if i % 10 == 0 else "",
                )
                for i, s in enumerate(made.services)
            ]
        )  # fmt: skip
        made.down = [h for h in healths if h.status == ServiceStatus.DOWN]
        for i in range(0, n, 100):
            service = made.services[i]
            made.incidents.append(incident(world, service, f"{service.slug} is down"))
            made.rollouts.append(rollout(world, service))
            made.circuits.append(circuit(world, made.services[i + 1], service, AggregateState.OPEN))
        return made

    return make


@dataclass
class Pushes:
    """Fragments pushed to one topic's group, read from the real Redis pub/sub channel."""

    pubsub: Any
    layer: Any
    seen: list[str] = field(default_factory=list)

    def wait_for(self, text: str, timeout: float = 3.0) -> str:
        """The first pushed fragment containing `text` (waiting for it), else fail."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for html in self.seen:
                if text in html:
                    return html
            message = self.pubsub.get_message(timeout=0.1)
            if message and message["type"] == "message":
                self.seen.append(self.layer.deserialize(message["data"])["html"])
        raise AssertionError(f"nothing containing {text!r} was pushed; got {self.seen!r}")


@pytest.fixture
def pushes(settings: Any) -> Iterator[Callable[[str], Pushes]]:
    """pushes(topic): listen to what the live layer sends that topic, from now on.

    The channel-layer prefix is this test's own, so other runs' pushes do not arrive.
    """
    prefix = f"signalbox-test-{uuid.uuid4().hex[:12]}:live"
    settings.CHANNEL_LAYERS = {
        "default": {
            **settings.CHANNEL_LAYERS["default"],
            "CONFIG": {**settings.CHANNEL_LAYERS["default"]["CONFIG"], "prefix": prefix},
        }
    }
    channel_layers.backends = {}
    client = redis.Redis.from_url(django_settings.REDIS_URL)
    opened: list[Any] = []

    def listen(topic: str) -> Pushes:
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(_pubsub_group_channel(group_name(topic)))
        opened.append(pubsub)
        return Pushes(pubsub, get_channel_layer())

    yield listen
    for pubsub in opened:
        pubsub.close()
    channel_layers.backends = {}
