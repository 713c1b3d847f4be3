"""Live fragments for scaling events: a group's page (its state and its history) and its row
in the list of groups.

Each is a coalesced `Tile` rendered from the database as it is when the tile renders, and
only for topics some page watches: a busy autoscaler renders nothing nobody looks at. A
pushed fragment is rendered once for every viewer, so it carries no controls: the group
page's actions are fetched per person after a push (`scaling:group-actions`).
"""

from __future__ import annotations

from collections.abc import Iterable

from django.template.loader import render_to_string
from django.utils import timezone

from catalog.models import Instance
from controlplane.live import Fragment, Tile, renders, watched
from controlplane.models import Event
from scaling import pages
from scaling.choices import ScalingEvent
from scaling.models import ScalingGroup

LIST_TOPIC = "scaling"


def group_topic(group_id: int) -> str:
    return f"scaling:{group_id}"


def team_topic(slug: str) -> str:
    return f"scaling:team.{slug}"


def group_of(event: Event) -> int | None:
    """The group an event is about: its subject, or the group of the instance it names."""
    if event.subject_type == ScalingGroup._meta.label_lower and event.subject_id.isdigit():
        return int(event.subject_id)
    if (
        event.subject_type == Instance._meta.label_lower
        and event.service is not None
        and event.environment is not None
    ):
        return (
            ScalingGroup.objects.filter(
                service_id=event.service.pk, environment_id=event.environment.pk
            )
            .values_list("pk", flat=True)
            .first()
        )
    return None


def _group(group_id: int) -> ScalingGroup | None:
    return pages.group_query().filter(pk=group_id).first()


def render_summary(group_id: int) -> str:
    group = _group(group_id)
    if group is None:
        return ""
    context = {**pages.summary_context(group, timezone.now()), "oob": True}
    return render_to_string("scaling/partials/group_summary.html", context)


def render_history(group_id: int) -> str:
    group = _group(group_id)
    if group is None:
        return ""
    return render_to_string(
        "scaling/partials/group_history.html", {**pages.history_context(group), "oob": True}
    )


def render_row(group_id: int) -> str:
    group = _group(group_id)
    if group is None:
        return render_to_string("scaling/partials/group_row_gone.html", {"group_id": group_id})
    row = pages.group_rows([group])[0]
    return render_to_string("scaling/partials/group_row.html", {"row": row, "oob": True})


@renders(ScalingEvent.FAMILY)
def group_fragments(event: Event) -> Iterable[Fragment]:
    group_id = group_of(event)
    if group_id is None:
        return []
    page = group_topic(group_id)
    lists = [LIST_TOPIC]
    if event.team is not None:
        lists.append(team_topic(event.team.slug))
    looked_at = watched([page, *lists])
    fragments: list[Fragment] = []
    if page in looked_at:
        fragments.append(Tile(page, "summary", lambda: render_summary(group_id)))
        fragments.append(Tile(page, "history", lambda: render_history(group_id)))
    if event.action != ScalingEvent.GROUP_CREATED:
        # A new group's row is not on any list yet: it shows at the next load.
        fragments.extend(
            Tile(topic, f"row-{group_id}", lambda: render_row(group_id))
            for topic in lists
            if topic in looked_at
        )
    return fragments
