"""A team's page: its services' health per environment, rollouts, incidents, circuits."""

from __future__ import annotations

from dataclasses import dataclass

from catalog.models import Environment, Service, Team
from controlplane.models import Event
from health.choices import ServiceStatus
from health.models import ServiceHealth

# A team page lists its services in full up to here; bigger teams page through them.
SERVICES_PER_PAGE = 100
EVENT_ROWS = 15


@dataclass
class ServiceRow:
    """A service and its health in each environment, in the page's environment order."""

    service: Service
    healths: list[ServiceHealth]

    @property
    def worst(self) -> str:
        statuses = {h.status for h in self.healths}
        for status in (ServiceStatus.DOWN, ServiceStatus.DEGRADED, ServiceStatus.HEALTHY):
            if status in statuses:
                return status
        return ServiceStatus.UNKNOWN


def service_rows(
    team: Team, environments: list[Environment], services: list[Service]
) -> list[ServiceRow]:
    """Each listed service with one health per environment, in one query."""
    found = {
        (h.service_id, h.environment_id): h
        for h in ServiceHealth.objects.filter(service__in=[s.pk for s in services])
    }
    rows = []
    for service in services:
        healths = []
        for env in environments:
            health = found.get((service.pk, env.pk)) or ServiceHealth(
                service=service, environment=env
            )
            health.service, health.environment = service, env
            healths.append(health)
        rows.append(ServiceRow(service, healths))
    return rows


def recent_events(team: Team) -> list[Event]:
    return list(
        Event.objects.filter(team=team).select_related("team", "service", "environment")[
            :EVENT_ROWS
        ]
    )
