"""Dependency-aware grouping against real receivers: a chain web -> checkout -> payments pages
the root's team once, names the dependents, and never hides a problem or a resolve."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from alerts import evaluation
from alerts.choices import (
    EXTERNAL_STATUS_CHANGED,
    ChannelKind,
    IncidentState,
    NotificationAction,
    RuleKind,
    Severity,
    TimelineKind,
)
from alerts.models import Channel, Incident, Notification, Route, Rule
from alerts.tests.conftest import ROUTING_KEY, Receiver, deliver_all, spine
from catalog.models import ExternalDependency, Service, Team
from health.choices import HealthEvent


@dataclass
class Chain:
    """web (frontend) -> checkout (storefront) -> payments (billing), each team with Slack
    and PagerDuty routed for pages."""

    world: Any
    receiver: Receiver
    teams: dict[str, Team]
    services: dict[str, Service]

    def down(self, name: str) -> Incident:
        self._health(name, "down")
        return self.incident(name)

    def up(self, name: str) -> None:
        self._health(name, "healthy")

    def _health(self, name: str, to: str) -> None:
        spine(
            HealthEvent.SERVICE_CHANGED,
            subject=self.services[name],
            environment=self.world.production,
            payload={"from": "?", "to": to, "reason": f"{name} now {to}", "in_maintenance": False},
        )

    def incident(self, name: str) -> Incident:
        return Incident.objects.select_related("root").get(
            service=self.services[name], rule__kind=RuleKind.SERVICE_STATE
        )

    def pagerduty(self, team: str) -> list[dict[str, Any]]:
        return [r.json() for r in self.receiver.to(f"/pd/{team}")]

    def slack(self, team: str) -> list[dict[str, Any]]:
        return [r.json() for r in self.receiver.to(f"/slack/{team}")]


def _team(slug: str, receiver: Receiver, slack_wait: int = 0) -> Team:
    team = Team.objects.create(slug=slug, name=slug.title())
    Rule.objects.filter(team=team).update(enabled=False)
    Rule.objects.create(
        team=team,
        name=f"{slug} down",
        kind=RuleKind.SERVICE_STATE,
        severity=Severity.PAGE,
        params={"states": ["down"], "for_seconds": 0},
    )
    slack = Channel.objects.create(
        team=team, name="slack", kind=ChannelKind.SLACK, secret=receiver.url(f"/slack/{slug}")
    )
    pagerduty = Channel.objects.create(
        team=team,
        name="pagerduty",
        kind=ChannelKind.PAGERDUTY,
        secret=ROUTING_KEY,
        url=receiver.url(f"/pd/{slug}"),
    )
    Route.objects.create(
        team=team, severity=Severity.PAGE, channel=slack, group_wait_seconds=slack_wait
    )
    Route.objects.create(team=team, severity=Severity.PAGE, channel=pagerduty, group_wait_seconds=0)
    return team


@pytest.fixture
def chain(world: Any, receiver: Receiver) -> Chain:
    Rule.objects.update(enabled=False)
    # The root's team waits 30 s before its Slack message, as a real route would: the
    # dependents that fail within it are in that one message.
    teams = {
        "billing": _team("billing", receiver, slack_wait=30),
        "storefront": _team("storefront", receiver),
        "frontend": _team("frontend", receiver),
    }
    payments = Service.objects.create(slug="payments", name="Payments", team=teams["billing"])
    checkout = world.service
    checkout.team = teams["storefront"]
    checkout.save()
    web = Service.objects.create(slug="web", name="Web", team=teams["frontend"])
    web.depends_on.add(checkout)
    checkout.depends_on.add(payments)
    return Chain(world, receiver, teams, {"payments": payments, "checkout": checkout, "web": web})


def _send_waiting() -> None:
    """The group wait is over: what a worker does 30 s later."""
    Notification.objects.filter(state="pending").update(next_attempt_at=timezone.now())
    deliver_all()


def _key(incident: Incident) -> str:
    return f"signalbox-incident-{incident.pk}"


def _every_trigger_resolved(chain: Chain) -> None:
    for team in chain.teams:
        events = chain.pagerduty(team)
        triggered = {e["dedup_key"] for e in events if e["event_action"] == "trigger"}
        resolved = {e["dedup_key"] for e in events if e["event_action"] == "resolve"}
        assert triggered == resolved, team


@pytest.mark.django_db
def test_the_root_pages_once_naming_its_dependents_who_page_nobody(chain: Chain) -> None:
    # given payments goes down and pages billing
    payments = chain.down("payments")
    deliver_all()
    # when checkout and then web fail because of it
    checkout = chain.down("checkout")
    web = chain.down("web")
    deliver_all()
    _send_waiting()
    # then both incidents exist, firing, rooted at payments with the path that leads there
    checkout.refresh_from_db()
    web.refresh_from_db()
    assert (checkout.state, checkout.root_id) == (IncidentState.FIRING, payments.pk)
    assert (web.state, web.root_id) == (IncidentState.FIRING, payments.pk)
    assert checkout.caused_by_path == "checkout -> payments"
    assert web.caused_by_path == "web -> checkout -> payments"
    assert checkout.is_grouped and web.is_grouped
    assert checkout.notified_at is None and web.notified_at is None
    # and nobody pages storefront or frontend
    assert chain.pagerduty("storefront") == [] and chain.pagerduty("frontend") == []
    # and billing's PagerDuty has one alert (one dedup key), updated to name the dependents
    events = chain.pagerduty("billing")
    assert {e["dedup_key"] for e in events} == {_key(payments)}
    dependents = events[-1]["payload"]["custom_details"]["dependents"]
    assert [line.split(":")[0] for line in dependents] == [
        f"#{checkout.pk} checkout in production",
        f"#{web.pk} web in production",
    ]
    # and billing's Slack got one message: payments, with both dependents listed
    [message] = chain.slack("billing")
    assert message["text"] == "FIRING: payments in production is down"
    listed = [
        b for b in message["blocks"] if "Affected dependents" in b.get("text", {}).get("text", "")
    ]
    assert len(listed) == 1
    assert "web -&gt; checkout -&gt; payments" in listed[0]["text"]["text"]
    # and each dependent team got one heads-up (never a page) naming the root
    [heads_up] = chain.slack("storefront")
    assert heads_up["text"] == (
        "AFFECTED BY payments in production is down: checkout in production is down"
    )
    assert len(chain.slack("frontend")) == 1
    assert "Acknowledge" not in str(heads_up)
    kinds = list(checkout.timeline.values_list("kind", flat=True))
    assert TimelineKind.GROUPED in kinds and TimelineKind.SUPPRESSED in kinds


@pytest.mark.django_db
def test_a_dependent_that_outlives_its_root_pages_then_and_every_page_gets_its_resolve(
    chain: Chain,
) -> None:
    # given payments down, checkout and web held under it
    payments = chain.down("payments")
    checkout = chain.down("checkout")
    web = chain.down("web")
    _send_waiting()
    assert chain.pagerduty("storefront") == []
    # when payments recovers while checkout still fails, and the clock ticks
    chain.up("payments")
    evaluation.tick()
    deliver_all()
    # then billing hears the resolve, and checkout pages storefront now, naming its old root
    assert [e["event_action"] for e in chain.pagerduty("billing")][-1] == "resolve"
    checkout.refresh_from_db()
    assert checkout.notified_at is not None and not checkout.is_grouped
    [trigger] = chain.pagerduty("storefront")
    assert trigger["dedup_key"] == _key(checkout)
    details = trigger["payload"]["custom_details"]
    assert details["caused_by"].startswith(f"caused by #{payments.pk} payments in production")
    assert "resolved since" in details["caused_by"]
    assert details["root_dedup_key"] == _key(payments)
    # and web, still failing because of checkout, now waits under checkout instead
    web.refresh_from_db()
    assert (web.root_id, web.caused_by_path) == (checkout.pk, "web -> checkout")
    assert chain.pagerduty("frontend") == []
    assert details["dependents"][0].startswith(f"#{web.pk} web in production")
    # when checkout recovers too, web (still failing) pages frontend
    chain.up("checkout")
    evaluation.tick()
    deliver_all()
    assert [e["event_action"] for e in chain.pagerduty("storefront")] == ["trigger", "resolve"]
    assert [e["event_action"] for e in chain.pagerduty("frontend")] == ["trigger"]
    # then when web recovers, every trigger that was sent has had its resolve
    chain.up("web")
    deliver_all()
    _every_trigger_resolved(chain)


@pytest.mark.django_db
def test_a_dependent_that_recovers_while_held_sends_nothing(chain: Chain) -> None:
    # given checkout held under payments
    chain.down("payments")
    checkout = chain.down("checkout")
    deliver_all()
    sent_before = len(chain.receiver.requests)
    # when checkout recovers first
    chain.up("checkout")
    evaluation.tick()
    deliver_all()
    # then it resolved quietly: its team never heard a trigger, so it hears no resolve
    checkout.refresh_from_db()
    assert checkout.state == IncidentState.RESOLVED
    assert chain.pagerduty("storefront") == []
    assert len(chain.receiver.requests) == sent_before
    assert not Notification.objects.filter(
        incidents=checkout, action=NotificationAction.RESOLVE
    ).exists()


@pytest.mark.django_db
def test_a_ticket_root_never_holds_back_a_page(chain: Chain) -> None:
    # given billing only files a ticket when payments is down
    Rule.objects.filter(team=chain.teams["billing"]).update(severity=Severity.TICKET)
    Route.objects.create(
        team=chain.teams["billing"],
        severity=Severity.TICKET,
        channel=Channel.objects.get(team=chain.teams["billing"], kind=ChannelKind.SLACK),
    )
    payments = chain.down("payments")
    # when checkout's page fires because of it
    checkout = chain.down("checkout")
    deliver_all()
    # then checkout pages its own team, naming the cause
    checkout.refresh_from_db()
    assert checkout.root_id == payments.pk and not checkout.is_grouped
    [trigger] = chain.pagerduty("storefront")
    assert trigger["payload"]["custom_details"]["caused_by"].startswith(f"caused by #{payments.pk}")


@pytest.mark.django_db
def test_a_dependency_cycle_does_not_loop(chain: Chain) -> None:
    # given payments also depends on web (a cycle) and on itself
    payments_service = chain.services["payments"]
    payments_service.depends_on.add(chain.services["web"], payments_service)
    # when all three go down in turn
    payments = chain.down("payments")
    checkout = chain.down("checkout")
    web = chain.down("web")
    deliver_all()
    # then the first one down is the root and nothing is rooted at itself
    payments.refresh_from_db()
    checkout.refresh_from_db()
    web.refresh_from_db()
    assert payments.root_id is None and payments.notified_at is not None
    assert checkout.root_id == payments.pk and web.root_id == payments.pk
    assert len({e["dedup_key"] for e in chain.pagerduty("billing")}) == 1


def _stripe_outage(state: str, previous: str = "operational") -> None:
    """What health's vendor poller publishes (it lives in another app; this stands in)."""
    stripe = ExternalDependency.objects.get(slug="stripe")
    spine(
        EXTERNAL_STATUS_CHANGED,
        subject=stripe,
        payload={
            "dependency": "stripe",
            "state": state,
            "previous": previous,
            "source": "statuspage",
            "summary": f"Stripe API: {state.replace('_', ' ')}",
            "vendor_indicator": "major" if state == "major_outage" else "none",
            "our_probe": None,
        },
    )


