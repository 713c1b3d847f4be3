"""Router drift: a router that lost a rollout's weights (HAProxy restarted from its config,
an ALB rule edited by hand) gets them back within seconds, with an event saying what."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from django.db import connection, transaction
from django.test import Client
from moto.server import ThreadedMotoServer

from catalog.models import Instance
from controlplane.celery import app as celery_app
from controlplane.models import Event
from deployments import reconciler, tasks
from deployments.choices import PauseCause, RolloutEvent, RolloutState, RouterKind
from deployments.drivers import driver_for
from deployments.drivers.base import NO_TRAFFIC, Difference, Member, Pool, Split, Target
from deployments.drivers.haproxy import HAProxyDriver
from deployments.models import Rollout, TrafficRoute, TrafficRouter
from deployments.reconciler import drift
from deployments.tests.conftest import (
    HAProxy,
    VersionServer,
    VersionServers,
    at_once,
    drive,
    free_port,
    make_route,
    run_haproxy,
    start,
)
from deployments.tests.test_aws_alb_driver import CREDENTIALS, Balancer

pytestmark = pytest.mark.django_db
# The beat's tick for the pass (controlplane/celery.py); the test's passes run at it.
BEAT_SECONDS = 2.0
# What "within seconds" means here: two ticks and the time a pass takes.
RECOVERY_SECONDS = 5.0
TOLERANCE = 4.0
REQUESTS = 200


def share_of(proxy: HAProxy, version: str, backend: str = "be_checkout") -> float:
    seen = proxy.traffic(REQUESTS, backend)
    return 100.0 * seen[version] / REQUESTS


def restart(proxy: HAProxy) -> None:
    """kill -9 HAProxy and start it again from its generated config, as a supervisor would."""
    proxy.process.send_signal(signal.SIGKILL)
    proxy.process.wait(5)
    os.unlink(proxy.socket)
    proxy.process = run_haproxy(proxy.config, proxy.socket)
    for _ in range(100):  # the frontends bind just after the admin socket
        try:
            proxy.traffic(1)
            return
        except Exception:
            time.sleep(0.02)


@pytest.fixture
def canary_added_at_runtime(
    world: Any, version_servers: VersionServers, haproxy_factory: Any
) -> tuple[HAProxy, list[VersionServer], VersionServer]:
    """checkout 1.0 on two servers in the config file; 2.0 registered in the catalog only,
    so the rollout adds it with `add server` (and a restart from the file loses it)."""
    stable = [version_servers.start("1.0"), version_servers.start("1.0")]
    canary = version_servers.start("2.0")
    proxy = haproxy_factory({"be_checkout": stable})
    make_route(world, proxy.connection)
    for server in [*stable, canary]:
        Instance.objects.create(
            service=world.service,
            environment=world.production,
            host="127.0.0.1",
            port=server.port,
            version=server.version,
        )
    return proxy, stable, canary


class Beat:
    """The drift pass every BEAT_SECONDS in a thread, as the beat queues it to a worker."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.reports: list[drift.Report] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            while not self.stop.is_set():
                self.reports.append(reconciler.reconcile_routers())
                self.stop.wait(BEAT_SECONDS)
        finally:
            connection.close()

    def __enter__(self) -> Beat:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)


def wait_for(check: Any, seconds: float) -> float:
    """Seconds until check() is true; fails after `seconds`."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < seconds, f"not within {seconds} s"
        time.sleep(0.1)
    return time.monotonic() - started


def router_share(proxy: HAProxy, canary: VersionServer) -> float:
    """The new version's share as the router holds it now, read back by the driver."""
    driver = driver_for(TrafficRoute.objects.get(backend="be_checkout"))
    return driver.read(Split(0, (), (Target("127.0.0.1", canary.port),)), {}).canary_percent


