"""Dependency-aware grouping: an alert caused by a dependency that is down waits under the
dependency's incident (its root) instead of paging its own team.

A service's dependencies are the catalog's `Service.depends_on` (followed transitively) and
`Service.external_dependencies`. A dependency is down when it has a firing or acknowledged
incident of its own: a `service_state` incident in the same environment for a service we
run, an `external_status` incident for an external one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from alerts import outbox
from alerts.choices import (
    NOTIFIED_STATES,
    SEVERITY_RANK,
    DeliveryState,
    NotificationAction,
    RuleKind,
    TimelineKind,
)
from alerts.models import ROOT_SUPPRESSION, Incident, Notification, TimelineEntry
from catalog.models import ExternalDependency, Service

EXTERNAL_SUBJECT = ExternalDependency._meta.label_lower
SYSTEM_ACTOR = "alerts"  # as the rest of the timeline names alerting
# Far deeper than any real call chain; a bound so a huge graph cannot stall a tick.
MAX_DEPTH = 25


@dataclass(frozen=True)
class Cause:
    """The root incident behind an alert and the dependency path that leads to it."""

    root: Incident
    path: list[str]

    @property
    def path_text(self) -> str:
        return " -> ".join(self.path)[:500]


def _note(incident: Incident, kind: str, message: str) -> None:
    TimelineEntry.objects.create(
        incident=incident, kind=kind, message=message[:500], actor=SYSTEM_ACTOR
    )


def reachable(service: Service) -> tuple[dict[int, list[str]], dict[int, list[str]]]:
    """Every service and external dependency `service` depends on, transitively, each with
    the shortest path to it (slugs). A cycle ends where it meets a service already seen."""
    through = Service.depends_on.through
    externals_through = Service.external_dependencies.through
    services: dict[int, list[str]] = {service.pk: [service.slug]}
    externals: dict[int, list[str]] = {}
    frontier = [service.pk]
    for _ in range(MAX_DEPTH):
        if not frontier:
            break
        for from_id, ext_id, slug in externals_through.objects.filter(
            service_id__in=frontier
        ).values_list("service_id", "externaldependency_id", "externaldependency__slug"):
            externals.setdefault(ext_id, [*services[from_id], slug])
        next_frontier = []
        for from_id, to_id, slug in through.objects.filter(
            from_service_id__in=frontier
        ).values_list("from_service_id", "to_service_id", "to_service__slug"):
            if to_id not in services:
                services[to_id] = [*services[from_id], slug]
                next_frontier.append(to_id)
        frontier = next_frontier
    del services[service.pk]
    return services, externals


def _flatten(found: Incident, path: list[str], exclude: int) -> Cause | None:
    """`found` is down; if it is itself held under an open root, that root is the cause."""
    seen = {found.pk}
    root, tail = found, path
    while root.root_id is not None and root.root is not None:
        above = root.root
        if above.state not in NOTIFIED_STATES or above.pk in seen:
            break
        extra = root.caused_by_path.split(" -> ")[1:]
        tail = [*tail, *extra]
        seen.add(above.pk)
        root = above
    if root.pk == exclude:
        return None  # a cycle leads back to the incident itself
    return Cause(root, tail)


def find_cause(incident: Incident) -> Cause | None:
    """The open incident of a dependency that best explains `incident`, or None.

    Preferred: a root that may hold the incident back (at least as severe), then the
    deepest (the cause of the causes), then one of the incident's own team, then the oldest.
    """
    if incident.service is None:
        return None
    services, externals = reachable(incident.service)
    down: list[tuple[Incident, list[str]]] = []
    if services and incident.environment_id is not None:
        for found in (
            Incident.objects.filter(
                rule__kind=RuleKind.SERVICE_STATE,
                service_id__in=list(services),
                environment_id=incident.environment_id,
                state__in=NOTIFIED_STATES,
            )
            .exclude(pk=incident.pk)
            .select_related("root", "service", "environment", "team")
        ):
            down.append((found, services[found.service_id or 0]))
    if externals:
        for found in (
            Incident.objects.filter(
                rule__kind=RuleKind.EXTERNAL_STATUS,
                subject_type=EXTERNAL_SUBJECT,
                subject_id__in=[str(pk) for pk in externals],
                state__in=NOTIFIED_STATES,
            )
            .exclude(pk=incident.pk)
            .select_related("root", "team")
        ):
            down.append((found, externals[int(found.subject_id)]))
    causes = [c for c in (_flatten(f, p, incident.pk) for f, p in down) if c is not None]
    if not causes:
        return None
    rank = SEVERITY_RANK[incident.severity]

    def preference(cause: Cause) -> tuple[bool, int, bool, object, int]:
        root = cause.root
        return (
            SEVERITY_RANK[root.severity] < rank,
            -len(cause.path),
            root.team_id != incident.team_id,
            root.fired_at or root.fire_at,
            root.pk,
        )

    return min(causes, key=preference)


def holds_back(root: Incident | None, incident: Incident) -> bool:
    """Whether `root` speaks for `incident`: still open, told (or deliberately silenced),
    and at least as urgent (a page never waits on a ticket)."""
    if root is None or root.state not in NOTIFIED_STATES:
        return False
    if SEVERITY_RANK[root.severity] < SEVERITY_RANK[incident.severity]:
        return False
    # A root nobody could hear (its team routes nothing) must not silence its dependents.
    return root.notified_at is not None or bool(root.suppressed_by)


def suppression(incident: Incident) -> str:
    """ "" or why the root holds this incident's trigger back ("caused by #12 payments...")."""
    if incident.root_id is None or not holds_back(incident.root, incident):
        return ""
    root = incident.root
    assert root is not None
    return f"{ROOT_SUPPRESSION}{root.pk} {root.subject_label}"[:120]


