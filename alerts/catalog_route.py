"""Alert routes in the catalog as code: the `AlertRoute` kind of catalog files.

One document is one route: which of a team's channels hears its incidents of a severity,
at which escalation level (0: told first). A route is named by those four, as the
route API's unique rule has it, and written `commerce/page/oncall-slack/L0`:

    apiVersion: signalbox.dev/v1
    kind: AlertRoute
    metadata: {team: commerce, severity: page, channel: oncall-slack, escalationLevel: 0}
    spec: {groupWaitSeconds: 30}

The channel is the team's AlertChannel of that name, in the same files or in the catalog.
`spec` holds the rest of the route API's fields (`groupWaitSeconds`, default 10;
`enabled`, default true). Saved through `controlplane.changes` with the route API's
serializer, one audited event per change. Team owners manage routes.
"""

from __future__ import annotations

from typing import Any

from alerts.api.serializers import RouteSerializer
from alerts.catalog_channel import KIND as CHANNEL_KIND
from alerts.choices import ROUTE_EVENTS
from alerts.models import Channel, Route
from catalog.catalog_yaml.extensions import (
    Context,
    ExtraInvalid,
    Planned,
    document,
    register_kind,
    save,
)
from catalog.catalog_yaml.kinds import Action
from catalog.catalog_yaml.kinds import Kind as CatalogKind
from catalog.models import Team
from controlplane import changes

KIND = "AlertRoute"
KEYS = {"groupWaitSeconds": "group_wait_seconds", "enabled": "enabled"}
DEFAULTS: dict[str, Any] = {"group_wait_seconds": 10, "enabled": True}


def _identity(metadata: dict[str, Any]) -> tuple[str, str, str, int]:
    team, severity, channel = metadata["team"], metadata["severity"], metadata["channel"]
    level = metadata.get("escalationLevel", 0)
    if not all(isinstance(v, str) for v in (team, severity, channel)):
        raise TypeError
    if not isinstance(level, int):
        raise TypeError
    return team, severity, channel, level


def _name(team: str, severity: str, channel: str, level: int) -> str:
    return f"{team}/{severity}/{channel}/L{level}"


def label(body: dict[str, Any]) -> str:
    return _name(*_identity(body["metadata"]))


def _named(route: Route) -> str:
    return _name(route.team.slug, route.severity, route.channel.name, route.escalation_level)


def export() -> list[dict[str, Any]]:
    """Every route by team, severity, channel and level; non-default settings only."""
    rows = Route.objects.select_related("team", "channel")
    documents = []
    for route in sorted(
        rows,
        key=lambda r: (r.team.slug, r.severity, r.channel.name, r.escalation_level),
    ):
        spec = {k: getattr(route, f) for k, f in KEYS.items() if getattr(route, f) != DEFAULTS[f]}
        documents.append(
            document(
                KIND,
                {
                    "team": route.team.slug,
                    "severity": route.severity,
                    "channel": route.channel.name,
                    "escalationLevel": route.escalation_level,
                },
                spec,
            )
        )
    return documents


def _find(team: str, severity: str, channel: str, level: int) -> Route | None:
    return (
        Route.objects.select_for_update(of=("self",))
        .select_related("team", "channel")
        .filter(team__slug=team, severity=severity, channel__name=channel, escalation_level=level)
        .first()
    )


def validate(body: dict[str, Any], context: Context) -> Planned:
    """Check one AlertRoute document and plan it."""
    team_slug, severity, channel_name, level = _identity(body["metadata"])
    spec = body.get("spec") or {}
    problems: dict[str, str] = {}
    if not context.will_exist(CatalogKind.TEAM, team_slug):
        problems["metadata.team"] = f"Team/{team_slug} is neither in the files nor in the catalog"
    channel_label = f"{team_slug}/{channel_name}"
    existing_channel = Channel.objects.filter(team__slug=team_slug, name=channel_name).exists()
    if not context.declares(CHANNEL_KIND, channel_label) and (
        context.prune or not existing_channel
    ):
        problems["metadata.channel"] = f"{CHANNEL_KIND}/{channel_label} is " + (
            "not in the files, so --prune would delete it; add it"
            if existing_channel
            else "neither in the files nor in the catalog"
        )
    # The values' types and ranges are the schema's (the route API's limits); the route
    # API's serializer checks the whole route again when it is saved.
    wanted = {f: spec[k] if spec.get(k) is not None else DEFAULTS[f] for k, f in KEYS.items()}
    if problems:
        raise ExtraInvalid(problems)
    team = Team.objects.filter(slug=team_slug).first()
    current = _find(team_slug, severity, channel_name, level) if team else None
    if current is None:
        action, fields = Action.CREATED, []
    else:
        fields = [f"spec.{k}" for k, f in KEYS.items() if getattr(current, f) != wanted[f]]
        action = Action.UPDATED if fields else Action.UNCHANGED
    return Planned(
        name=_name(team_slug, severity, channel_name, level),
        action=action,
        fields=fields,
        teams=[team] if team else [],
        value=(team_slug, severity, channel_name, level, wanted, current),
    )


def prune(declared: set[str], context: Context) -> list[Planned]:
    """The routes the files do not declare: deleted."""
    rows = Route.objects.select_related("team", "channel").select_for_update(of=("self",))
    planned = []
    for route in sorted(rows, key=_named):
        if _named(route) in declared:
            continue
        planned.append(
            Planned(
                name=_named(route),
                action=Action.DELETED,
                teams=[route.team],
                value=(None, None, None, None, None, route),
            )
        )
    return planned


def apply(planned: Planned, actor: Any) -> None:
    """Create, change or delete the route as the API does (one audited event each)."""
    team_slug, severity, channel_name, level, wanted, current = planned.value
    if planned.action == Action.DELETED:
        changes.delete(current, actor=actor, events=ROUTE_EVENTS)
        return
    if current is None:
        channel = Channel.objects.get(team__slug=team_slug, name=channel_name)
        data = {
            **wanted,
            "team": team_slug,
            "severity": severity,
            "channel": channel.pk,
            "escalation_level": level,
        }
        serializer = RouteSerializer(data=data)
    else:
        serializer = RouteSerializer(current, data=wanted, partial=True)
    serializer.is_valid(raise_exception=True)
    save(serializer, current, actor, ROUTE_EVENTS, f"the route {planned.name}")


def register() -> None:
    register_kind(KIND, export, validate, apply, label=label, pruner=prune)
