"""The demo fleet, as a real process, exports OpenTelemetry spans (opentelemetry-sdk's
BatchSpanProcessor and OTLP/HTTP exporter) to a real uvicorn serving the control plane:
calls checkout -> inventory become an edge, and calls to Stripe (peer.service, nothing
answers them in traces) an edge to the external dependency once their wait is over."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from catalog.models import ApiToken, ExternalDependency, Service
from controlplane.tests.browser import AsgiServer
from controlplane.tests.resilience import wait_for
from topology.models import EdgeMinute

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parents[2]

FLEET_YAML = """
host: 127.0.0.1
base_port: 0
control_port: 0
zones: [zone-a]
teams:
  - {slug: payments, name: Payments}
environments:
  - {slug: production, name: Production, order: 20, is_production: true, instances: 1}
external_dependencies:
  - {slug: stripe, name: Stripe}
services:
  - {slug: checkout, name: Checkout, team: payments, version: "1.0",
     depends_on: [inventory], external: [stripe]}
  - {slug: inventory, name: Inventory, team: payments, version: "1.0"}
"""


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("SIGNALBOX_OTLP_PAIR_WAIT_SECONDS", "1")
    # As the Procfile runs the web process: pooled connections, exports in several threads.
    monkeypatch.setenv("SIGNALBOX_DB_POOL_SIZE", "4")
    own = AsgiServer(tmp_path / "uvicorn.log")
    own.start()
    yield own
    own.stop()


def test_fleet_spans_become_edges(world: Any, server: AsgiServer, tmp_path: Path) -> None:
    Service.objects.create(slug="inventory", name="Inventory", team=world.team)
    ExternalDependency.objects.create(slug="stripe", name="Stripe")
    _, plain = ApiToken.issue(team=world.team, name="fleet", scopes=["report"])
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({"payments": plain}))
    config = tmp_path / "fleet.yaml"
    config.write_text(FLEET_YAML)
    log = tmp_path / "fleet.log"
    command = [
        sys.executable, "-m", "fleet", "run", "--config", str(config), "--base-port", "0",
        "--control-port", "0", "--state", str(tmp_path / "state.json"), "--traffic", "20",
        "--otlp-url", f"{server.url}/v1/traces", "--report-tokens", str(tokens),
    ]  # fmt: skip
    with log.open("w") as output:
        fleet = subprocess.Popen(command, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT)
    try:

        def edge(server_name: str) -> EdgeMinute | None:
            return (
                EdgeMinute.objects.filter(client="checkout", server=server_name)
                .order_by("-calls")
                .first()
            )

        def enough() -> EdgeMinute | None:
            found = edge("inventory")
            return found if found is not None and found.calls >= 5 else None

        inventory = wait_for(enough, 30, "checkout -> inventory in EdgeMinute")
        assert inventory is not None
        assert inventory.server_kind == "service" and inventory.connection_type == ""
        assert inventory.environment_id == world.production.pk
        assert inventory.latency_sum_ms > 0 and sum(inventory.latency_buckets) == inventory.calls
        stripe = wait_for(lambda: edge("stripe"), 30, "checkout -> stripe in EdgeMinute")
        assert stripe is not None
        assert stripe.server_kind == "external"
        assert fleet.poll() is None, log.read_text()[-2000:]
        assert "traces:" not in log.read_text()  # no export failure was logged
    finally:
        fleet.terminate()
        fleet.wait(15)