@pytest.mark.django_db
def test_an_external_outage_roots_the_incidents_of_the_services_using_it(chain: Chain) -> None:
    # given checkout uses Stripe, and storefront's rule watches external dependencies
    stripe = ExternalDependency.objects.create(slug="stripe", name="Stripe")
    chain.services["checkout"].external_dependencies.add(stripe)
    Rule.objects.create(
        team=chain.teams["storefront"],
        name="vendor outage",
        kind=RuleKind.EXTERNAL_STATUS,
        severity=Severity.PAGE,
        params={"states": ["partial_outage", "major_outage"], "dependencies": []},
    )
    # and frontend has one too, but none of its services uses Stripe directly
    Rule.objects.create(
        team=chain.teams["frontend"],
        name="vendor outage",
        kind=RuleKind.EXTERNAL_STATUS,
        severity=Severity.PAGE,
        params={"states": ["major_outage"], "dependencies": []},
    )
    # when Stripe's status page says major outage
    _stripe_outage("major_outage")
    # then storefront has one incident for it, and frontend none
    [outage] = Incident.objects.filter(rule__kind=RuleKind.EXTERNAL_STATUS)
    assert outage.team == chain.teams["storefront"]
    assert outage.title == "Stripe: major outage"
    assert "source: statuspage" in outage.reason
    # when checkout and web fail because of it
    checkout = chain.down("checkout")
    web = chain.down("web")
    deliver_all()
    # then both are rooted at the Stripe incident
    checkout.refresh_from_db()
    web.refresh_from_db()
    assert (checkout.root_id, checkout.caused_by_path) == (outage.pk, "checkout -> stripe")
    assert (web.root_id, web.caused_by_path) == (outage.pk, "web -> checkout -> stripe")
    # and storefront was paged once, for Stripe, naming both; frontend was not paged
    events = chain.pagerduty("storefront")
    assert {e["dedup_key"] for e in events} == {_key(outage)}
    assert len(events[-1]["payload"]["custom_details"]["dependents"]) == 2
    assert chain.pagerduty("frontend") == []
    # when the vendor says maintenance, nothing changes; when operational, it resolves
    _stripe_outage("maintenance", "major_outage")
    outage.refresh_from_db()
    assert outage.state == IncidentState.FIRING
    _stripe_outage("operational", "maintenance")
    outage.refresh_from_db()
    assert outage.state == IncidentState.RESOLVED
    # and checkout, still failing, pages storefront now
    evaluation.tick()
    deliver_all()
    keys = [e["dedup_key"] for e in chain.pagerduty("storefront") if e["event_action"] == "trigger"]
    assert keys[-1] == _key(checkout)


