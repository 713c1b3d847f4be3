"""Live incident rows: rendered once per incident event and pushed to the incident pages."""

from __future__ import annotations

from collections.abc import Iterable

from django.template.loader import render_to_string

from alerts.choices import IncidentEvent
from alerts.models import Incident
from controlplane.live import renders
from controlplane.models import Event

LIST_TOPIC = "incidents"


def incident_topic(incident_id: int) -> str:
    return f"incident:{incident_id}"


@renders(IncidentEvent.FAMILY)
def incident_fragments(event: Event) -> Iterable[tuple[str, str]]:
    """The changed row for the list (inserted when new, replaced otherwise), and the header
    of the incident's own page."""
    incident_id = event.payload.get("incident")
    incident = (
        Incident.objects.select_related("team", "service", "environment", "root", "root__team")
        .filter(pk=incident_id)
        .first()
    )
    if incident is None:
        return []
    is_new = event.action == IncidentEvent.FIRING
    row = render_to_string(
        "alerts/partials/incident_row_oob.html", {"incident": incident, "is_new": is_new}
    )
    header = render_to_string(
        "alerts/partials/incident_header.html", {"incident": incident, "oob": True}
    )
    return [(LIST_TOPIC, row), (incident_topic(incident.pk), header)]