@pytest.mark.django_db(transaction=True)
def test_a_restarted_haproxy_gets_the_rollouts_weights_back_within_seconds(
    world: Any, canary_added_at_runtime: Any, api_as: Any
) -> None:
    proxy, _, canary = canary_added_at_runtime
    # given a canary at 20 %, waiting to be promoted, and real traffic that agrees
    rollout = start(world, steps=[{"set_weight": 20}, {"pause": {}}, {"set_weight": 100}])
    rollout = drive(rollout.pk, lambda r: r.paused_for == PauseCause.PROMOTION)
    assert share_of(proxy, "2.0") == pytest.approx(20, abs=TOLERANCE)
    # when HAProxy is killed and started again from its config file
    restart(proxy)
    # then the router has lost the canary (the defect: the rollout still says 20 %)
    assert share_of(proxy, "2.0") == 0
    assert Rollout.objects.get(pk=rollout.pk).applied_weight == 20
    # when the drift pass runs on the beat's clock
    with Beat():
        took = wait_for(lambda: router_share(proxy, canary) == 20, RECOVERY_SECONDS)
    # then within seconds the router holds the step again, and real traffic follows
    assert took < RECOVERY_SECONDS
    assert share_of(proxy, "2.0") == pytest.approx(20, abs=TOLERANCE)
    # and one event says what was re-applied: the canary server, added back
    event = Event.objects.get(action=RolloutEvent.TRAFFIC_REAPPLIED)
    assert event.subject_id == str(rollout.pk)
    assert f"be_checkout 127.0.0.1:{canary.port}: missing -> weight 1" in event.message
    assert "had drifted from 20% on 2.0" in event.message
    missing = [d for d in event.payload["differences"] if d["observed"] is None]
    assert [d["member"] for d in missing] == [f"127.0.0.1:{canary.port}"]
    # and the rollout's API and page agree with the router
    client = api_as("viewer")
    answer = client.get(f"/api/v1/rollouts/{rollout.pk}").json()
    assert (answer["state"], answer["desired_weight"], answer["applied_weight"]) == (
        RolloutState.PAUSED,
        20,
        20.0,
    )
    page = Client()
    page.force_login(world.viewer)
    assert "20% / 80%" in page.get(f"/deployments/rollouts/{rollout.pk}/").content.decode()
    # and when promoted, the rollout goes on from there
    promoted = api_as("deployer").post(f"/api/v1/rollouts/{rollout.pk}/promote", {}, format="json")
    assert promoted.status_code == 200, promoted.json()
    rollout = drive(rollout.pk, lambda r: r.is_terminal)
    assert rollout.state == RolloutState.SUCCEEDED
    assert share_of(proxy, "2.0") == 100


