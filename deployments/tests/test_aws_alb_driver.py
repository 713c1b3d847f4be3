"""The ALB driver against moto in server mode: real HTTP calls through boto3."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from deployments.drivers.aws_alb import ALBDriver
from deployments.drivers.base import DriverError, Split, Target
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