@pytest.mark.django_db
def test_the_api_and_the_incident_page_show_the_root_and_the_dependents(
    chain: Chain, api_as: Any
) -> None:
    # given checkout held under payments
    payments = chain.down("payments")
    checkout = chain.down("checkout")
    # when the API is asked about both
    api = api_as("admin")
    root = api.get(f"/api/v1/alerts/incidents/{payments.pk}").json()
    dependent = api.get(f"/api/v1/alerts/incidents/{checkout.pk}").json()
    listed = api.get("/api/v1/alerts/incidents?service=checkout").json()
    # then the dependent names its root and path, and the root lists its dependents
    assert dependent["root"] == {
        "id": payments.pk,
        "title": "payments in production is down",
        "state": "firing",
        "team": "billing",
    }
    assert dependent["caused_by_path"] == "checkout -> payments"
    assert dependent["grouped"] is True
    assert root["root"] is None and root["dependents"] == [
        {
            "id": checkout.pk,
            "title": "checkout in production is down",
            "state": "firing",
            "team": "storefront",
            "service": "checkout",
            "environment": "production",
            "caused_by_path": "checkout -> payments",
        }
    ]
    assert listed["results"][0]["root"]["id"] == payments.pk
    # and the pages say "caused by" with a link, and list the dependents
    client = Client()
    client.force_login(chain.world.admin)
    page = client.get(f"/alerts/incidents/{checkout.pk}/").content.decode()
    assert f'href="/alerts/incidents/{payments.pk}/"' in page
    assert "Caused by" in page and "checkout -&gt; payments" in page
    root_page = client.get(f"/alerts/incidents/{payments.pk}/").content.decode()
    assert "Affected dependents" in root_page
    assert f'href="/alerts/incidents/{checkout.pk}/"' in root_page
    listing = client.get("/alerts/").content.decode()
    assert "caused by" in listing