def test_a_router_that_holds_the_step_is_read_once_and_left_alone(
    world: Any, canary_added_at_runtime: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a canary at 20 %, as the router holds it
    rollout = start(world, steps=[{"set_weight": 20}, {"pause": {}}])
    drive(rollout.pk, lambda r: r.paused_for == PauseCause.PROMOTION)
    commands: list[str] = []
    real = HAProxyDriver.api.fget  # type: ignore[attr-defined]

    def counting(self: HAProxyDriver) -> Any:
        api = real(self)
        execute = api.execute

        def recorded(command: str) -> str:
            commands.append(command)
            return str(execute(command))

        api.execute = recorded
        return api

    monkeypatch.setattr(HAProxyDriver, "api", property(counting))
    # when a pass runs
    report = reconciler.reconcile_routers()
    # then it read the whole router once and changed nothing
    assert report.observed == 1 and report.repaired == {}
    assert commands == ["show servers state"]
    assert not Event.objects.filter(action=RolloutEvent.TRAFFIC_REAPPLIED).exists()


@pytest.mark.django_db(transaction=True)
def test_two_workers_repair_a_drifted_router_once(world: Any, canary_added_at_runtime: Any) -> None:
    proxy, _, canary = canary_added_at_runtime
    # given a canary at 20 % that a restart lost
    rollout = start(world, steps=[{"set_weight": 20}, {"pause": {}}])
    drive(rollout.pk, lambda r: r.paused_for == PauseCause.PROMOTION)
    restart(proxy)
    # when two workers run the pass at the same moment
    reports: list[drift.Report] = at_once(reconciler.reconcile_routers)
    # then one of them observed and repaired it, and one event says so
    assert sorted(r.observed for r in reports) == [0, 1]
    assert Event.objects.filter(action=RolloutEvent.TRAFFIC_REAPPLIED).count() == 1
    assert router_share(proxy, canary) == 20


@pytest.mark.django_db(transaction=True)
def test_a_rollout_mid_step_is_not_raced(world: Any, canary_added_at_runtime: Any) -> None:
    proxy, _, canary = canary_added_at_runtime
    # given a drifted router whose rollout row a step holds (a worker inside advance())
    rollout = start(world, steps=[{"set_weight": 20}, {"pause": {}}])
    drive(rollout.pk, lambda r: r.paused_for == PauseCause.PROMOTION)
    restart(proxy)
    held, release = threading.Event(), threading.Event()

    def step() -> None:
        try:
            with transaction.atomic():
                Rollout.objects.select_for_update().get(pk=rollout.pk)
                held.set()
                release.wait(10)
        finally:
            connection.close()

    worker = threading.Thread(target=step)
    worker.start()
    held.wait(5)
    # when the pass runs meanwhile
    busy = reconciler.reconcile_routers()
    release.set()
    worker.join(10)
    # then it left the router to the step; the next pass (row free) repairs it
    assert busy.repaired == {} and router_share(proxy, canary) == 0
    TrafficRouter.objects.update(reconcile_due_at=None)
    assert reconciler.reconcile_routers().repaired
    assert router_share(proxy, canary) == 20


def test_a_blue_green_preview_comes_back_after_a_restart(
    world: Any, version_servers: VersionServers, haproxy_factory: Any
) -> None:
    # given checkout's backend and an empty preview backend, and a green side in preview
    blue = [version_servers.start("1.0"), version_servers.start("1.0")]
    green = version_servers.start("2.0")
    proxy = haproxy_factory({"be_checkout": blue, "be_checkout_preview": []})
    route = make_route(world, proxy.connection)
    TrafficRoute.objects.filter(pk=route.pk).update(preview_backend="be_checkout_preview")
    for server in [*blue, green]:
        Instance.objects.create(
            service=world.service,
            environment=world.production,
            host="127.0.0.1",
            port=server.port,
            version=server.version,
        )
    steps = [{"preview": {}}, {"pause": {}}, {"set_weight": 100}]
    rollout = start(world, steps=steps, strategy="blue_green")
    drive(rollout.pk, lambda r: r.paused_for == PauseCause.PROMOTION)
    assert proxy.traffic(10, "be_checkout_preview") == {"2.0": 10}
    # when HAProxy restarts from its file, the preview has nobody behind it
    restart(proxy)
    assert proxy.traffic(5, "be_checkout_preview") == {"503": 5}
    report = reconciler.reconcile_routers()
    # then one pass puts green back behind the preview, and users still see only blue
    assert [d.pool for d in report.repaired[route.router.name]] == ["be_checkout_preview"]
    assert proxy.traffic(10, "be_checkout_preview") == {"2.0": 10}
    assert proxy.traffic(10) == {"1.0": 10}
    assert green.hits == 20  # every one of them through the preview


def test_rollouts_the_router_is_failing_for_or_rolling_back_are_left_to_their_steps(
    world: Any, canary_added_at_runtime: Any
) -> None:
    proxy, _, canary = canary_added_at_runtime
    rollout = start(world, steps=[{"set_weight": 20}, {"pause": {}}])
    drive(rollout.pk, lambda r: r.paused_for == PauseCause.PROMOTION)
    restart(proxy)
    for state, cause in (
        (RolloutState.PAUSED, PauseCause.DRIVER_ERROR),
        (RolloutState.ROLLING_BACK, PauseCause.NONE),
    ):
        # given a rollout whose own retries (or rollback) own the router now
        Rollout.objects.filter(pk=rollout.pk).update(state=state, paused_for=cause)
        TrafficRouter.objects.update(reconcile_due_at=None)
        # when a pass runs, then it reads nothing and changes nothing
        assert reconciler.reconcile_routers().observed == 0
        assert router_share(proxy, canary) == 0


@pytest.fixture
def balancer() -> Iterator[Balancer]:
    """moto in server mode with one ALB: a listener, a rule, blue and green groups. moto's
    state is per process, so the names differ from test_aws_alb_driver's."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="eu-west-1"
    )
    ec2 = session.client("ec2", endpoint_url=endpoint)
    elb = session.client("elbv2", endpoint_url=endpoint)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"eu-west-1{z}")[
            "Subnet"
        ]["SubnetId"]
        for i, z in enumerate("ab")
    ]
    suffix = free_port()  # unique within the process
    lb = elb.create_load_balancer(Name=f"drift-{suffix}", Subnets=subnets)["LoadBalancers"][0]
    listener = elb.create_listener(
        LoadBalancerArn=lb["LoadBalancerArn"],
        Protocol="HTTP",
        Port=80,
        DefaultActions=[{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "404"}}],
    )["Listeners"][0]["ListenerArn"]
    blue, green = (
        elb.create_target_group(
            Name=f"drift-{suffix}-{color}", Protocol="HTTP", Port=80, VpcId=vpc, TargetType="ip"
        )["TargetGroups"][0]["TargetGroupArn"]
        for color in ("blue", "green")
    )
    rule = elb.create_rule(
        ListenerArn=listener,
        Priority=1,
        Conditions=[{"Field": "host-header", "Values": ["checkout.example.com"]}],
        Actions=[forward({blue: 100, green: 0})],
    )["Rules"][0]["RuleArn"]
    yield Balancer(endpoint, listener, rule, blue, green, elb)
    server.stop()


def forward(weights: dict[str, int]) -> dict[str, Any]:
    groups = [{"TargetGroupArn": arn, "Weight": weight} for arn, weight in weights.items()]
    return {"Type": "forward", "ForwardConfig": {"TargetGroups": groups}}


def test_an_edited_alb_rule_and_a_lost_target_are_put_back(
    world: Any, balancer: Balancer, api_as: Any
) -> None:
    # given an ALB route, and a canary at 25 % on it
    router = TrafficRouter.objects.create(
        name="alb-checkout",
        kind=RouterKind.AWS_ALB,
        connection={"region": "eu-west-1", "endpoint_url": balancer.endpoint},
        credentials=CREDENTIALS,
        timeout_seconds=2,
        retries=1,
    )
    TrafficRoute.objects.create(
        router=router,
        service=world.service,
        environment=world.production,
        listener_arn=balancer.listener_arn,
        rule_arn=balancer.rule_arn,
        target_group_arns=[balancer.blue, balancer.green],
    )
    for host, version in (("10.0.0.11", "1.0"), ("10.0.0.12", "1.0"), ("10.0.1.21", "2.0")):
        Instance.objects.create(
            service=world.service,
            environment=world.production,
            host=host,
            port=8080,
            version=version,
        )
    rollout = start(world, steps=[{"set_weight": 25}, {"pause": {}}])
    drive(rollout.pk, lambda r: r.paused_for == PauseCause.PROMOTION)
    # when someone puts the rule back to all-blue and deregisters a green target by hand
    balancer.client.modify_rule(
        RuleArn=balancer.rule_arn, Actions=[forward({balancer.blue: 100, balancer.green: 0})]
    )
    balancer.client.deregister_targets(
        TargetGroupArn=balancer.green, Targets=[{"Id": "10.0.1.21", "Port": 8080}]
    )
    report = reconciler.reconcile_routers()
    # then one pass sets the weights and the target back, and says so
    fixed = {(d.pool.split(":")[0], d.member) for d in report.repaired["alb-checkout"]}
    assert fixed == {("rule", balancer.blue), ("rule", balancer.green), ("group", "10.0.1.21:8080")}
    rules = balancer.client.describe_rules(RuleArns=[balancer.rule_arn])["Rules"]
    weights = {
        g["TargetGroupArn"]: g["Weight"]
        for g in rules[0]["Actions"][0]["ForwardConfig"]["TargetGroups"]
    }
    assert weights == {balancer.blue: 75, balancer.green: 25}
    assert balancer.targets(balancer.green) == {"10.0.1.21:8080"}
    event = Event.objects.get(action=RolloutEvent.TRAFFIC_REAPPLIED)
    assert "had drifted from 25% on 2.0" in event.message
    assert api_as("viewer").get(f"/api/v1/rollouts/{rollout.pk}").json()["applied_weight"] == 25


class Drain(drift.Wanted):
    """Another app's wish (as scaling's scale-down drain will be): one server drained."""

    def __init__(self, route: TrafficRoute, address: str) -> None:
        host, _, port = address.rpartition(":")
        target = Target(host, int(port))
        driver = driver_for(route)
        super().__init__(route, driver, driver.wanted_pools(None, (target,), {}))
        self.reported: list[Difference] = []

    def hold(self) -> bool:
        return True

    def repaired(self, differences: list[Difference]) -> None:
        self.reported += differences


@pytest.fixture
def drains() -> Iterator[list[Drain]]:
    wanted: list[Drain] = []
    drift.wanted_state("test-drains")(lambda: wanted)
    yield wanted
    drift.SOURCES.pop("test-drains")


def test_another_app_can_want_a_server_drained_beside_a_rollout(
    world: Any, canary_added_at_runtime: Any, drains: list[Drain]
) -> None:
    proxy, stable, canary = canary_added_at_runtime
    # given a canary at 20 %, and a scale-down that wants one stable server drained
    rollout = start(world, steps=[{"set_weight": 20}, {"pause": {}}])
    drive(rollout.pk, lambda r: r.paused_for == PauseCause.PROMOTION)
    route = TrafficRoute.objects.select_related("router").get()
    drains.append(Drain(route, stable[0].address))
    # when the pass runs after a restart lost both
    restart(proxy)
    report = reconciler.reconcile_routers()
    # then the drain and the canary are both re-applied in one pass, and both sources told
    members = {(d.member, d.wanted) for d in report.repaired[route.router.name]}
    assert (stable[0].address, Member(weight=2, serving=False)) in members
    assert (canary.address, Member(weight=1)) in members
    assert stable[0].address in {d.member for d in drains[0].reported}
    # and nothing reaches the drained server; the others split 2:1 as the rollout says
    hits = stable[0].hits
    seen = proxy.traffic(30)
    assert stable[0].hits == hits
    assert seen["2.0"] == pytest.approx(10, abs=2) and seen["1.0"] == pytest.approx(20, abs=2)


def test_compare_wants_no_traffic_on_strays_and_takes_absence_for_none() -> None:
    wanted = {
        "be": Pool({"a:1": Member(weight=2), "b:1": Member(weight=0), "c:1": Member(serving=False)})
    }
    observed = {
        "be": {
            "a:1": Member(weight=1, name="a"),
            "c:1": Member(weight=3, serving=False, name="c"),
            "old:1": Member(weight=1, name="old"),
            "gone:1": Member(weight=0, name="gone"),
        }
    }
    assert drift.compare(wanted, observed) == [
        Difference("be", "a:1", Member(weight=2), Member(weight=1, name="a")),
        Difference("be", "old:1", NO_TRAFFIC, Member(weight=1, name="old")),
    ]


def test_the_drift_pass_is_on_the_beat_and_expires() -> None:
    entry = celery_app.conf.beat_schedule["reconcile-routers"]
    assert entry["task"] == "deployments.tasks.reconcile_routers"
    assert entry["schedule"] == BEAT_SECONDS
    assert entry["options"]["expires"] <= BEAT_SECONDS
    assert drift.RECONCILE_EVERY.total_seconds() < BEAT_SECONDS
    assert tasks.reconcile_routers.name == entry["task"]