def group(incident: Incident) -> None:
    """Before an incident's first trigger: find the root that explains it (again, if the
    one it had resolved), record it, and fold it into the root's notification."""
    previous = incident.root
    if previous is not None and holds_back(previous, incident):
        return
    cause = find_cause(incident)
    was_held = incident.suppressed_by.startswith(ROOT_SUPPRESSION)
    if cause is None:
        if previous is not None and was_held:
            _ungroup(incident, previous)
        return
    if previous is not None and cause.root.pk == previous.pk:
        return  # the same root, not holding (lower severity or unheard): nothing new to say
    incident.root = cause.root
    incident.caused_by_path = cause.path_text
    incident.save(update_fields=["root", "caused_by_path"])
    if not holds_back(cause.root, incident):
        _note(
            incident,
            TimelineKind.GROUPED,
            f"caused by #{cause.root.pk} ({cause.path_text}); notifying anyway: the root is "
            f"a {cause.root.severity} or its team was not told",
        )
        return
    _note(
        incident,
        TimelineKind.GROUPED,
        f"caused by #{cause.root.pk} {cause.root.title} ({cause.path_text}); "
        "its notification speaks for this one",
    )
    _note(
        cause.root,
        TimelineKind.AFFECTS,
        f"affects #{incident.pk} {incident.title} ({cause.path_text})",
    )
    fold_into_root(cause.root)
    if incident.rule.notify_affected and incident.team_id != cause.root.team_id:
        outbox.queue_affected(incident, cause.root)


def _ungroup(incident: Incident, previous: Incident) -> None:
    now = timezone.now()
    _note(
        incident,
        TimelineKind.UNGROUPED,
        f"root #{previous.pk} {previous.title} is {previous.state}; "
        f"{incident.subject_label} still fails: notifying now",
    )
    # The escalation clock starts when the team is first told, not when it was held back.
    if incident.escalate_at is not None:
        incident.escalate_at = now + timedelta(seconds=settings.ALERTS_ESCALATE_AFTER_SECONDS)
        incident.save(update_fields=["escalate_at"])


def fold_into_root(root: Incident) -> None:
    """Tell the channels that heard the root about its new dependent: a trigger still in its
    group wait lists it when sent; otherwise the root's trigger goes again (PagerDuty folds
    it into the same alert by its dedup_key; Slack and webhooks get the updated list)."""
    if root.notified_at is None:
        return
    from alerts.incidents import routes_for

    for level in range(root.escalation_level + 1):
        for route in routes_for(root, level):
            outbox.queue_root_update(root, route)


