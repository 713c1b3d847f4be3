"""The ALB driver against moto in server mode: real HTTP calls through boto3 (ELBv2 and
CloudWatch)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from deployments.analysis.base import Context
from deployments.analysis.lb_stats import LoadBalancerStats
from deployments.choices import Verdict
from deployments.drivers.aws_alb import ALBDriver
from deployments.drivers.base import DriverError, Split, Target, TargetStats
from deployments.models import Rollout
from deployments.tests.conftest import free_port

CREDENTIALS = "testing:testing"


@dataclass
class Balancer:
    endpoint: str
    listener_arn: str
    rule_arn: str
    blue: str
    green: str
    client: Any

    def driver(self, **route: Any) -> ALBDriver:
        return ALBDriver(
            name="test-alb",
            connection={"region": "eu-west-1", "endpoint_url": self.endpoint},
            credentials=CREDENTIALS,
            route={
                "rule_arn": self.rule_arn,
                "listener_arn": self.listener_arn,
                "target_group_arns": [self.blue, self.green],
                **route,
            },
            timeout=2.0,
            retries=1,
        )

    def targets(self, group: str) -> set[str]:
        health = self.client.describe_target_health(TargetGroupArn=group)
        return {
            f"{d['Target']['Id']}:{d['Target']['Port']}" for d in health["TargetHealthDescriptions"]
        }


@dataclass
class Account:
    """One moto server for the module, with a VPC, a load balancer and a listener."""

    endpoint: str
    client: Any
    vpc: str
    listener_arn: str
    made: int = 0


@pytest.fixture(scope="module")
def account() -> Iterator[Account]:
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
    lb = elb.create_load_balancer(Name="checkout", Subnets=subnets)["LoadBalancers"][0]
    listener = elb.create_listener(
        LoadBalancerArn=lb["LoadBalancerArn"],
        Protocol="HTTP",
        Port=80,
        DefaultActions=[{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "404"}}],
    )["Listeners"][0]["ListenerArn"]
    yield Account(endpoint, elb, vpc, listener)
    server.stop()


@pytest.fixture
def balancer(account: Account) -> Balancer:
    # Each test gets its own blue/green groups and rule; the listener is shared.
    account.made += 1
    elb = account.client
    groups = [
        elb.create_target_group(
            Name=f"checkout-{account.made}-{color}",
            Protocol="HTTP",
            Port=80,
            VpcId=account.vpc,
            TargetType="ip",
        )["TargetGroups"][0]["TargetGroupArn"]
        for color in ("blue", "green")
    ]
    rule = elb.create_rule(
        ListenerArn=account.listener_arn,
        Priority=account.made,
        Conditions=[{"Field": "host-header", "Values": [f"checkout{account.made}.example.com"]}],
        Actions=[
            {
                "Type": "forward",
                "ForwardConfig": {
                    "TargetGroups": [
                        {"TargetGroupArn": groups[0], "Weight": 100},
                        {"TargetGroupArn": groups[1], "Weight": 0},
                    ]
                },
            }
        ],
    )["Rules"][0]["RuleArn"]
    elb.register_targets(TargetGroupArn=groups[0], Targets=[{"Id": "10.0.0.11", "Port": 8080}])
    elb.modify_listener(
        ListenerArn=account.listener_arn,
        DefaultActions=[
            {
                "Type": "forward",
                "ForwardConfig": {
                    "TargetGroups": [
                        {"TargetGroupArn": groups[0], "Weight": 1},
                        {"TargetGroupArn": groups[1], "Weight": 0},
                    ]
                },
            }
        ],
    )
    return Balancer(account.endpoint, account.listener_arn, rule, groups[0], groups[1], elb)


STABLE = (Target("10.0.0.11", 8080),)
CANARY = (Target("10.0.1.21", 8080), Target("10.0.1.22", 8080))


def test_it_picks_the_group_with_traffic_as_stable(balancer: Balancer) -> None:
    state = balancer.driver().prepare(Split(0, STABLE, CANARY), {})
    assert state == {"stable_group": balancer.blue, "canary_group": balancer.green}


def test_it_sets_weighted_target_groups_and_reads_them_back(balancer: Balancer) -> None:
    # given
    driver = balancer.driver()
    state = driver.prepare(Split(0, STABLE, CANARY), {})
    # when
    applied = driver.apply(Split(25, STABLE, CANARY), state)
    # then the rule forwards 75/25 and the new instances are registered in the green group
    assert applied.canary_percent == 25
    assert applied.weights == {balancer.blue: 75, balancer.green: 25}
    assert balancer.targets(balancer.green) == {"10.0.1.21:8080", "10.0.1.22:8080"}
    assert balancer.targets(balancer.blue) == {"10.0.0.11:8080"}
    # and applying again changes nothing (absolute, idempotent)
    assert driver.apply(Split(25, STABLE, CANARY), state).weights == applied.weights


def test_the_next_rollout_uses_the_other_group(balancer: Balancer) -> None:
    # given a finished rollout: all traffic on green
    driver = balancer.driver()
    state = driver.prepare(Split(0, STABLE, CANARY), {})
    driver.apply(Split(100, STABLE, CANARY), state)
    # when the next rollout prepares
    nxt = driver.prepare(Split(0, CANARY, STABLE), {})
    # then green is now stable, and blue is the canary group, cleaned of old targets
    assert nxt == {"stable_group": balancer.green, "canary_group": balancer.blue}
    newest = (Target("10.0.2.31", 8080),)
    driver.apply(Split(10, CANARY, newest), nxt)
    assert balancer.targets(balancer.blue) == {"10.0.2.31:8080"}


def test_it_drives_the_listener_default_action_without_a_rule(balancer: Balancer) -> None:
    driver = balancer.driver(rule_arn="")
    state = driver.prepare(Split(0, STABLE, CANARY), {})
    applied = driver.apply(Split(50, STABLE, CANARY), state)
    assert applied.canary_percent == 50
    listener = balancer.client.describe_listeners(ListenerArns=[balancer.listener_arn])
    action = listener["Listeners"][0]["DefaultActions"][0]
    assert {g["Weight"] for g in action["ForwardConfig"]["TargetGroups"]} == {50}


def test_draining_deregisters_the_old_side(balancer: Balancer) -> None:
    driver = balancer.driver()
    state = driver.prepare(Split(0, STABLE, CANARY), {})
    driver.apply(Split(100, STABLE, CANARY), state)
    driver.drain(STABLE, state)
    assert balancer.targets(balancer.blue) == set()
    driver.ready(STABLE, state)
    assert balancer.targets(balancer.blue) == {"10.0.0.11:8080"}


def test_aws_errors_are_reported_with_their_code(balancer: Balancer) -> None:
    driver = balancer.driver(rule_arn=balancer.rule_arn + "-missing")
    with pytest.raises(DriverError, match="AWS refused describe_rules"):
        driver.prepare(Split(0, STABLE, CANARY), {})


def test_it_needs_two_target_groups(balancer: Balancer) -> None:
    driver = balancer.driver(target_group_arns=[balancer.blue])
    with pytest.raises(DriverError, match="exactly two target group"):
        driver.prepare(Split(0, STABLE, CANARY), {})


# lb_stats on an ALB reads CloudWatch. moto does not generate ALB traffic metrics, so these
# tests play CloudWatch's role: they publish AWS/ApplicationELB metrics for the two target
# groups with put_metric_data, and the driver reads them back with GetMetricData over HTTP.


def load_balancer_dimension(balancer: Balancer) -> str:
    found = balancer.client.describe_load_balancers(Names=["checkout"])["LoadBalancers"][0]
    return str(found["LoadBalancerArn"]).split(":", 5)[-1].removeprefix("loadbalancer/")


def publish_alb_metrics(
    balancer: Balancer, group: str, requests: int, errors: int, seconds: float
) -> None:
    """What CloudWatch would hold for `group` after a minute of this traffic."""
    cloudwatch = boto3.client(
        "cloudwatch",
        endpoint_url=balancer.endpoint,
        region_name="eu-west-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    dimensions = [
        {"Name": "TargetGroup", "Value": group.split(":", 5)[-1]},
        {"Name": "LoadBalancer", "Value": load_balancer_dimension(balancer)},
    ]
    at = datetime.now(UTC) - timedelta(seconds=20)
    values = {
        "RequestCount": requests,
        "HTTPCode_Target_2XX_Count": requests - errors,
        "HTTPCode_Target_5XX_Count": errors,
        "TargetResponseTime": seconds,
    }
    cloudwatch.put_metric_data(
        Namespace="AWS/ApplicationELB",
        MetricData=[
            {"MetricName": name, "Dimensions": dimensions, "Timestamp": at, "Value": value}
            for name, value in values.items()
        ],
    )


def analyse(balancer: Balancer, **metric: Any) -> Any:
    driver = balancer.driver()
    state = driver.prepare(Split(0, STABLE, CANARY), {})
    driver.apply(Split(25, STABLE, CANARY), state)
    ctx = Context(
        rollout=Rollout(router_state=state),
        metric={"provider": "lb_stats", "interval": 30, **metric},
        stable=STABLE,
        canary=CANARY,
        driver=driver,
    )
    provider = LoadBalancerStats()
    ctx.baseline = provider.begin(ctx)
    return provider.measure(ctx)


def test_group_stats_read_cloudwatch_per_target_group(balancer: Balancer) -> None:
    # given a minute of traffic published for each group
    publish_alb_metrics(balancer, balancer.blue, requests=900, errors=9, seconds=0.040)
    publish_alb_metrics(balancer, balancer.green, requests=300, errors=90, seconds=0.250)
    driver = balancer.driver()
    state = driver.prepare(Split(0, STABLE, CANARY), {})
    # when the driver reads the last minute
    stats = driver.group_stats(state, 60)
    # then each side has the HAProxy driver's shape of counters
    assert stats["stable"] == TargetStats(
        address=balancer.blue, responses=900, responses_2xx=891, responses_5xx=9, rtime_ms=40.0
    )
    assert stats["canary"] == TargetStats(
        address=balancer.green, responses=300, responses_2xx=210, responses_5xx=90, rtime_ms=250.0
    )


def test_a_canary_with_many_5xx_fails_the_analysis(balancer: Balancer) -> None:
    publish_alb_metrics(balancer, balancer.blue, requests=900, errors=4, seconds=0.040)
    publish_alb_metrics(balancer, balancer.green, requests=300, errors=60, seconds=0.045)
    result = analyse(balancer)
    assert result.verdict == Verdict.FAIL
    assert result.value == 20.0
    assert "5xx rate 20.00% > 5%" in result.reason
    assert result.detail["source"] == "cloudwatch"
    assert result.detail["window_seconds"] == 60
    assert result.detail["stable"]["responses"] == 900


def test_a_healthy_canary_passes(balancer: Balancer) -> None:
    publish_alb_metrics(balancer, balancer.blue, requests=900, errors=4, seconds=0.040)
    publish_alb_metrics(balancer, balancer.green, requests=300, errors=1, seconds=0.045)
    result = analyse(balancer, max_latency_ratio=2.0)
    assert result.verdict == Verdict.PASS, result.reason
    assert result.value == 0.33
    assert result.detail["canary"]["rtime_ms"] == 45.0


def test_a_slow_canary_fails_on_latency(balancer: Balancer) -> None:
    publish_alb_metrics(balancer, balancer.blue, requests=900, errors=0, seconds=0.040)
    publish_alb_metrics(balancer, balancer.green, requests=300, errors=0, seconds=0.400)
    result = analyse(balancer, max_latency_ratio=2.0)
    assert result.verdict == Verdict.FAIL
    assert "response time 400 ms > 2x stable's 40 ms" in result.reason


def test_no_cloudwatch_data_is_inconclusive_never_a_pass(balancer: Balancer) -> None:
    # given only stable's group has data (the canary's has none yet)
    publish_alb_metrics(balancer, balancer.blue, requests=900, errors=0, seconds=0.040)
    result = analyse(balancer)
    assert result.verdict == Verdict.INCONCLUSIVE
    assert "CloudWatch has no AWS/ApplicationELB data" in result.reason
    assert "in the last 60 s" in result.reason


def test_too_few_canary_requests_are_inconclusive(balancer: Balancer) -> None:
    publish_alb_metrics(balancer, balancer.blue, requests=900, errors=0, seconds=0.040)
    publish_alb_metrics(balancer, balancer.green, requests=5, errors=5, seconds=0.040)
    result = analyse(balancer)
    assert result.verdict == Verdict.INCONCLUSIVE
    assert "only 5 responses from the new version in the last 60 s" in result.reason
