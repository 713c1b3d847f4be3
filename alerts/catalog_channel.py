"""Notification channels in the catalog as code: the `AlertChannel` kind of catalog files.

One document is one channel of a team, named by its team and name:

    apiVersion: signalbox.dev/v1
    kind: AlertChannel
    metadata: {team: commerce, name: oncall-slack}
    spec:
      type: slack
      secret: {fromEnv: COMMERCE_SLACK_WEBHOOK}

The keys are the channel API's (`type` is its `kind`): `type`, `secret`, `url`, `config`,
`enabled`. **The secret is only given by reference**, `{fromEnv: VAR}` or `{fromFile: PATH}`,
read by `manage.py catalog import` (the operator's shell); a secret written in the file is
refused. The reference is kept beside the encrypted secret, so an export writes it back; a
channel whose secret was set in the dashboard or the API has none, and an export writes
`fromEnv: SIGNALBOX_CHANNEL_<TEAM>_<NAME>_<WHAT>` for it and notes the variables to set.
Values are checked by the channel API's serializer and saved through
`controlplane.changes`, one audited event per change. Team owners manage channels.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from alerts.api.serializers import ChannelSerializer
from alerts.choices import CHANNEL_EVENTS, ChannelKind
from alerts.models import Channel
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
from controlplane.events import publish
from health.catalog_kind import serializer_problems

KIND = "AlertChannel"
REFERENCES = ("fromEnv", "fromFile")
# What the secret is, per channel type: the end of the variable an export names for it.
SECRET_IS = {
    ChannelKind.SLACK: "URL",  # the incoming webhook URL
    ChannelKind.PAGERDUTY: "ROUTING_KEY",
    ChannelKind.WEBHOOK: "SIGNING_SECRET",
    ChannelKind.APPRISE: "URL",  # the Apprise URL, with the service's tokens
}
# The spec's keys -> the API's fields (the document's own `kind` is taken).
KEYS = {"type": "kind", "url": "url", "config": "config", "enabled": "enabled"}
DEFAULTS: dict[str, Any] = {"url": "", "config": {}, "enabled": True}


def team_and_name(metadata: dict[str, Any]) -> tuple[str, str]:
    """A channel's (and a rule's) name: its team and its name in the team."""
    team, name = metadata["team"], metadata["name"]
    if not (isinstance(team, str) and isinstance(name, str)):
        raise TypeError
    return team, name


def label(body: dict[str, Any]) -> str:
    """team/name, for channels and rules alike."""
    return "/".join(team_and_name(body["metadata"]))


def variable_for(channel: Channel) -> str:
    """SIGNALBOX_CHANNEL_<TEAM>_<NAME>_<WHAT>: the variable an export names for a secret
    that has no reference (set in the dashboard or the API)."""
    words = f"{channel.team.slug}_{channel.name}"
    what = SECRET_IS.get(ChannelKind(channel.kind), "SECRET")
    return f"SIGNALBOX_CHANNEL_{re.sub(r'[^A-Z0-9]+', '_', words.upper()).strip('_')}_{what}"


def _imported_from(channel: Channel) -> dict[str, str] | None:
    """The reference the channel's secret was imported with; None when set otherwise."""
    source = channel.secret_source
    if isinstance(source, dict) and len(source) == 1 and set(source) <= set(REFERENCES):
        return dict(source)
    return None


def _reference(channel: Channel) -> dict[str, str] | None:
    """The secret's reference as an export writes it; None for a channel without a secret."""
    if not channel.secret:
        return None
    return _imported_from(channel) or {"fromEnv": variable_for(channel)}


def _rows() -> list[Channel]:
    return list(Channel.objects.select_related("team").order_by("team__slug", "name"))


def export() -> list[dict[str, Any]]:
    """Every channel by team and name; the secret as its reference, never its value."""
    documents = []
    for channel in _rows():
        spec: dict[str, Any] = {"type": channel.kind}
        reference = _reference(channel)
        if reference is not None:
            spec["secret"] = reference
        for key, field in KEYS.items():
            value = getattr(channel, field)
            if key != "type" and value != DEFAULTS[key]:
                spec[key] = value
        documents.append(document(KIND, {"team": channel.team.slug, "name": channel.name}, spec))
    return documents


def notes() -> list[str]:
    """The variables an export names for secrets set in the dashboard or the API."""
    missing = [
        f"{variable_for(c)} ({KIND}/{c.team.slug}/{c.name})"
        for c in _rows()
        if c.secret and _imported_from(c) is None
    ]
    if not missing:
        return []
    return [
        "these channels' secrets were set in the dashboard or the API, so the export names "
        "an environment variable for each; set them (or edit the references) before "
        "importing elsewhere: " + ", ".join(missing)
    ]


