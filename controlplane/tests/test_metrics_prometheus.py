"""The Grafana dashboard (deploy/grafana/signalbox.json) against a running Signalbox: it has
Grafana's dashboard shape, every metric its queries name is in a real /metrics scrape of
uvicorn, and a real Prometheus scrapes that uvicorn (with the metrics token, as
docs/operations.md configures it) and answers every panel's query."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from alerts.choices import ChannelKind, IncidentState, RuleKind, Severity
from alerts.models import Channel, Incident, Notification, Rule
from catalog.models import Instance
from controlplane.tests.browser import AsgiServer
from controlplane.tests.conftest import RedisServer
from controlplane.tests.prometheus import running_prometheus
from deployments.choices import RolloutState
from deployments.models import Rollout
from health import services
from health.choices import ServiceStatus
from health.metrics import record_probes
from health.models import InstanceCheck, ServiceHealth
from scaling.models import ScalingGroup

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "signalbox.json"
TOKEN = "scrape-token-for-the-test"
# What Grafana substitutes before a query reaches Prometheus.
VARIABLES = {"$__rate_interval": "1m", "$job": "signalbox", "$environment": ".*"}
PANEL_TYPES = {"row", "timeseries", "stat", "table", "gauge", "bargauge", "text"}
PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
    "bool", "offset", "inf", "nan",
}  # fmt: skip


def load_dashboard() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return dashboard


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])  # a collapsed row keeps its panels inside


def expressions(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (panel["title"], target["expr"])
        for panel in panels(dashboard)
        for target in panel.get("targets", [])
    ]


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: identifiers that are not functions,
    keywords, label names in matchers or groupings, strings or durations."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)  # strings (label values)
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # range and subquery durations
    text = re.sub(
        r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text
    )  # label lists
    names = set()
    for match in re.finditer(r"(?<![\w.$])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?", text):
        name, call = match.group(1), match.group(2)
        if not call and name.lower() not in PROMQL_WORDS:
            names.add(name)
    return names


def test_metric_names_are_read_from_promql_as_prometheus_would() -> None:
    expr = (
        "histogram_quantile(0.95, sum by (kind, le) (rate(signalbox_probe_duration_seconds_bucket"
        '{job=~"$job", kind="http"}[$__rate_interval]))) or vector(0)'
    )
    assert metric_names(expr) == {"signalbox_probe_duration_seconds_bucket"}
    assert metric_names(
        'count(max by (a) (x_total{s="down"}) != max without (instance) (y)) or on (a) z'
    ) == {"x_total", "y", "z"}
    assert metric_names("process_resident_memory_bytes") == {"process_resident_memory_bytes"}


def test_the_dashboard_has_grafanas_shape() -> None:
    dashboard = load_dashboard()
    assert isinstance(dashboard["title"], str) and dashboard["title"]
    assert re.fullmatch(r"[a-zA-Z0-9_-]{1,40}", dashboard["uid"])
    assert isinstance(dashboard["schemaVersion"], int) and dashboard["schemaVersion"] >= 36
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [panel["id"] for panel in panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels(dashboard):
        assert panel["type"] in PANEL_TYPES, panel["title"]
        assert panel["title"]
        grid = panel["gridPos"]
        assert all(isinstance(grid[k], int) for k in ("h", "w", "x", "y")), panel["title"]
        assert grid["x"] + grid["w"] <= 24, f"{panel['title']} is wider than the grid"
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], f"{panel['title']} queries nothing"
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids))
        for target in panel["targets"]:
            assert target["expr"].strip()
            # every variable a query uses is one the dashboard defines (or Grafana's own)
            for variable in re.findall(r"\$(\w+)", target["expr"]):
                assert variable in variables or variable.startswith("__"), variable


def a_fleet_with_something_in_every_metric(world: Any) -> None:
    """Committed rows (the server is another process) so every family has a sample."""
    now = timezone.now()
    instance = Instance.objects.create(
        service=world.service, environment=world.production, host="10.1.0.1", port=8080
    )
    services.ensure_checks(instance)  # derives the service's health (unknown) on commit
    InstanceCheck.objects.filter(instance=instance).update(status="fail")
    ServiceHealth.objects.update_or_create(
        service=world.service, environment=world.production,
        defaults={"status": ServiceStatus.DOWN},
    )  # fmt: skip
    Rollout.objects.create(
        team=world.team, service=world.service, environment=world.production, to_version="2",
        strategy="canary", state=RolloutState.PROGRESSING, next_action_at=now,
    )  # fmt: skip
    rule = Rule.objects.create(team=world.team, name="down", kind=RuleKind.SERVICE_STATE)
    Incident.objects.create(
        rule=rule, team=world.team, subject_type="catalog.service", subject_id="1",
        subject_label="checkout", dedup_key="k", severity=Severity.PAGE,
        state=IncidentState.FIRING, title="checkout is down",
    )  # fmt: skip
    hook = Channel.objects.create(team=world.team, name="hook", kind=ChannelKind.WEBHOOK)
    Notification.objects.create(channel=hook, action="trigger")
    ScalingGroup.objects.create(
        service=world.service, environment=world.production, driver="process", desired=2
    )
    # as a worker's batch does (health.scheduler.run_batch), into the server's Redis
    record_probes([("http", "pass", 12.0, 0.1), ("http", "fail", 1000.0, 0.2)] * 2)


@pytest.fixture
def signalbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: Any, redis_server: RedisServer
) -> Iterator[AsgiServer]:
    """uvicorn with the metrics token, on a Redis of this test's own (no counts left over
    from other tests), as the test process is."""
    monkeypatch.setenv("SIGNALBOX_METRICS_TOKEN", TOKEN)
    settings.REDIS_URL = settings.CELERY_BROKER_URL = redis_server.url
    server = AsgiServer(tmp_path / "uvicorn.log")
    server.start()
    yield server
    server.stop()


@pytest.mark.django_db(transaction=True)
def test_prometheus_scrapes_signalbox_and_answers_every_dashboard_query(
    world: Any, signalbox: AsgiServer, tmp_path: Path
) -> None:
    a_fleet_with_something_in_every_metric(world)
    # given a real scrape of the running server: the sample names it exposes
    response = httpx.get(
        f"{signalbox.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    )
    assert response.status_code == 200, response.text
    exposed = {
        sample.name
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }
    # then every metric the dashboard queries is in it, with a sample
    queried = expressions(load_dashboard())
    wanted = {name for _, expr in queried for name in metric_names(expr)}
    assert len(wanted) >= 20, sorted(wanted)
    missing = {title: metric_names(expr) - exposed for title, expr in queried}
    assert not {title: names for title, names in missing.items() if names}
    # when a real Prometheus scrapes it, as docs/operations.md configures it
    config = (
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: signalbox\n"
        f"    authorization: {{credentials: {TOKEN}}}\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{signalbox.port}']}}]\n"
    )
    with running_prometheus(config, tmp_path) as prometheus:
        # then PromQL through its HTTP API returns Signalbox's series
        up = prometheus.wait_for('up{job="signalbox"} == 1')
        assert up[0]["metric"]["instance"] == f"127.0.0.1:{signalbox.port}"
        down = prometheus.wait_for('signalbox_service_health{status="down"}')
        assert {(s["metric"]["service"], s["metric"]["environment"]) for s in down} == {
            ("checkout", "production")
        }
        firing = prometheus.wait_for('signalbox_incidents{state="firing", severity="page"}')
        assert float(firing[0]["value"][1]) == 1
        probes = prometheus.wait_for('signalbox_probe_duration_seconds_count{result="fail"}')
        assert float(probes[0]["value"][1]) == 2
        # and every panel's query is PromQL Prometheus accepts, over Signalbox's metrics
        for title, expr in queried:
            for variable, value in VARIABLES.items():
                expr = expr.replace(variable, value)
            answer = prometheus.query(expr)
            assert answer["status"] == "success", f"{title}: {answer.get('error')}"
        # and a panel's rate shows the probes by result once two scrapes make a rate
        per_result = dict(queried)["Probes per second by result"]
        for variable, value in VARIABLES.items():
            per_result = per_result.replace(variable, value)
        rates = prometheus.wait_for(per_result, lambda result: len(result) == 2)
        assert {s["metric"]["result"] for s in rates} == {"pass", "fail"}
