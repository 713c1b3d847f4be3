"""The Slack bot: request signatures, the /signalbox slash command, the Acknowledge button.

Slack signs each request: `v0=` + HMAC-SHA256(signing secret, "v0:<timestamp>:<body>"),
checked with slack_sdk's own verifier. Requests more than five minutes from our clock are
refused, so a captured request cannot be replayed later. Slack users act as the Signalbox
user they are linked to (SlackIdentity), with that user's permissions.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from typing import Any

import httpx
from slack_sdk.signature import Clock, SignatureVerifier

from alerts.choices import IncidentState
from alerts.incidents import acknowledge
from alerts.models import Incident, SlackIdentity
from catalog.choices import Scope
from catalog.models import Service
from catalog.permissions import Access

logger = logging.getLogger(__name__)

MAX_AGE_SECONDS = 300
HELP = (
    "Usage: `/signalbox status [service]` · `/signalbox ack <incident>` · "
    "`/signalbox pause|resume|abort <rollout>` · "
    "`/signalbox scale <service> <environment> <count>|pause|resume|restart`"
)
Answer = dict[str, Any]


class _At(Clock):
    """The verifier's clock, set to the moment the caller judges the request at."""

    def __init__(self, now: float) -> None:
        self._now = now

    def now(self) -> float:
        return self._now


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """What Slack sends as X-Slack-Signature for this body at this timestamp."""
    return str(SignatureVerifier(secret).generate_signature(timestamp=timestamp, body=body))


def verify(secret: str, timestamp: str | None, given: str | None, body: bytes, now: float) -> str:
    """ "" when the request is Slack's and fresh; otherwise why it is refused."""
    if not secret:
        return "the Slack bot is not configured (set SLACK_SIGNING_SECRET)"
    try:
        sent_at = int(timestamp or "")
    except ValueError:
        return "missing or malformed X-Slack-Request-Timestamp"
    if abs(now - sent_at) > MAX_AGE_SECONDS:
        return "request timestamp is more than 5 minutes from now; refused as a possible replay"
    verifier = SignatureVerifier(secret, clock=_At(now))
    if not given or not verifier.is_valid(body=body, timestamp=str(sent_at), signature=given):
        return "bad X-Slack-Signature"
    return ""


def ephemeral(text: str) -> Answer:
    return {"response_type": "ephemeral", "text": text}


def user_for(slack_team_id: str, slack_user_id: str) -> Any:
    identity = (
        SlackIdentity.objects.select_related("user")
        .filter(slack_team_id=slack_team_id, slack_user_id=slack_user_id)
        .first()
    )
    return identity.user if identity is not None and identity.user.is_active else None


def unknown_user(slack_team_id: str, slack_user_id: str) -> Answer:
    return ephemeral(
        f"I don't know who you are in Signalbox. Ask an admin to link Slack user "
        f"`{slack_team_id}/{slack_user_id}` to your account (Slack identities in the admin)."
    )


def command(slack_team_id: str, slack_user_id: str, text: str) -> Answer:
    """Answer one `/signalbox ...` command."""
    user = user_for(slack_team_id, slack_user_id)
    if user is None:
        return unknown_user(slack_team_id, slack_user_id)
    words = text.split()
    verb, args = (words[0].lower(), words[1:]) if words else ("help", [])
    if verb == "status" and len(args) <= 1:
        return status(args[0] if args else None)
    if verb == "ack" and len(args) == 1:
        return ack(user, args[0])
    if verb in ("pause", "resume", "abort") and len(args) == 1:
        return rollout_action(user, verb, args[0])
    if verb == "scale" and len(args) == 3:
        return scale_action(user, *args)
    return ephemeral(HELP)


SCALE_VERBS = ("pause", "resume", "restart")