def resolve(raw: Any, path: str, context: Context) -> tuple[str, dict[str, str]] | None:
    """The secret a reference names and the reference; None when it may not be read here
    (a file posted to the API). Raises ExtraInvalid naming the field and the variable."""
    if not isinstance(raw, dict):
        raise ExtraInvalid(
            {
                path: "a secret is never written in the file: use "
                "{fromEnv: VARIABLE} or {fromFile: PATH}"
            }
        )
    references = [r for r in REFERENCES if r in raw]
    if len(references) != 1 or len(raw) != 1:
        raise ExtraInvalid({path: "a secret needs exactly one of fromEnv or fromFile"})
    reference = references[0]
    where, given = f"{path}.{reference}", raw[reference]
    if not context.resolve_secrets:
        return None
    if reference == "fromEnv":
        secret = os.environ.get(given)
        if not secret:
            raise ExtraInvalid({where: f"the environment variable {given} is not set"})
        return secret, {reference: given}
    location = Path(given).expanduser()
    try:
        secret = location.read_text(encoding="utf-8").removesuffix("\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise ExtraInvalid({where: f"cannot read {location}: {exc}"}) from None
    if not secret:
        raise ExtraInvalid({where: f"the file {location} is empty"})
    return secret, {reference: given}


def _find(team: str, name: str) -> Channel | None:
    return (
        Channel.objects.select_for_update()
        .select_related("team")
        .filter(team__slug=team, name=name)
        .first()
    )


def validate(body: dict[str, Any], context: Context) -> Planned:
    """Check one AlertChannel document with the channel API's serializer and plan it."""
    team_slug, name = team_and_name(body["metadata"])
    spec = body.get("spec") or {}
    problems: dict[str, str] = {}
    if not context.will_exist(CatalogKind.TEAM, team_slug):
        problems["metadata.team"] = f"Team/{team_slug} is neither in the files nor in the catalog"
    wanted = {f: spec[k] if spec.get(k) is not None else DEFAULTS.get(k) for k, f in KEYS.items()}
    team = Team.objects.filter(slug=team_slug).first()
    current = _find(team_slug, name) if team else None
    secret: tuple[str, dict[str, str]] | None = None
    source: dict[str, str] = {}
    if spec.get("secret") is None:
        if wanted["kind"] in (ChannelKind.SLACK, ChannelKind.PAGERDUTY, ChannelKind.APPRISE):
            problems["spec.secret"] = (
                f"a {wanted['kind']} channel needs its secret, by reference: "
                "{fromEnv: VARIABLE} or {fromFile: PATH}"
            )
    else:
        try:
            secret = resolve(spec["secret"], "spec.secret", context)
        except ExtraInvalid as exc:
            problems.update(exc.fields)
        else:
            if secret is None:  # a file sent to the API: keep the secret it was set with
                source = {k: v for k, v in spec["secret"].items()}
                if current is None or not current.secret or current.secret_source != source:
                    problems["spec.secret"] = (
                        "a file sent to the API cannot read the server's environment or "
                        "files, so it can only keep the secret a channel was imported with; "
                        "set it with manage.py catalog import or the channel API"
                    )
            else:
                source = secret[1]
    data = {**wanted, "name": name}
    if secret is not None:
        data["secret"] = secret[0]
    # Checked against the channel, or as a new one without its team (this import may
    # create the team): the channel serializer checks the values alone.
    serializer = ChannelSerializer(current, data=data, partial=True)
    if not serializer.is_valid():
        found = serializer_problems(serializer.errors)
        if "spec.kind" in found:
            found["spec.type"] = found.pop("spec.kind")
        if "spec.name" in found:
            found["metadata.name"] = found.pop("spec.name")
        for path, message in found.items():
            problems.setdefault(path, message)  # a reference's own problem says more
    if problems:
        raise ExtraInvalid(problems)
    if current is None:
        action, fields = Action.CREATED, []
    else:
        fields = [
            f"spec.{k}" for k, f in KEYS.items() if k != "type" and getattr(current, f) != wanted[f]
        ]
        if spec.get("secret") is None and current.secret:
            fields.append("spec.secret")  # left out: the secret is removed
        elif secret is not None and (
            secret[0] != current.secret or source != current.secret_source
        ):
            fields.append("spec.secret")
        action = Action.UPDATED if fields else Action.UNCHANGED
    return Planned(
        name=f"{team_slug}/{name}",
        action=action,
        fields=fields,
        teams=[team] if team else [],
        value=(team_slug, name, data, source, current),
    )


def prune(declared: set[str], context: Context) -> list[Planned]:
    """The channels the files do not declare: deleted, with their routes and subscriptions."""
    rows = (
        Channel.objects.select_related("team")
        .select_for_update(of=("self",))
        .order_by("team__slug", "name")
    )
    return [
        Planned(
            name=f"{c.team.slug}/{c.name}",
            action=Action.DELETED,
            teams=[c.team],
            value=(c.team.slug, c.name, None, None, c),
        )
        for c in rows
        if f"{c.team.slug}/{c.name}" not in declared
    ]


def apply(planned: Planned, actor: Any) -> None:
    """Create, change or delete the channel as the API does (one audited event each)."""
    team_slug, _, data, source, current = planned.value
    if planned.action == Action.DELETED:
        changes.delete(current, actor=actor, events=CHANNEL_EVENTS)
        return
    if current is None:
        serializer = ChannelSerializer(data={**data, "team": team_slug})
    else:
        serializer = ChannelSerializer(current, data=data, partial=True)
    serializer.is_valid(raise_exception=True)
    # Kept beside the encrypted secret, so an export writes the reference back.
    serializer.validated_data["secret_source"] = source
    if not source:  # the file leaves the secret out: the channel has none
        serializer.validated_data["secret"] = ""
    before = serializer.to_representation(current) if current is not None else None
    old_source = dict(current.secret_source) if current is not None else {}
    save(serializer, current, actor, CHANNEL_EVENTS, f"the channel {planned.name}")
    if before is not None and before == serializer.to_representation(serializer.instance):
        # Only the secret or its reference changed, which the API's shape does not show
        # (the mask may read the same): still one audited event, naming no secret.
        changed = {"secret": ["(hidden)", "(replaced)"], "secret_source": [old_source, source]}
        publish(
            CHANNEL_EVENTS.updated,
            actor=actor,
            subject=serializer.instance,
            message=f"{CHANNEL_EVENTS.noun} {serializer.instance} updated",
            payload={"changes": changed},
        )


def register() -> None:
    register_kind(KIND, export, validate, apply, label=label, pruner=prune, notes=notes)
