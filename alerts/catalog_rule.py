"""Alert rules in the catalog as code: the `AlertRule` kind of catalog files.

One document is one rule of a team, named by its team and name:

    apiVersion: signalbox.dev/v1
    kind: AlertRule
    metadata: {team: commerce, name: Checkout down}
    spec:
      type: service_state
      severity: page
      service: checkout
      productionOnly: true
      params: {states: [down], for_seconds: 60}

The keys are the rule API's writable fields in camelCase (`type` is its `kind`), with its
defaults (`severity: ticket`, `productionOnly: false`, `enabled: true`,
`notifyAffected: true`, no service or environment: all of them); `params` are the rule
kind's, checked and completed by it. Every team gets the default rules when it is created;
those carry `defaultKey`, so an import into another installation finds the rule the new
team was given instead of adding a second one (and a renamed default rule stays the one
rule). Saved through `controlplane.changes` with the rule API's serializer, one audited
event per change. Team owners manage rules; the rollback rule is never pruned.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Field

from alerts.api.serializers import RuleSerializer
from alerts.catalog_channel import label, team_and_name
from alerts.choices import RULE_EVENTS
from alerts.models import Rule
from alerts.rules import KINDS
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
from catalog.models import Service, Team
from controlplane import changes
from health.catalog_kind import key_of, serializer_problems

KIND = "AlertRule"
# spec key -> the rule API's field (the document's own `kind` is taken).
FIELDS = ("kind", "severity", "production_only", "params", "enabled", "notify_affected")
KEYS = {("type" if f == "kind" else key_of(f)): f for f in FIELDS}
REFERENCES = {"service": "service", "environment": "environment"}


def _default(field: str) -> Any:
    model_field = Rule._meta.get_field(field)
    assert isinstance(model_field, Field)
    return model_field.get_default()


def _params(rule: Rule) -> dict[str, Any]:
    """The rule's params with its kind's defaults filled in, as an import stores them."""
    kind = KINDS.get(rule.kind)
    if kind is None or not isinstance(rule.params, dict):
        return dict(rule.params or {})
    try:
        return kind.clean_params(rule.params, rule.severity)
    except ValidationError:
        return dict(rule.params)


def _values(rule: Rule) -> dict[str, Any]:
    values = {f: getattr(rule, f) for f in FIELDS}
    values["params"] = _params(rule)
    values["service"] = rule.service.slug if rule.service else None
    values["environment"] = rule.environment.slug if rule.environment else None
    return values


def export() -> list[dict[str, Any]]:
    """Every rule by team and name; fields that differ from the defaults, params in full."""
    rows = Rule.objects.select_related("team", "service", "environment")
    documents = []
    for rule in sorted(rows, key=lambda r: (r.team.slug, r.name, r.default_key)):
        values = _values(rule)
        spec: dict[str, Any] = {"type": rule.kind}
        for key, field in KEYS.items():
            if key != "type" and (field == "params" or values[field] != _default(field)):
                spec[key] = values[field]
        for key, field in REFERENCES.items():
            if values[field] is not None:
                spec[key] = values[field]
        if rule.default_key:
            spec["defaultKey"] = rule.default_key
        documents.append(document(KIND, {"team": rule.team.slug, "name": rule.name}, spec))
    return documents


def _find(team: str, name: str, default_key: str) -> Rule | None:
    """The team's rule of that name, else its default rule of that key (renamed)."""
    rows = Rule.objects.select_for_update(of=("self",)).select_related(
        "team", "service", "environment"
    )
    found = rows.filter(team__slug=team, name=name).order_by("id").first()
    if found is None and default_key:
        found = rows.filter(team__slug=team, default_key=default_key).first()
    return found


def _wanted(spec: dict[str, Any]) -> dict[str, Any]:
    given = {f: spec[k] for k, f in KEYS.items() if spec.get(k) is not None}
    wanted = {f: given[f] if f in given else _default(f) for f in FIELDS}
    for key, field in REFERENCES.items():
        wanted[field] = spec.get(key)
    return wanted


