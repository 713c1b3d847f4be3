"""Analysis providers against real things: Prometheus, a web hook, health and circuits."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from django.utils import timezone

from catalog.models import Instance, Service
from controlplane.tests.prometheus import Prometheus, running_prometheus
from deployments.analysis import PROVIDERS, Context
from deployments.choices import Verdict
from deployments.drivers.base import Target
from deployments.models import Rollout
from deployments.strategies import metric_settings
from deployments.tests.conftest import VersionServers, free_port

pytestmark = pytest.mark.django_db


def context(rollout: Rollout, metric: dict[str, Any], **kwargs: Any) -> Context:
    return Context(rollout, metric_settings(metric), **{"stable": (), "canary": (), **kwargs})


# --- a small aiohttp app for the hook and the metrics Prometheus scrapes ---------------------


@dataclass
class Endpoint:
    port: int = 0
    hook_status: int = 200
    hook_delay: float = 0.0
    received: list[dict[str, Any]] = field(default_factory=list)
    error_ratio: float = 0.01

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def module_loop() -> Iterator[VersionServers]:
    servers = VersionServers()
    yield servers
    servers.close()


@pytest.fixture(scope="module")
def shared_endpoint(module_loop: VersionServers) -> Endpoint:
    found = Endpoint()

    async def hook(request: web.Request) -> web.Response:
        found.received.append(await request.json())
        await asyncio.sleep(found.hook_delay)
        return web.Response(
            status=found.hook_status, text="nope" if found.hook_status >= 300 else ""
        )

    async def metrics(request: web.Request) -> web.Response:
        text = (
            "# TYPE checkout_error_ratio gauge\n"
            f'checkout_error_ratio{{version="2.0"}} {found.error_ratio}\n'
        )
        return web.Response(text=text, content_type="text/plain")

    async def run() -> None:
        app = web.Application()
        app.router.add_post("/hook", hook)
        app.router.add_get("/metrics", metrics)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        found.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    asyncio.run_coroutine_threadsafe(run(), module_loop.loop).result(5)
    return found


@pytest.fixture
def endpoint(shared_endpoint: Endpoint) -> Iterator[Endpoint]:
    yield shared_endpoint
    shared_endpoint.hook_status, shared_endpoint.hook_delay = 200, 0.0
    shared_endpoint.received.clear()


# --- web hook -----------------------------------------------------------------------------------


def test_a_hook_that_answers_2xx_passes_and_gets_the_rollout(
    rollout: Rollout, endpoint: Endpoint
) -> None:
    result = PROVIDERS["webhook"].measure(
        context(rollout, {"provider": "webhook", "url": f"{endpoint.url}/hook"})
    )
    assert result.verdict == Verdict.PASS
    assert endpoint.received[0]["service"] == "checkout"
    assert endpoint.received[0]["to_version"] == "2.0"


def test_a_hook_that_answers_anything_else_fails_with_its_answer(
    rollout: Rollout, endpoint: Endpoint
) -> None:
    endpoint.hook_status = 503
    result = PROVIDERS["webhook"].measure(
        context(rollout, {"provider": "webhook", "url": f"{endpoint.url}/hook"})
    )
    assert result.verdict == Verdict.FAIL
    assert result.reason.endswith("answered 503: nope")
    assert result.value == 503


def test_a_hook_that_does_not_answer_in_time_fails(rollout: Rollout, endpoint: Endpoint) -> None:
    endpoint.hook_delay = 2
    result = PROVIDERS["webhook"].measure(
        context(rollout, {"provider": "webhook", "url": f"{endpoint.url}/hook", "timeout": 0.3})
    )
    assert result.verdict == Verdict.FAIL
    assert "no answer" in result.reason and "within 0.3s" in result.reason


def test_an_unreachable_hook_fails(rollout: Rollout) -> None:
    result = PROVIDERS["webhook"].measure(
        context(rollout, {"provider": "webhook", "url": f"http://127.0.0.1:{free_port()}/hook"})
    )
    assert result.verdict == Verdict.FAIL
    assert "cannot reach" in result.reason


# --- Prometheus ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prometheus(
    shared_endpoint: Endpoint, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    endpoint = shared_endpoint
    config = (
        "global:\n  scrape_interval: 1s\n"
        "scrape_configs:\n  - job_name: checkout\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{endpoint.port}']\n"
    )
    with running_prometheus(config, tmp_path_factory.mktemp("prometheus")) as server:
        wait_for_value(server.url, "checkout_error_ratio", endpoint.error_ratio)
        yield server.url


def wait_for_value(url: str, query: str, value: float, timeout: float = 20) -> None:
    Prometheus(url).wait_for(
        query, lambda result: bool(result) and float(result[0]["value"][1]) == value, timeout
    )


def prom_metric(url: str, query: str, condition: str = "< 0.05") -> dict[str, Any]:
    return {"provider": "prometheus", "url": url, "query": query, "condition": condition}


def test_prometheus_passes_a_query_that_meets_the_condition(
    rollout: Rollout, prometheus: str
) -> None:
    # the query names the new version through a template
    query = 'checkout_error_ratio{version="{{version}}"}'
    result = PROVIDERS["prometheus"].measure(context(rollout, prom_metric(prometheus, query)))
    assert result.verdict == Verdict.PASS
    assert result.value == 0.01
    assert result.detail["query"] == 'checkout_error_ratio{version="2.0"}'


def test_prometheus_fails_a_query_that_breaks_the_condition(
    rollout: Rollout, prometheus: str, endpoint: Endpoint
) -> None:
    endpoint.error_ratio = 0.2
    try:
        wait_for_value(prometheus, "checkout_error_ratio", 0.2)
        result = PROVIDERS["prometheus"].measure(
            context(rollout, prom_metric(prometheus, "checkout_error_ratio"))
        )
    finally:
        endpoint.error_ratio = 0.01
        wait_for_value(prometheus, "checkout_error_ratio", 0.01)
    assert result.verdict == Verdict.FAIL
    assert result.reason.startswith("0.2 is not < 0.05")
    assert result.threshold == "< 0.05"


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("checkout_latency_seconds", "returned no data"),
        ("checkout_error_ratio{", "Prometheus refused the query"),
    ],
)
def test_prometheus_without_data_is_inconclusive(
    rollout: Rollout, prometheus: str, query: str, words: str
) -> None:
    result = PROVIDERS["prometheus"].measure(context(rollout, prom_metric(prometheus, query)))
    assert result.verdict == Verdict.INCONCLUSIVE
    assert words in result.reason


def test_an_unreachable_prometheus_is_inconclusive(rollout: Rollout) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = PROVIDERS["prometheus"].measure(context(rollout, prom_metric(url, "up")))
    assert result.verdict == Verdict.INCONCLUSIVE
    assert "cannot read Prometheus" in result.reason


# --- canary health (health's contract) ----------------------------------------------------------


def set_check(instance: Instance, status: str) -> None:
    from health.models import InstanceCheck

    InstanceCheck.objects.update_or_create(instance=instance, defaults={"status": status})


def canaries(world: Any, count: int) -> list[Instance]:
    return [
        Instance.objects.create(
            service=world.service,
            environment=world.production,
            host="127.0.0.1",
            port=9100 + i,
            version="2.0",
        )
        for i in range(count)
    ]


def as_targets(instances: list[Instance]) -> tuple[Target, ...]:
    return tuple(Target(i.host, i.port, i.pk) for i in instances)


@pytest.mark.parametrize(
    ("statuses", "metric", "verdict", "words"),
    [
        (["pass", "pass"], {}, Verdict.PASS, "2 of 2 new instances healthy"),
        (["pass", "warn"], {}, Verdict.PASS, "2 of 2"),
        (["pass", "warn"], {"allow_warn": False}, Verdict.FAIL, "(warn)"),
        (["pass", "fail"], {}, Verdict.FAIL, "1 of 2 new instances fail"),
        (["pass", "fail"], {"max_failing": 1}, Verdict.PASS, "1 of 2 new instances healthy"),
        (["pass", "unknown"], {}, Verdict.INCONCLUSIVE, "no health result yet"),
    ],
)
def test_canary_health_follows_the_new_instances_checks(
    world: Any,
    rollout: Rollout,
    statuses: list[str],
    metric: dict[str, Any],
    verdict: str,
    words: str,
) -> None:
    instances = canaries(world, len(statuses))
    for instance, status in zip(instances, statuses, strict=True):
        set_check(instance, status)
    result = PROVIDERS["canary_health"].measure(
        context(rollout, {"provider": "canary_health", **metric}, canary=as_targets(instances))
    )
    assert result.verdict == verdict
    assert words in result.reason


def test_canary_health_without_new_instances_is_inconclusive(rollout: Rollout) -> None:
    result = PROVIDERS["canary_health"].measure(context(rollout, {"provider": "canary_health"}))
    assert result.verdict == Verdict.INCONCLUSIVE
    assert "no instances of version 2.0" in result.reason


# --- dependents (health's and circuits' contracts) ---------------------------------------------


@pytest.fixture
def storefront(world: Any) -> Service:
    """A service that calls checkout."""
    web_service = Service.objects.create(
        slug="storefront", name="Storefront", team=world.other_team
    )
    web_service.depends_on.add(world.service)
    return web_service


def set_health(service: Service, environment: Any, status: str) -> None:
    from health.models import ServiceHealth

    ServiceHealth.objects.update_or_create(
        service=service, environment=environment, defaults={"status": status}
    )


def set_circuit(caller: Service, target: Service, environment: Any, state: str) -> None:
    from circuits.models import Circuit

    Circuit.objects.update_or_create(
        service=caller,
        environment=environment,
        name="checkout-client",
        defaults={"protects_service": target, "state": state, "updated_at": timezone.now()},
    )


def dependents_result(rollout: Rollout, **metric: Any) -> Any:
    provider = PROVIDERS["dependents"]
    ctx = context(rollout, {"provider": "dependents", **metric})
    ctx.baseline = provider.begin(ctx)
    return provider, ctx


def test_dependents_pass_while_callers_stay_healthy_and_circuits_closed(
    world: Any, rollout: Rollout, storefront: Service
) -> None:
    set_health(storefront, world.production, "healthy")
    set_circuit(storefront, world.service, world.production, "closed")
    provider, ctx = dependents_result(rollout)
    result = provider.measure(ctx)
    assert result.verdict == Verdict.PASS
    # (a circuit with no instance reports carries no calls to judge: health is the evidence)
    assert result.reason == (
        "1 dependent service(s) healthy, no circuit opened; "
        "no caller reports its calls to checkout (no circuit data)"
    )


def test_dependents_fail_when_a_caller_goes_down_during_the_step(
    world: Any, rollout: Rollout, storefront: Service
) -> None:
    set_health(storefront, world.production, "healthy")
    provider, ctx = dependents_result(rollout)
    set_health(storefront, world.production, "down")
    result = provider.measure(ctx)
    assert result.verdict == Verdict.FAIL
    assert "storefront is down" in result.reason


def test_dependents_fail_when_a_circuit_towards_the_service_opens(
    world: Any, rollout: Rollout, storefront: Service
) -> None:
    set_circuit(storefront, world.service, world.production, "closed")
    provider, ctx = dependents_result(rollout)
    set_circuit(storefront, world.service, world.production, "open")
    result = provider.measure(ctx)
    assert result.verdict == Verdict.FAIL
    assert "circuit storefront:checkout-client is open" in result.reason


def test_dependents_do_not_blame_the_canary_for_what_was_already_broken(
    world: Any, rollout: Rollout, storefront: Service
) -> None:
    set_health(storefront, world.production, "degraded")
    set_circuit(storefront, world.service, world.production, "open")
    provider, ctx = dependents_result(rollout)
    result = provider.measure(ctx)
    assert result.verdict == Verdict.PASS
    assert result.detail["already_bad"] == ["storefront", "storefront:checkout-client"]


def test_dependents_may_tolerate_degraded_callers(
    world: Any, rollout: Rollout, storefront: Service
) -> None:
    provider, ctx = dependents_result(rollout, allow_degraded=True)
    set_health(storefront, world.production, "degraded")
    assert provider.measure(ctx).verdict == Verdict.PASS