def upstream(root: Incident) -> dict[int, list[str]]:
    """Every service that depends on the root's subject, transitively, each with its path to
    it ("web -> checkout -> payments")."""
    through = Service.depends_on.through
    paths: dict[int, list[str]] = {}
    if root.subject_type == EXTERNAL_SUBJECT:
        users = Service.external_dependencies.through.objects.filter(
            externaldependency_id=root.subject_id
        ).values_list("service_id", "service__slug")
        for service_id, slug in users:
            paths[service_id] = [slug, root.subject_label]
        frontier = list(paths)
    elif root.service is not None:
        paths[root.service.pk] = [root.service.slug]
        frontier = [root.service.pk]
    else:
        return {}
    for _ in range(MAX_DEPTH):
        if not frontier:
            break
        next_frontier = []
        for from_id, to_id, slug in through.objects.filter(to_service_id__in=frontier).values_list(
            "to_service_id", "from_service_id", "from_service__slug"
        ):
            if to_id not in paths:
                paths[to_id] = [slug, *paths[from_id]]
                next_frontier.append(to_id)
        frontier = next_frontier
    if root.service is not None:
        paths.pop(root.service.pk, None)
    return paths


def adopt(root: Incident) -> None:
    """A dependency's incident just fired: its dependents that fired a moment before it
    (their triggers still in the group wait) are taken out of those messages and wait under
    it; those already sent are named as its dependents, their pages stand."""
    if root.state not in NOTIFIED_STATES or root.is_grouped:
        return
    from alerts.rules import KINDS

    kinds = [name for name, kind in KINDS.items() if kind.follows_root]
    paths = upstream(root)
    if not paths:
        return
    candidates = Incident.objects.filter(
        service_id__in=list(paths), state__in=NOTIFIED_STATES, rule__kind__in=kinds
    ).exclude(pk=root.pk)
    if root.subject_type != EXTERNAL_SUBJECT:
        if root.environment_id is None:
            return  # a service's health is always about one environment
        candidates = candidates.filter(environment_id=root.environment_id)
    # Rows someone else is deciding about right now are theirs: they find the root anyway.
    for incident in (
        candidates.select_for_update(skip_locked=True, of=("self",))
        .select_related("rule", "root", "service", "environment", "team")
        .order_by("id")
    ):
        if incident.root is not None and holds_back(incident.root, incident):
            continue
        if SEVERITY_RANK[root.severity] < SEVERITY_RANK[incident.severity]:
            continue
        _adopt(root, incident, paths[incident.service_id or 0])


def _adopt(root: Incident, incident: Incident, path: list[str]) -> None:
    triggers = list(
        Notification.objects.select_for_update(of=("self",))
        .filter(incidents=incident, action=NotificationAction.TRIGGER)
        .exclude(state=DeliveryState.CANCELLED)
    )
    unsent = all(t.state == DeliveryState.PENDING and t.attempts == 0 for t in triggers)
    incident.root = root
    incident.caused_by_path = " -> ".join(path)[:500]
    _note(
        root,
        TimelineKind.AFFECTS,
        f"affects #{incident.pk} {incident.title} ({incident.caused_by_path})",
    )
    if not unsent or not holds_back(root, incident):
        incident.save(update_fields=["root", "caused_by_path"])
        _note(
            incident,
            TimelineKind.GROUPED,
            f"caused by #{root.pk} {root.title} ({incident.caused_by_path}); "
            "its page was sent already",
        )
        return
    outbox.withdraw(incident, triggers)
    incident.notified_at = None
    incident.suppressed_by = suppression(incident)
    incident.save(update_fields=["root", "caused_by_path", "notified_at", "suppressed_by"])
    _note(
        incident,
        TimelineKind.GROUPED,
        f"caused by #{root.pk} {root.title} ({incident.caused_by_path}), which fired within "
        "the group wait: taken out of its message; the root's notification speaks for it",
    )
    if incident.rule.notify_affected and incident.team_id != root.team_id:
        outbox.queue_affected(incident, root)