def scale_action(user: Any, service_slug: str, environment_slug: str, what: str) -> Answer:
    """`/signalbox scale checkout production 5` (sets the count, pausing autoscaling), or
    `... pause|resume|restart`: the same controls as the page, the API and the CLI."""
    from scaling import controls
    from scaling.models import ScalingGroup

    group = (
        ScalingGroup.objects.select_related("service", "service__team", "environment")
        .filter(service__slug=service_slug, environment__slug=environment_slug)
        .first()
    )
    if group is None:
        return ephemeral(f"No scaling group for `{service_slug}` in `{environment_slug}`.")
    if not what.isdigit() and what.lower() not in SCALE_VERBS:
        return ephemeral(
            f"`{what}`: give a count (a whole number) or one of {', '.join(SCALE_VERBS)}."
        )
    access = Access(user=user)
    if not access.can(Scope.DEPLOY, group.service.team, group.service):
        return ephemeral(
            f"You may not scale {group}: it needs the deployer or owner role in team "
            f"{group.service.team.slug}."
        )
    try:
        if what.isdigit():
            controls.set_desired(group, int(what), access, "from Slack")
            done = f"set to {int(what)} instances (autoscaling paused until resumed)"
        elif what.lower() == "pause":
            controls.pause(group, access, "from Slack")
            done = "autoscaling paused"
        elif what.lower() == "resume":
            controls.resume(group, access)
            done = "autoscaling resumed"
        else:
            controls.start_restart(group, access, "from Slack")
            done = "rolling restart started"
    except Exception as exc:  # a refusal (outside the bounds, already restarting) is the answer
        logger.info("slack scale of %s refused: %s", group, exc)
        return ephemeral(f"Could not scale {group}: {exc}")
    return {"response_type": "in_channel", "text": f"{group}: {done} by {user.get_username()}"}


def status(service_slug: str | None) -> Answer:
    open_incidents = Incident.objects.filter(
        state__in=[IncidentState.FIRING, IncidentState.ACKNOWLEDGED]
    ).select_related("service", "environment")
    lines: list[str] = []
    if service_slug is not None:
        service = Service.objects.filter(slug=service_slug).first()
        if service is None:
            return ephemeral(f"No service `{service_slug}`.")
        open_incidents = open_incidents.filter(service=service)
        for env, state in _service_health(service).items():
            lines.append(f"• {service.slug} in {env}: *{state}*")
    firing = [i for i in open_incidents[:50] if i.state == IncidentState.FIRING]
    acked = [i for i in open_incidents[:50] if i.state == IncidentState.ACKNOWLEDGED]
    lines.append(f"{len(firing)} firing, {len(acked)} acknowledged incident(s)")
    for incident in (firing + acked)[:10]:
        lines.append(f"• #{incident.pk} [{incident.state}] {incident.title}")
    return {"response_type": "ephemeral", "text": "\n".join(lines)}


def _service_health(service: Service) -> dict[str, str]:
    """Health per environment from the health app's public function, if it is installed."""
    try:
        health = importlib.import_module("health.services")
    except ImportError:
        return {}
    from catalog.models import Environment

    envs = Environment.objects.filter(instances__service=service).distinct()
    return {env.slug: str(health.service_health(service.pk, env.pk)) for env in envs}


def ack(user: Any, reference: str) -> Answer:
    incident = _incident(reference)
    if incident is None:
        return ephemeral(f"No incident `{reference}`.")
    return acknowledge_as(user, incident)


def acknowledge_as(user: Any, incident: Incident) -> Answer:
    access = Access(user=user)
    if not access.can(Scope.DEPLOY, incident.team, incident.service):
        return ephemeral(
            f"You may not acknowledge #{incident.pk}: it belongs to team "
            f"{incident.team.slug} and needs its deployer or owner role."
        )
    if acknowledge(incident.pk, access) is None:
        return ephemeral(
            f"#{incident.pk} is {incident.state}; only a firing incident can be acknowledged."
        )
    return {
        "response_type": "in_channel",
        "text": f"#{incident.pk} {incident.title} acknowledged by {user.get_username()}",
    }