@pytest.mark.django_db
def test_external_rule_parameters_are_checked(chain: Chain, api_as: Any) -> None:
    # when an owner asks for an external rule with a bad state and an unknown dependency
    answer = api_as("admin").post(
        "/api/v1/alerts/rules",
        {
            "team": "storefront",
            "name": "vendor",
            "kind": RuleKind.EXTERNAL_STATUS,
            "severity": Severity.PAGE,
            "params": {"states": ["on_fire"], "dependencies": []},
        },
        format="json",
    )
    # then 400 names the parameter and the choices
    assert answer.status_code == 400
    assert "params.states" in str(answer.json())
    answer = api_as("admin").post(
        "/api/v1/alerts/rules",
        {
            "team": "storefront",
            "name": "vendor",
            "kind": RuleKind.EXTERNAL_STATUS,
            "params": {"dependencies": ["nope"]},
        },
        format="json",
    )
    assert answer.status_code == 400
    assert "no external dependency nope" in str(answer.json())
    assert not Rule.objects.filter(name="vendor").exists()


@pytest.mark.django_db
def test_webhooks_and_email_carry_the_root_and_the_dependents(chain: Chain, smtp: Any) -> None:
    import hashlib
    import hmac

    from alerts.tests.conftest import WEBHOOK_SECRET

    # given billing also has a signed webhook, and storefront an email channel for pages
    hook = Channel.objects.create(
        team=chain.teams["billing"],
        name="hook",
        kind=ChannelKind.WEBHOOK,
        secret=WEBHOOK_SECRET,
        url=chain.receiver.url("/hook/billing"),
    )
    Route.objects.create(
        team=chain.teams["billing"], severity=Severity.PAGE, channel=hook, group_wait_seconds=0
    )
    mail = Channel.objects.create(
        team=chain.teams["storefront"],
        name="mail",
        kind=ChannelKind.EMAIL,
        config={"to": ["shop-oncall@example.com"]},
    )
    Route.objects.create(team=chain.teams["storefront"], severity=Severity.PAGE, channel=mail)
    # when payments goes down (its webhook is sent at once), and then checkout with it
    payments = chain.down("payments")
    deliver_all()
    checkout = chain.down("checkout")
    _send_waiting()
    # then the root's webhook (signed as ever) lists checkout as its dependent
    first, update = chain.receiver.wait_for("/hook/billing", 2)
    signature = (
        "sha256="
        + hmac.new(
            WEBHOOK_SECRET.encode(),
            update.headers["X-Signalbox-Timestamp"].encode() + b"." + update.body,
            hashlib.sha256,
        ).hexdigest()
    )
    assert update.headers["X-Signalbox-Signature"] == signature
    assert first.json()["incidents"][0]["dependents"] == []
    [root] = update.json()["incidents"]
    assert (root["id"], root["root"], root["caused_by_path"]) == (payments.pk, None, None)
    assert root["dependents"] == [
        {
            "id": checkout.pk,
            "url": f"https://signalbox.example/alerts/incidents/{checkout.pk}/",
            "title": "checkout in production is down",
            "state": "firing",
            "team": "storefront",
            "where": "checkout in production",
            "caused_by_path": "checkout -> payments",
        }
    ]
    # and storefront's mailbox got the one heads-up, naming the cause
    [message] = smtp.messages
    text = message.content.decode()
    assert "AFFECTED BY payments in production is down" in text
    assert f"cause:       caused by #{payments.pk} payments in production is down" in text