def validate(body: dict[str, Any], context: Context) -> Planned:
    """Check one AlertRule document with the rule API's serializer and plan it."""
    team_slug, name = team_and_name(body["metadata"])
    spec = body.get("spec") or {}
    default_key = spec.get("defaultKey") or ""
    problems: dict[str, str] = {}
    if not context.will_exist(CatalogKind.TEAM, team_slug):
        problems["metadata.team"] = f"Team/{team_slug} is neither in the files nor in the catalog"
    wanted = _wanted(spec)
    service_slug, environment_slug = wanted["service"], wanted["environment"]
    if service_slug is not None:
        service = Service.objects.select_related("team").filter(slug=service_slug).first()
        if not context.will_exist(CatalogKind.SERVICE, service_slug):
            problems["spec.service"] = (
                f"Service/{service_slug} is neither in the files nor in the catalog"
            )
        elif service is not None and service.team.slug != team_slug:
            problems["spec.service"] = f"{service_slug} is {service.team.slug}'s service"
    if environment_slug is not None and not context.will_exist(
        CatalogKind.ENVIRONMENT, environment_slug
    ):
        problems["spec.environment"] = (
            f"Environment/{environment_slug} is neither in the files nor in the catalog"
        )
    team = Team.objects.filter(slug=team_slug).first()
    current = _find(team_slug, name, default_key) if team else None
    # Checked against the rule, or an unsaved one of an unsaved team (this import may
    # create the team); the service and environment were checked above.
    instance = current or Rule(team=Team(slug=team_slug))
    data = {f: wanted[f] for f in FIELDS} | {"name": name}
    serializer = RuleSerializer(instance, data=data, partial=True)
    if not serializer.is_valid():
        found = serializer_problems(serializer.errors)
        if "spec.kind" in found:
            found["spec.type"] = found.pop("spec.kind")
        if "spec.name" in found:
            found["metadata.name"] = found.pop("spec.name")
        problems.update(found)
    if problems:
        raise ExtraInvalid(problems)
    checked = {f: serializer.validated_data[f] for f in FIELDS}
    checked |= {"service": service_slug, "environment": environment_slug}
    if current is None:
        action, fields = Action.CREATED, []
    else:
        before = _values(current)
        fields = [f"spec.{k}" for k, f in KEYS.items() if before[f] != checked[f]]
        fields += [f"spec.{k}" for k, f in REFERENCES.items() if before[f] != checked[f]]
        if current.name != name:
            fields.insert(0, "metadata.name")
        action = Action.UPDATED if fields else Action.UNCHANGED
    return Planned(
        name=f"{team_slug}/{name}",
        action=action,
        fields=fields,
        teams=[team] if team else [],
        value=(team_slug, name, default_key, wanted),
    )


def prune(declared: set[str], context: Context) -> list[Planned]:
    """The rules the files do not declare: deleted, except the rollback rule (it stays)."""
    rows = Rule.objects.select_related("team").select_for_update(of=("self",))
    planned = []
    for rule in sorted(rows, key=lambda r: (r.team.slug, r.name, r.pk)):
        named = f"{rule.team.slug}/{rule.name}"
        if named in declared or rule.is_protected:
            continue
        planned.append(Planned(name=named, action=Action.DELETED, teams=[rule.team], value=rule))
    return planned


def apply(planned: Planned, actor: Any) -> None:
    """Create, change or delete the rule as the API does (one audited event each)."""
    if planned.action == Action.DELETED:
        changes.delete(planned.value, actor=actor, events=RULE_EVENTS)
        return
    team_slug, name, default_key, wanted = planned.value
    # Found again: a team this import created has just been given the default rules.
    current = _find(team_slug, name, default_key)
    data = {**wanted, "name": name}
    if current is None:
        serializer = RuleSerializer(data={**data, "team": team_slug})
    else:
        serializer = RuleSerializer(current, data=data, partial=True)
    serializer.is_valid(raise_exception=True)
    if current is None and default_key:
        serializer.validated_data["default_key"] = default_key
    save(serializer, current, actor, RULE_EVENTS, f"the rule {planned.name}")


def register() -> None:
    register_kind(KIND, export, validate, apply, label=label, pruner=prune)