def _incident(reference: str) -> Incident | None:
    ref = reference.lstrip("#")
    if not ref.isdigit():
        return None
    return Incident.objects.visible().select_related("team", "service").filter(pk=int(ref)).first()


def _rollout_act() -> Callable[..., Any] | None:
    """deployments' public `act(rollout_id, action, access=, reason=)`, if deployments is here."""
    for module_name in ("deployments.services", "deployments.actions"):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        act: Callable[..., Any] | None = getattr(module, "act", None)
        if callable(act):
            return act
    return None


def rollout_action(user: Any, verb: str, reference: str) -> Answer:
    act = _rollout_act()
    if act is None:
        return ephemeral(f"Deployments are unavailable here, so I cannot {verb} rollouts.")
    from django.apps import apps

    rollout_model = apps.get_model("deployments", "Rollout")
    ref = reference.lstrip("#")
    rollout = (
        rollout_model.objects.select_related("team", "service", "environment")
        .filter(pk=int(ref))
        .first()
        if ref.isdigit()
        else None
    )
    if rollout is None:
        return ephemeral(f"No rollout `{reference}`.")
    access = Access(user=user)
    if not access.can(Scope.DEPLOY, rollout.team, rollout.service):
        return ephemeral(
            f"You may not {verb} rollout {rollout.pk}: it needs the deployer or "
            f"owner role in team {rollout.team.slug}."
        )
    try:
        act(rollout.pk, verb, access=access, reason="from Slack")
    except Exception as exc:  # a refusal (wrong state, a freeze) is the answer to show
        logger.info("slack %s of rollout %s refused: %s", verb, rollout.pk, exc)
        return ephemeral(f"Could not {verb} rollout {rollout.pk}: {exc}")
    return {
        "response_type": "in_channel",
        "text": f"Rollout {rollout.pk} ({rollout.service.slug} in "
        f"{rollout.environment.slug}): {verb} by {user.get_username()}",
    }


def interaction(payload: dict[str, Any]) -> Answer:
    """A button press on one of our messages (only Acknowledge does something)."""
    user_info = payload.get("user") or {}
    team_info = payload.get("team") or {}
    slack_team_id = str(team_info.get("id") or user_info.get("team_id") or "")
    slack_user_id = str(user_info.get("id") or "")
    from alerts.notifiers.slack import ACK_ACTION_ID, RESTART_ACTION_ID

    actions = [
        a
        for a in payload.get("actions") or []
        if a.get("action_id") in (ACK_ACTION_ID, RESTART_ACTION_ID)
    ]
    if payload.get("type") != "block_actions" or not actions:
        return {}
    user = user_for(slack_team_id, slack_user_id)
    if user is None:
        return unknown_user(slack_team_id, slack_user_id)
    if actions[0].get("action_id") == RESTART_ACTION_ID:
        answer = restart_group(user, str(actions[0].get("value", "")))
    else:
        incident = _incident(str(actions[0].get("value", "")))
        if incident is None:
            return ephemeral("That incident no longer exists.")
        answer = acknowledge_as(user, incident)
    answer["replace_original"] = False
    reply(str(payload.get("response_url") or ""), answer)
    return answer


def restart_group(user: Any, group_id: str) -> Answer:
    """The "Rolling restart" button of a scaling alert."""
    from scaling.models import ScalingGroup

    group = (
        ScalingGroup.objects.select_related("service", "environment")
        .filter(pk=int(group_id))
        .first()
        if group_id.isdigit()
        else None
    )
    if group is None:
        return ephemeral("That scaling group no longer exists.")
    return scale_action(user, group.service.slug, group.environment.slug, "restart")


def reply(response_url: str, answer: Answer) -> None:
    """Slack shows a button's answer only when posted to the interaction's response_url."""
    if not response_url.startswith(("https://", "http://")):
        return
    try:
        httpx.post(response_url, json=answer, timeout=3.0)
    except httpx.HTTPError:
        logger.warning("could not answer a Slack interaction at its response_url")