@pytest.mark.django_db
def test_the_heads_up_is_a_rule_setting_on_the_page_and_in_the_api(
    chain: Chain, api_as: Any
) -> None:
    rule = Rule.objects.get(team=chain.teams["storefront"], enabled=True)
    # when the owner unticks the box on the team's alert settings
    client = Client()
    client.force_login(chain.world.admin)
    client.post(
        "/alerts/teams/storefront/",
        {
            "what": "rule",
            "rule": rule.pk,
            "severity": "page",
            "enabled": "on",
            "notify_affected": "off",
        },
    )
    rule.refresh_from_db()
    assert rule.notify_affected is False
    # then checkout, held under payments, sends storefront nothing at all
    chain.down("payments")
    chain.down("checkout")
    _send_waiting()
    assert chain.slack("storefront") == [] and chain.pagerduty("storefront") == []
    # and the API shows and sets it
    answer = api_as("admin").patch(
        f"/api/v1/alerts/rules/{rule.pk}", {"notify_affected": True}, format="json"
    )
    assert answer.status_code == 200 and answer.json()["notify_affected"] is True


@pytest.mark.django_db
def test_a_dependent_that_fires_just_before_its_cause_is_taken_back_within_the_group_wait(
    chain: Chain,
) -> None:
    # given storefront waits 30 s before paging, and checkout's alert fires first
    Route.objects.filter(team=chain.teams["storefront"]).update(group_wait_seconds=30)
    checkout = chain.down("checkout")
    checkout.refresh_from_db()
    assert checkout.notified_at is not None and checkout.root_id is None
    # when payments, its cause, fires a moment later
    payments = chain.down("payments")
    _send_waiting()
    # then checkout was taken out of storefront's pending page and waits under payments
    checkout = chain.incident("checkout")
    assert (checkout.root_id, checkout.caused_by_path) == (payments.pk, "checkout -> payments")
    assert checkout.is_grouped and checkout.notified_at is None
    assert chain.pagerduty("storefront") == []
    # and billing's page names checkout; storefront gets the one heads-up instead
    [page] = chain.pagerduty("billing")
    assert page["payload"]["custom_details"]["dependents"][0].startswith(f"#{checkout.pk} checkout")
    assert [m["text"].split(":")[0] for m in chain.slack("storefront")] == [
        "AFFECTED BY payments in production is down"
    ]
    # and when payments recovers first, checkout pages then, and its resolve follows
    chain.up("payments")
    evaluation.tick()
    _send_waiting()
    assert [e["event_action"] for e in chain.pagerduty("storefront")] == ["trigger"]
    chain.up("checkout")
    deliver_all()
    _every_trigger_resolved(chain)


@pytest.mark.django_db
def test_a_dependent_already_paged_is_named_by_its_cause_and_its_page_stands(
    chain: Chain,
) -> None:
    # given checkout paged storefront already
    checkout = chain.down("checkout")
    deliver_all()
    assert len(chain.pagerduty("storefront")) == 1
    # when payments fires afterwards
    payments = chain.down("payments")
    deliver_all()
    # then payments' page names checkout, whose page stands (and is not held)
    checkout.refresh_from_db()
    assert checkout.root_id == payments.pk and not checkout.is_grouped
    [page] = chain.pagerduty("billing")
    assert len(page["payload"]["custom_details"]["dependents"]) == 1
    # and checkout's resolve still reaches storefront
    chain.up("checkout")
    deliver_all()
    assert [e["event_action"] for e in chain.pagerduty("storefront")] == ["trigger", "resolve"]
