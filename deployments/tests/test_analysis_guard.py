"""The `webhook` and `prometheus` analysis providers call URLs that a `deploy` token sets:
refused with 400 naming the field when the address is known at save time, and a failed,
reasoned measurement when it is only known at call time."""

from __future__ import annotations

from typing import Any

import pytest

from controlplane.tests.outbound_targets import (
    LOOPBACK_NAME,
    METADATA,
    METADATA_MAPPED,
    answering,
    redirector,
    refuse_loopback,
)
from deployments.analysis import PROVIDERS
from deployments.choices import Verdict
from deployments.models import Rollout
from deployments.tests.test_analysis_providers import context

pytestmark = pytest.mark.django_db
FORBIDDEN_HOSTS = [(METADATA, "cloud metadata"), (f"[{METADATA_MAPPED}]", "cloud metadata")]


def metric(provider: str, url: str) -> dict[str, Any]:
    if provider == "prometheus":
        return {"provider": provider, "url": url, "query": "up", "condition": "> 0"}
    return {"provider": provider, "url": url}


def start(token_client: Any, world: Any, **fields: Any) -> Any:
    client, _ = token_client(world.team, ["deploy"])
    body = {"service": "checkout", "environment": "production", "version": "2.0", **fields}
    return client.post("/api/v1/rollouts", body, format="json")


@pytest.mark.parametrize("provider", ["webhook", "prometheus"])
@pytest.mark.parametrize(("host", "reason"), FORBIDDEN_HOSTS)
def test_a_deploy_token_cannot_aim_analysis_at_the_metadata_address(
    world: Any, routed: Any, token_client: Any, provider: str, host: str, reason: str
) -> None:
    url = f"http://{host}/latest/meta-data/"
    # in a step's analysis
    answer = start(token_client, world, steps=[{"analysis": {"metrics": [metric(provider, url)]}}])
    assert answer.status_code == 400
    [said] = answer.json()["error"]["fields"]["steps"]
    assert said.startswith("steps.0.analysis.metrics.0.url: refused: ")
    assert reason in said
    # and in the rollout's own analysis
    answer = start(token_client, world, analysis=[metric(provider, url)])
    assert answer.status_code == 400
    assert "analysis.0.url: refused: " in answer.json()["error"]["fields"]["analysis"][0]
    assert not Rollout.objects.exists()


@pytest.mark.parametrize("provider", ["webhook", "prometheus"])
def test_a_name_resolving_to_loopback_is_refused_where_loopback_is_not_allowed(
    world: Any, routed: Any, token_client: Any, settings: Any, provider: str
) -> None:
    refuse_loopback(settings)
    url = f"http://{LOOPBACK_NAME}:9090"
    answer = start(token_client, world, analysis=[metric(provider, url)])
    assert answer.status_code == 400
    assert "is loopback" in answer.json()["error"]["fields"]["analysis"][0]


@pytest.mark.parametrize("provider", ["webhook", "prometheus"])
@pytest.mark.parametrize(("host", "reason"), [*FORBIDDEN_HOSTS, (LOOPBACK_NAME, "is loopback")])
def test_at_call_time_a_forbidden_address_fails_the_measurement_with_the_reason(
    rollout: Rollout, settings: Any, provider: str, host: str, reason: str
) -> None:
    # given a metric saved while its address was allowed (a name that rebound since, or a
    # policy an admin tightened)
    refuse_loopback(settings)
    # when measured
    result = PROVIDERS[provider].measure(context(rollout, metric(provider, f"http://{host}:80")))
    # then it fails (no amount of waiting makes the address acceptable) and says why
    assert result.verdict == Verdict.FAIL
    assert "refused: " in result.reason and reason in result.reason


def test_prometheus_checks_a_redirect_again_and_refuses_the_metadata_address(
    rollout: Rollout,
) -> None:
    with redirector() as prometheus:
        result = PROVIDERS["prometheus"].measure(
            context(rollout, metric("prometheus", prometheus.url()))
        )
    assert result.verdict == Verdict.FAIL
    assert result.reason == (
        f"not querying {prometheus.url()}: refused: {METADATA} is a cloud metadata address"
    )
    assert prometheus.paths == ["/api/v1/query?query=up"]


def test_a_webhook_does_not_follow_a_redirect(rollout: Rollout) -> None:
    with redirector() as hook:
        result = PROVIDERS["webhook"].measure(context(rollout, metric("webhook", hook.url("/h"))))
    assert result.verdict == Verdict.FAIL
    assert result.reason == f"{hook.url('/h')} answered 302"
    assert hook.paths == ["/h"]


def test_what_an_unexpected_answer_said_is_kept_short_and_printable(rollout: Rollout) -> None:
    # given a hook and a "Prometheus" that answer with a page full of someone's internals
    page = b"<html>\n<pre>\x1b[0mAWS_SECRET_ACCESS_KEY=" + b"k" * 5000 + b"</pre></html>"
    with answering(500, page) as server:
        hook = PROVIDERS["webhook"].measure(context(rollout, metric("webhook", server.url())))
        prom = PROVIDERS["prometheus"].measure(context(rollout, metric("prometheus", server.url())))
    # then each reading keeps at most a short, one-line excerpt of it
    for result in (hook, prom):
        assert len(result.reason) < 300, result.reason
        assert "\n" not in result.reason and "\x1b" not in result.reason
        assert "k" * 300 not in str(result.detail)
    assert hook.verdict == Verdict.FAIL
    assert "not Prometheus's JSON" in prom.reason
