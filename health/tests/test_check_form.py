"""The check spec form on the health pages: who may use it, what it refuses (the API's own
rules), "test it now" against a real HTTP server, saving as one audited event, overrides."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from catalog.models import Instance
from controlplane.models import Event
from health.choices import HealthEvent
from health.models import CheckSpec
from health.tests.conftest import Instances, health_json

pytestmark = pytest.mark.django_db
FORM = "/health/services/checkout/check/"


def spec_form(**changes: Any) -> dict[str, Any]:
    """What the form posts for the default spec, with `changes`."""
    data: dict[str, Any] = {
        "kind": "http",
        "scheme": "http",
        "method": "GET",
        "port": "",
        "path": "/health",
        "headers": "",
        "grpc_service": "",
        "expected_statuses": "200-399",
        "body_contains": "",
        "body_regex": "",
        "max_latency_ms": "",
        "tls_warn_days": "14",
        "tls_verify": "on",
        "interval_seconds": "10",
        "timeout_seconds": "1",
        "initial_delay_seconds": "0",
        "success_threshold": "1",
        "failure_threshold": "3",
        "condition_path": ["", ""],
        "condition_op": ["eq", "eq"],
        "condition_value": ["", ""],
        "action": "save",
    }
    data.update(changes)
    return data


def client_of(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def check_events() -> list[Event]:
    return list(Event.objects.filter(action__startswith="health.check.").order_by("id"))


@pytest.fixture
def local(world: Any, instances: Instances) -> Instance:
    """An instance of checkout that is the test's real HTTP server on loopback (allowed
    outside production by SIGNALBOX_OUTBOUND_ALLOWED_NETWORKS, as the probe tests use it)."""
    return Instance.objects.create(
        service=world.service, environment=world.production, host="127.0.0.1", port=instances.port
    )


# -- who may --------------------------------------------------------------------------------


def test_an_owner_sees_the_form_on_the_service_page(world: Any, local: Instance) -> None:
    html = client_of(world.owner).get("/health/services/checkout/?env=production").content
    assert b'id="check-spec"' in html
    assert b"Test it now" in html
    assert f'<option value="{local.pk}" selected>'.encode() in html


@pytest.mark.parametrize("persona", ["viewer", "deployer", "outsider"])
def test_others_see_no_controls_and_are_refused(world: Any, local: Instance, persona: str) -> None:
    # given someone who is not an owner of checkout's team (the API needs write: owner)
    client = client_of(getattr(world, persona))
    # then the page has no form, the form's page and a post answer 403, nothing changes
    page = client.get("/health/services/checkout/?env=production").content
    assert b'id="check-spec"' not in page and b"Test it now" not in page
    assert client.get(FORM).status_code == 403
    refused = client.post(FORM, spec_form(interval_seconds="30"))
    assert refused.status_code == 403
    assert "Only owners of team payments" in refused.content.decode()
    assert client.post(FORM, spec_form(action="test", instance=str(local.pk))).status_code == 403
    assert client.post(f"/health/instances/{local.pk}/check/", spec_form()).status_code == 403
    assert not CheckSpec.objects.filter(interval_seconds=30).exists()
    assert not CheckSpec.objects.filter(instance=local).exists()
    assert check_events() == []


def test_a_platform_admin_may_edit(world: Any) -> None:
    response = client_of(world.admin).post(FORM, spec_form(interval_seconds="20"))
    assert response.status_code == 302
    assert CheckSpec.objects.get(service=world.service).interval_seconds == 20


def test_the_instance_page_links_to_the_override_only_for_owners(
    world: Any, local: Instance
) -> None:
    url = f"/health/instances/{local.pk}/"
    assert b"Override this instance" in client_of(world.owner).get(url).content
    assert b"Override this instance" not in client_of(world.viewer).get(url).content


# -- what it refuses ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("interval_seconds", "0", "Ensure this value is greater than or equal to 1."),
        ("interval_seconds", "90000", "must be a whole number of seconds, 1 to 86400"),
        ("timeout_seconds", "30", "must not exceed interval_seconds (probes would overlap)"),
        ("path", "//metadata/", "must not start with //"),
        ("expected_statuses", "2xx", "'2xx' is not a status code or range like 200-399"),
        ("port", "70000", "Ensure this value is less than or equal to 65535."),
        ("body_regex", "(unclosed", "is not a valid regular expression"),
        ("headers", "X-Token abc", "line 1 ('X-Token abc') needs a colon: Name: value"),
        ("headers", "Host: evil.example", "must not set Host"),
        ("failure_threshold", "many", "A valid integer is required."),
    ],
)
def test_a_bad_value_is_named_next_to_its_field_and_nothing_is_saved(
    world: Any, field: str, value: str, reason: str
) -> None:
    # given checkout's saved spec
    CheckSpec.objects.create(service=world.service, interval_seconds=15)
    # when an owner posts one bad value with a good change beside it
    response = client_of(world.owner).post(
        FORM, spec_form(**{field: value, "success_threshold": "2"})
    )
    # then the form comes back (400) with the reason under that field, its value kept
    assert response.status_code == 400
    html = response.content.decode()
    error = html.split(f'id="spec-{field}-error"', 1)[1].split("</small>", 1)[0]
    assert reason in error.replace("&#x27;", "'")
    assert 'aria-invalid="true"' in html
    assert "Nothing was saved or probed" in html
    # and nothing at all was saved
    spec = CheckSpec.objects.get(service=world.service)
    assert (spec.interval_seconds, spec.success_threshold) == (15, 1)
    assert check_events() == []


def test_a_bad_condition_is_named_by_its_row(world: Any) -> None:
    response = client_of(world.owner).post(
        FORM,
        spec_form(
            condition_path=["$.status", "$.db.connections", ""],
            condition_op=["eq", "lt", "eq"],
            condition_value=["pass", "lots", ""],
        ),
    )
    assert response.status_code == 400
    assert "condition 2: op &#x27;lt&#x27; needs a number value" in response.content.decode()
    assert not CheckSpec.objects.filter(service=world.service).exists()


def test_the_page_refuses_what_the_api_refuses_with_the_same_words(world: Any, api_as: Any) -> None:
    # given the same bad spec through the API and through the page
    api = api_as("owner").post(
        "/api/v1/health/checks",
        {"service": "checkout", "interval_seconds": 5, "timeout_seconds": 9},
        format="json",
    )
    page = client_of(world.owner).post(FORM, spec_form(interval_seconds="5", timeout_seconds="9"))
    # then both name timeout_seconds with the one reason spec_errors gives
    reason = api.json()["error"]["fields"]["timeout_seconds"][0]
    assert api.status_code == page.status_code == 400
    assert reason in page.content.decode()


# -- saving ---------------------------------------------------------------------------------


def test_saving_changes_the_spec_as_one_audited_event(world: Any) -> None:
    # given checkout's spec as the API made it
    spec = CheckSpec.objects.create(service=world.service)
    # when an owner saves new values, headers and conditions from the page
    response = client_of(world.owner).post(
        FORM,
        spec_form(
            path="/ready",
            interval_seconds="30",
            timeout_seconds="2.5",
            max_latency_ms="250",
            headers="Accept: application/health+json\nX-Probe: signalbox",
            tls_verify="",
            condition_path=["$.status", "$.db.connections", ""],
            condition_op=["eq", "lt", "eq"],
            condition_value=["pass", "100", ""],
        )
        | {"tls_verify": []},
    )
    # then it is back on the service page with the saved spec
    assert response.status_code == 302
    assert response["Location"] == "/health/services/checkout/#check-spec"
    spec.refresh_from_db()
    assert (spec.path, spec.interval_seconds, spec.timeout_seconds) == ("/ready", 30, 2.5)
    assert spec.max_latency_ms == 250 and spec.tls_verify is False
    assert spec.headers == {"Accept": "application/health+json", "X-Probe": "signalbox"}
    assert spec.json_conditions == [
        {"path": "$.status", "op": "eq", "value": "pass"},
        {"path": "$.db.connections", "op": "lt", "value": 100},
    ]
    # and exactly one event says who changed what, as the API's PATCH would
    [event] = check_events()
    assert event.action == HealthEvent.CHECK_UPDATED
    assert event.actor_user == world.owner
    assert event.payload["changes"]["interval_seconds"] == [10, 30]
    assert event.payload["changes"]["path"] == ["/health", "/ready"]


def test_saving_from_an_environment_tab_goes_back_to_it(world: Any) -> None:
    client = client_of(world.owner)
    page = client.get("/health/services/checkout/?env=production").content.decode()
    assert '<input type="hidden" name="env" value="production">' in page
    saved = client.post(FORM, spec_form(env="production", interval_seconds="20"))
    assert saved["Location"] == "/health/services/checkout/?env=production#check-spec"
    refused = client.post(FORM, spec_form(env="production", interval_seconds="0"))
    assert '<input type="hidden" name="env" value="production">' in refused.content.decode()


def test_the_first_save_creates_the_spec_and_shows_it_again(world: Any) -> None:
    client = client_of(world.owner)
    assert client.post(FORM, spec_form(interval_seconds="60")).status_code == 302
    assert CheckSpec.objects.get(service=world.service).interval_seconds == 60
    assert [e.action for e in check_events()] == [HealthEvent.CHECK_CREATED]
    # and the form shows what is saved
    assert (
        b'name="interval_seconds" id="spec-interval_seconds" value="60"' in client.get(FORM).content
    )


def test_saving_the_same_values_publishes_nothing(world: Any) -> None:
    CheckSpec.objects.create(service=world.service)
    assert client_of(world.owner).post(FORM, spec_form()).status_code == 302
    assert check_events() == []


# -- test it now ----------------------------------------------------------------------------


def test_test_it_now_probes_the_instance_and_shows_its_health_json(
    world: Any, instances: Instances, local: Instance
) -> None:
    # given an instance whose database component warns
    instances.health = health_json("warn", db=("warn", "replica lag 4 s"), cache=("pass", ""))
    CheckSpec.objects.create(service=world.service, path="/old")
    # when an owner tests the unsaved spec (path /health) against it
    response = client_of(world.owner).post(FORM, spec_form(action="test", instance=str(local.pk)))
    # then the page shows the probe's verdict and the parsed components
    assert response.status_code == 200
    html = response.content.decode()
    assert instances.hits == 1
    assert "Test result" in html and f"127.0.0.1:{instances.port}" in html
    assert "health: warn; component db warn: replica lag 4 s" in html
    assert "replica lag 4 s</td>" in html and '<td data-label="Component">cache' in html
    # and the typed values are still in the form, nothing saved
    assert 'value="/health"' in html
    assert CheckSpec.objects.get(service=world.service).path == "/old"
    assert check_events() == []


def test_test_it_now_judges_by_the_unsaved_conditions(
    world: Any, instances: Instances, local: Instance
) -> None:
    response = client_of(world.owner).post(
        FORM,
        spec_form(
            action="test",
            instance=str(local.pk),
            path="/json",
            condition_path=["$.db.connections"],
            condition_op=["lt"],
            condition_value=["10"],
        ),
    )
    assert "$.db.connections: expected less than 10, got 12" in response.content.decode()


def test_test_it_now_goes_through_the_outbound_guard(world: Any) -> None:
    # given an instance registered at the cloud metadata address
    metadata = Instance.objects.create(
        service=world.service, environment=world.production, host="169.254.169.254", port=80
    )
    # when an owner tests the spec against it
    response = client_of(world.owner).post(
        FORM, spec_form(action="test", instance=str(metadata.pk))
    )
    # then the guard refused the probe: nothing was requested
    html = response.content.decode()
    assert "✖ fail" in html
    assert "refused" in html and "169.254.169.254" in html


def test_test_it_now_needs_an_instance_of_this_service(world: Any) -> None:
    other = Instance.objects.create(
        service=world.other_service, environment=world.production, host="10.0.0.9", port=80
    )
    response = client_of(world.owner).post(FORM, spec_form(action="test", instance=str(other.pk)))
    assert response.status_code == 400
    assert "choose one of this service&#x27;s instances to probe" in response.content.decode()


# -- overrides ------------------------------------------------------------------------------


def test_an_instance_override_is_created_tested_and_removed(
    world: Any, instances: Instances, local: Instance
) -> None:
    client = client_of(world.owner)
    url = f"/health/instances/{local.pk}/check/"
    # given the service's spec; the override form starts from it
    CheckSpec.objects.create(service=world.service, path="/health", interval_seconds=20)
    assert b'id="spec-interval_seconds" value="20"' in client.get(url).content
    # when the owner tests and then saves an override for this instance
    tested = client.post(url, spec_form(action="test", instance=str(local.pk), path="/text"))
    assert "✔ pass</span> HTTP 200" in tested.content.decode()
    saved = client.post(url, spec_form(path="/text", interval_seconds="5"))
    # then the instance has its own spec, created as one event; the service's is untouched
    assert saved.status_code == 302 and saved["Location"] == f"/health/instances/{local.pk}/"
    override = CheckSpec.objects.get(instance=local)
    assert (override.path, override.interval_seconds) == ("/text", 5)
    assert CheckSpec.objects.get(service=world.service).path == "/health"
    assert b"(instance override)" in client.get(f"/health/instances/{local.pk}/").content
    # when it is removed
    removed = client.post(url, {"action": "remove"})
    # then the instance follows the service's check again, and each step was one event
    assert removed.status_code == 302
    assert not CheckSpec.objects.filter(instance=local).exists()
    assert [e.action for e in check_events()] == [
        HealthEvent.CHECK_CREATED,
        HealthEvent.CHECK_DELETED,
    ]


def test_the_form_needs_a_csrf_token(world: Any) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(world.owner)
    assert client.post(FORM, spec_form()).status_code == 403
    assert not CheckSpec.objects.filter(service=world.service).exists()


def test_the_owner_page_runs_as_many_queries_for_many_instances_and_windows(world: Any) -> None:
    from datetime import timedelta

    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from health.models import MaintenanceWindow

    client = client_of(world.owner)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get("/health/services/checkout/?env=production").status_code == 200
        return len(captured)

    def add(count: int, start: int) -> None:
        now = timezone.now()
        for n in range(start, start + count):
            Instance.objects.create(
                service=world.service, environment=world.production, host=f"10.1.0.{n}", port=80
            )
            MaintenanceWindow.objects.create(
                service=world.service, starts_at=now, ends_at=now + timedelta(hours=n + 1)
            )

    add(2, 0)
    few = queries()
    add(40, 2)
    assert queries() == few
