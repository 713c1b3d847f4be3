"""`python -m fleet statuspage`: Atlassian's summary.json shape, ETag and 304, the control
API's checks, and loopback only."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from fleet.tests.conftest import DEMO

ROOT = DEMO.parents[1]


@pytest.fixture(scope="module")
def page() -> Iterator[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "fleet", "statuspage", "--port", "0",
         "--components", "API,Checkout"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    found = re.search(r"listening on (http://\S+)", process.stdout.readline())
    assert found, "the status page did not start"
    yield found.group(1)
    process.terminate()
    process.wait(timeout=10)


def test_it_serves_a_summary_in_statuspage_shape_with_etags(page: str) -> None:
    httpx.post(f"{page}/control/reset")
    first = httpx.get(f"{page}/api/v2/summary.json")
    body = first.json()
    assert set(body) == {"page", "components", "incidents", "scheduled_maintenances", "status"}
    assert body["status"] == {"indicator": "none", "description": "All Systems Operational"}
    assert [c["name"] for c in body["components"]] == ["API", "Checkout"]
    etag = first.headers["ETag"]
    again = httpx.get(f"{page}/api/v2/summary.json", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.headers["ETag"] == etag
    httpx.post(f"{page}/control/components/checkout", json={"status": "partial_outage"})
    changed = httpx.get(f"{page}/api/v2/summary.json", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag
    assert changed.json()["status"]["indicator"] == "major"


def test_its_control_api_refuses_what_statuspage_has_no_word_for(page: str) -> None:
    bad = httpx.post(f"{page}/control/components/API", json={"status": "on_fire"})
    assert bad.status_code == 400 and "status" in bad.json()["error"]["fields"]
    missing = httpx.post(f"{page}/control/components/Billing", json={"status": "major_outage"})
    assert missing.status_code == 404 and "API, Checkout" in missing.json()["error"]["message"]
    impact = httpx.post(f"{page}/control/incidents", json={"name": "x", "impact": "huge"})
    assert impact.status_code == 400 and "impact" in impact.json()["error"]["fields"]


def test_it_listens_on_loopback_only() -> None:
    # (0.0.0.0 is allowed: inside a container, docker-compose's `vendor`)
    result = subprocess.run(
        [sys.executable, "-m", "fleet", "statuspage", "--host", "10.9.8.7", "--port", "0"],
        cwd=ROOT, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "listens on loopback" in result.stderr
