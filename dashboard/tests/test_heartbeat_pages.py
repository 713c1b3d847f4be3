"""A service's heartbeat pages: create, edit, pause and resume, snippets, the last ping."""

from __future__ import annotations

import html as html_lib
import re
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from controlplane.models import Event
from health import heartbeats
from health.choices import HeartbeatEvent, HeartbeatStatus, PingKind
from health.models import Heartbeat

pytestmark = pytest.mark.django_db
BASE = "/catalog/services/checkout/heartbeats/"


def as_(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def error_of(page: str, field_id: str) -> str:
    found = re.search(rf'id="{re.escape(field_id)}_error"[^>]*>([^<]*)<', page)
    assert found, f"no error shown next to {field_id}"
    return html_lib.unescape(found.group(1))


def body(prefix: str = "hb", **values: Any) -> dict[str, Any]:
    fields = {"name": "nightly-backup", "environment": "production", "schedule_kind": "cron",
              "period_seconds": "86400", "cron": "0 3 * * *", "timezone": "Europe/Berlin",
              "grace_seconds": "1800", **values}  # fmt: skip
    return {f"{prefix}-{k}": v for k, v in fields.items()}


def test_an_owner_creates_a_heartbeat_pings_it_with_the_snippet_and_sees_the_ping(
    world: Any, settings: Any
) -> None:
    settings.SIGNALBOX_BASE_URL = "https://signalbox.example"
    client = as_(world.owner)
    created = client.post(f"{BASE}new", body())
    heartbeat = Heartbeat.objects.get(name="nightly-backup")
    assert created.status_code == 302 and created["Location"] == f"{BASE}{heartbeat.pk}/"
    assert (heartbeat.cron, heartbeat.timezone, heartbeat.environment) == (
        "0 3 * * *", "Europe/Berlin", world.production
    )  # fmt: skip
    [event] = Event.objects.filter(action=HeartbeatEvent.CREATED)
    assert event.actor_label == "owner"
    page = html_lib.unescape(client.get(f"{BASE}{heartbeat.pk}/").content.decode())
    url = f"https://signalbox.example/api/v1/heartbeats/{heartbeat.uuid}"
    assert f'value="{url}"' in page
    # the snippets name the URL: curl, a crontab line on the heartbeat's schedule, Python, k8s
    assert f"curl -fsS -m 10 --retry 5 -o /dev/null -X POST {url}" in page
    curl = "curl -fsS -m 10 --retry 5 -o /dev/null"
    crontab = f'0 3 * * * out=$(/usr/local/bin/your-job 2>&1); {curl} --data-raw "$out" {url}/$?'
    assert crontab in page
    assert f'urllib.request.Request(\n        f"{url}/{{result.returncode}}"' in page
    assert (
        "kind: CronJob" in page
        and 'schedule: "0 3 * * *"' in page
        and "timeZone: Europe/Berlin" in page
    )
    # a job pings the crontab line's URL with its exit code and output
    path = f"/api/v1/heartbeats/{heartbeat.uuid}/3"
    assert (
        Client().post(path, b"disk full\nbackup aborted", content_type="text/plain").status_code
        == 200
    )
    shown = client.get(f"{BASE}{heartbeat.pk}/").content.decode()
    last = shown.split('id="last-ping"')[1]
    assert "Exit code</dt><dd>3</dd>" in last and "Kind</dt><dd>Fail</dd>" in last
    assert "disk full\nbackup aborted" in shown.split('id="last-log"')[1]
    listed = client.get(BASE).content.decode()
    assert "(exit 3)" in listed.split(f'id="heartbeat-{heartbeat.pk}"')[1]


def test_bad_heartbeats_say_what_to_fix_next_to_the_field(world: Any) -> None:
    client = as_(world.owner)
    cron = client.post(f"{BASE}new", body(cron="every night"))
    assert cron.status_code == 400
    assert "5-field cron expression" in error_of(cron.content.decode(), "id_hb-cron")
    zone = client.post(f"{BASE}new", body(timezone="Mars/Olympus"))
    assert "IANA time zone" in error_of(zone.content.decode(), "id_hb-timezone")
    short = client.post(f"{BASE}new", body(schedule_kind="period", cron="", period_seconds="5"))
    assert "at least 60 seconds" in error_of(short.content.decode(), "id_hb-period_seconds")
    client.post(f"{BASE}new", body())
    twice = client.post(f"{BASE}new", body())
    assert twice.status_code == 409
    assert "already has a heartbeat with that name" in error_of(
        twice.content.decode(), "id_hb-name"
    )
    assert Heartbeat.objects.count() == 1


def test_edit_pause_and_resume_are_audited_and_others_get_403(world: Any) -> None:
    heartbeat = Heartbeat.objects.create(name="sync", service=world.service, period_seconds=3600)
    p = f"hb{heartbeat.pk}"
    edit = body(p, name="sync", environment="", schedule_kind="period", cron="",
                period_seconds="7200", grace_seconds="600")  # fmt: skip
    base = f"{BASE}{heartbeat.pk}/"
    for persona in ("viewer", "deployer", "outsider"):
        client = as_(getattr(world, persona))
        for action in ("edit", "pause", "resume", "delete"):
            assert client.post(base + action, edit).status_code == 403
        assert client.post(f"{BASE}new", body()).status_code == 403
        page = client.get(base).content.decode()
        assert "Pause" not in page and "Edit sync" not in page
    assert not Event.objects.exists()
    owner = as_(world.owner)
    assert owner.post(base + "edit", edit).status_code == 302
    heartbeat.refresh_from_db()
    assert (heartbeat.period_seconds, heartbeat.grace_seconds) == (7200, 600)
    [updated] = Event.objects.filter(action=HeartbeatEvent.UPDATED)
    assert updated.payload["changes"]["period_seconds"] == [3600, 7200]
    owner.post(base + "pause")
    owner.post(base + "pause")
    heartbeat.refresh_from_db()
    assert heartbeat.status == HeartbeatStatus.PAUSED and heartbeat.deadline is None
    assert Event.objects.filter(action=HeartbeatEvent.PAUSED).count() == 1
    assert "Resume" in owner.get(base).content.decode()
    owner.post(base + "resume")
    heartbeat.refresh_from_db()
    assert heartbeat.status == HeartbeatStatus.NEW and heartbeat.deadline is not None
    assert Event.objects.filter(action=HeartbeatEvent.RESUMED).count() == 1
    assert owner.post(base + "delete").status_code == 302
    assert not Heartbeat.objects.exists()


def test_the_api_pauses_and_resumes_with_the_same_events(world: Any, api_as: Any) -> None:
    heartbeat = Heartbeat.objects.create(name="sync", service=world.service, period_seconds=3600)
    paused = api_as("owner").post(f"/api/v1/health/heartbeats/{heartbeat.pk}/pause")
    assert paused.status_code == 200 and paused.json()["status"] == "paused"
    assert (
        api_as("viewer").post(f"/api/v1/health/heartbeats/{heartbeat.pk}/resume").status_code == 403
    )
    resumed = api_as("owner").post(f"/api/v1/health/heartbeats/{heartbeat.pk}/resume")
    assert resumed.json()["status"] == "new"
    actions = list(Event.objects.order_by("id").values_list("action", flat=True))
    assert actions == [HeartbeatEvent.PAUSED, HeartbeatEvent.RESUMED]


def test_the_pages_queries_do_not_grow_with_heartbeats(world: Any) -> None:
    def count(path: str) -> int:
        client = as_(world.owner)
        with CaptureQueriesContext(connection) as queries:
            assert client.get(path).status_code == 200
        return len(queries)

    Heartbeat.objects.bulk_create(
        [
            Heartbeat(name=f"h{i}", service=world.service, environment=world.production)
            for i in range(5)
        ]
    )
    small = count(BASE)
    Heartbeat.objects.bulk_create(
        [
            Heartbeat(name=f"g{i}", service=world.service, environment=world.staging)
            for i in range(100)
        ]
    )
    assert count(BASE) == small
    one = Heartbeat.objects.first()
    assert one is not None and count(f"{BASE}{one.pk}/") <= small + 2


def pinged(heartbeat: Heartbeat, suffix: str, body: bytes, agent: str = "cron.sh") -> None:
    response = Client().post(
        f"/api/v1/heartbeats/{heartbeat.uuid}{suffix}",
        body,
        content_type="text/plain",
        HTTP_USER_AGENT=agent,
    )
    assert response.status_code == 200


def test_the_page_lists_the_last_pings_with_their_log_tails_escaped(world: Any) -> None:
    heartbeat = Heartbeat.objects.create(
        name="nightly", service=world.service, environment=world.production
    )
    # given a job that started, failed with exit code 2 and a log holding markup, then passed
    pinged(heartbeat, "/start", b"")
    pinged(heartbeat, "/2", b"<script>alert('x')</script>\nERROR: disk full", "<b>bot</b>")
    pinged(heartbeat, "/0", b"42 rows copied")
    # when anyone who may read the heartbeat opens its page
    page = as_(world.viewer).get(f"{BASE}{heartbeat.pk}/").content.decode()
    table = page.split('id="pings"')[1].split("</table>")[0]
    rows = re.findall(r'<tr id="ping-(\d+)" class="sb-ping-(\w+)">(.*?)</tr>', table, re.S)
    # then the three pings are listed newest first, each with its kind and exit code
    assert [(n, kind) for n, kind, _ in rows] == [("3", "success"), ("2", "fail"), ("1", "start")]
    cells = [re.findall(r"<td>(.*?)</td>", html, re.S) for _, _, html in rows]
    assert [c[2:4] for c in cells] == [["Success", "0"], ["Fail", "2"], ["Start", "—"]]
    assert cells[1][4].endswith(" s") and cells[2][4] == "—"  # a duration from its /start
    assert "127.0.0.1" in cells[1][5]
    # and the log tail sits in a disclosure, escaped: the markup is text, never run
    assert "<details><summary>44 characters</summary>" in cells[1][6]
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;\nERROR: disk full" in cells[1][6]
    assert "&lt;b&gt;bot&lt;/b&gt;" in cells[1][5]
    assert "<script>alert" not in page and "<b>bot</b>" not in page
    assert "42 rows copied" in cells[0][6]


def test_the_heartbeat_page_queries_do_not_grow_with_pings(world: Any) -> None:
    heartbeat = Heartbeat.objects.create(
        name="chatty", service=world.service, environment=world.production
    )
    client = as_(world.owner)

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(f"{BASE}{heartbeat.pk}/").status_code == 200
        return len(queries)

    for n in range(5):
        heartbeats.ping(heartbeat.uuid, PingKind.SUCCESS, n, f"run {n}".encode())
    few = count()
    for n in range(95):
        heartbeats.ping(heartbeat.uuid, PingKind.SUCCESS, n % 3, f"run {n}".encode())
    assert count() == few
    page = client.get(f"{BASE}{heartbeat.pk}/").content.decode()
    assert page.count('<tr id="ping-') == 100


def test_a_log_ping_shows_as_a_log_event_and_leaves_the_last_ping_alone(
    world: Any, settings: Any
) -> None:
    settings.SIGNALBOX_BASE_URL = "https://signalbox.example"
    heartbeat = Heartbeat.objects.create(
        name="nightly", service=world.service, environment=world.production
    )
    # given a job that passed, then sent a message with the page's /log snippet's URL
    pinged(heartbeat, "/0", b"42 rows copied")
    pinged(heartbeat, "/log", b"rotated 3 files")
    # when its page is opened
    page = as_(world.viewer).get(f"{BASE}{heartbeat.pk}/").content.decode()
    # then the snippet for it is there, the history lists the log event newest first
    url = f"https://signalbox.example/api/v1/heartbeats/{heartbeat.uuid}"
    assert f"--data-raw &quot;rotated 3 files&quot; {url}/log" in page
    table = page.split('id="pings"')[1].split("</table>")[0]
    rows = re.findall(r'<tr id="ping-(\d+)" class="sb-ping-(\w+)">(.*?)</tr>', table, re.S)
    assert [(n, kind) for n, kind, _ in rows] == [("2", "log"), ("1", "success")]
    assert "Log <small>(history only)</small>" in rows[0][2] and "rotated 3 files" in rows[0][2]
    # and the last ping is still the success, with its own log
    last = page.split('id="last-ping"')[1]
    assert "Kind</dt><dd>Success</dd>" in last
    assert "42 rows copied" in page.split('id="last-log"')[1].split("</pre>")[0]
