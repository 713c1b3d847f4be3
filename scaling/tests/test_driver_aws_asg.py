"""The aws_asg instance driver against moto in server mode (real HTTP through boto3: Auto
Scaling, EC2, ELBv2), and the group API's checks of its driver_config.

What moto (5.2) lacks, and how these tests deal with it:
- RecordLifecycleActionHeartbeat and CompleteLifecycleAction are not implemented (moto
  answers HTTP 500). The tests read the requests the driver sent over the wire (botocore's
  `before-send` event) and check that moto's failure reaches the caller as a
  ScalingDriverError naming the call; the lifecycle logic is covered with the process driver.
- A lifecycle hook holds nothing: TerminateInstanceInAutoScalingGroup detaches and
  terminates at once, so there is no Terminating:Wait state and a heartbeat extends nothing.
- New instances are InService at once (no Pending), and HonorCooldown is ignored.
- DeregisterTargets moves a target straight to `unused` (no deregistration delay); a target
  is `draining` only when its EC2 instance was terminated while registered.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import boto3
import pytest
from moto.server import ThreadedMotoServer

from deployments.tests.conftest import free_port
from scaling.choices import DriverKind
from scaling.drivers import driver_of
from scaling.drivers.aws_asg import AutoScalingGroupDriver, clean_config
from scaling.drivers.base import Running, ScalingDriverError
from scaling.models import ScalingGroup
from scaling.tests.conftest import group_body

REGION = "eu-west-1"
KEY_ID, SECRET = "AKIAMOTOTESTING", "moto-secret-value-9f3c"
PORT = 8080
counter = itertools.count(1)


@dataclass
class Account:
    """One moto server for the module: a VPC with a subnet per zone, and a launch template."""

    endpoint: str
    ec2: Any
    autoscaling: Any
    elbv2: Any
    vpc: str
    subnets: list[str]
    template: str


@pytest.fixture(scope="module")
def account() -> Iterator[Account]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
    )
    ec2 = session.client("ec2", endpoint_url=endpoint)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"{REGION}{z}")[
            "Subnet"
        ]["SubnetId"]
        for i, z in enumerate("ab", start=1)
    ]
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    # moto keeps its state per process: pytest-django may run this module's database tests
    # apart from the rest, setting this fixture up twice, so the template is named per server.
    template = f"web-{port}"
    ec2.create_launch_template(
        LaunchTemplateName=template,
        LaunchTemplateData={"ImageId": image, "InstanceType": "t3.micro"},
    )
    yield Account(
        endpoint,
        ec2,
        session.client("autoscaling", endpoint_url=endpoint),
        session.client("elbv2", endpoint_url=endpoint),
        vpc,
        subnets,
        template,
    )
    server.stop()


@dataclass
class Fleet:
    """One ASG (desired 2, max 5) and one target group, as a test's AWS account has them."""

    account: Account
    name: str
    target_group_arn: str
    hook: str = "signalbox-drain"
    sent: list[dict[str, Any]] = field(default_factory=list)

    def config(self, **overrides: Any) -> dict[str, Any]:
        return {
            "region": REGION,
            "endpoint_url": self.account.endpoint,
            "auto_scaling_group_name": self.name,
            "port": PORT,
            "target_group_arn": self.target_group_arn,
            "lifecycle_hook_name": self.hook,
            **overrides,
        }

    def driver(self, **overrides: Any) -> AutoScalingGroupDriver:
        group = ScalingGroup(
            driver=DriverKind.AWS_ASG,
            driver_config=self.config(**overrides),
            credentials=f"{KEY_ID}:{SECRET}",
        )
        driver = driver_of(group)
        assert isinstance(driver, AutoScalingGroupDriver)
        driver.attempts = 1  # moto's 500s for missing calls need no retries here
        # Record every request as it goes over the wire.
        for service in ("autoscaling", "ec2", "elbv2"):
            driver.client(service).meta.events.register("before-send", self._record)
        return driver

    def _record(self, request: Any, **_: Any) -> None:
        body = parse_qs(request.body.decode() if isinstance(request.body, bytes) else request.body)
        self.sent.append({key: values[0] for key, values in body.items()})

    def calls(self, action: str) -> list[dict[str, Any]]:
        return [request for request in self.sent if request.get("Action") == action]

    def asg(self) -> dict[str, Any]:
        found = self.account.autoscaling.describe_auto_scaling_groups(
            AutoScalingGroupNames=[self.name]
        )
        return dict(found["AutoScalingGroups"][0])

    def instance_ids(self) -> list[str]:
        return [i["InstanceId"] for i in self.asg()["Instances"]]

    def lifecycle(self, ref: str) -> dict[str, Any]:
        found = self.account.autoscaling.describe_auto_scaling_instances(InstanceIds=[ref])
        return dict({i["InstanceId"]: i for i in found["AutoScalingInstances"]}.get(ref, {}))

    def ec2_state(self, ref: str) -> str:
        found = self.account.ec2.describe_instances(InstanceIds=[ref])
        return str(found["Reservations"][0]["Instances"][0]["State"]["Name"])

    def private_ip(self, ref: str) -> str:
        found = self.account.ec2.describe_instances(InstanceIds=[ref])
        return str(found["Reservations"][0]["Instances"][0]["PrivateIpAddress"])

    def targets(self, arn: str = "") -> dict[str, str]:
        health = self.account.elbv2.describe_target_health(
            TargetGroupArn=arn or self.target_group_arn
        )
        return {
            f"{d['Target']['Id']}:{d['Target']['Port']}": d["TargetHealth"]["State"]
            for d in health["TargetHealthDescriptions"]
        }

    def target_group(self, target_type: str) -> str:
        made = self.account.elbv2.create_target_group(
            Name=f"{self.name}-{target_type}",
            Protocol="HTTP",
            Port=80,
            VpcId=self.account.vpc,
            TargetType=target_type,
        )
        return str(made["TargetGroups"][0]["TargetGroupArn"])


@pytest.fixture
def fleet(account: Account) -> Fleet:
    name = f"web-{next(counter)}"
    account.autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=name,
        LaunchTemplate={"LaunchTemplateName": account.template, "Version": "$Latest"},
        MinSize=0,
        MaxSize=5,
        DesiredCapacity=2,
        VPCZoneIdentifier=",".join(account.subnets),
    )
    account.autoscaling.put_lifecycle_hook(
        LifecycleHookName="signalbox-drain",
        AutoScalingGroupName=name,
        LifecycleTransition="autoscaling:EC2_INSTANCE_TERMINATING",
        HeartbeatTimeout=300,
        DefaultResult="CONTINUE",
    )
    arn = account.elbv2.create_target_group(
        Name=name, Protocol="HTTP", Port=80, VpcId=account.vpc, TargetType="instance"
    )["TargetGroups"][0]["TargetGroupArn"]
    return Fleet(account, name, arn)


# -- launch and running ------------------------------------------------------------------------


def test_launch_raises_the_desired_capacity_and_returns_the_new_instances(fleet: Fleet) -> None:
    # given an ASG running 2 instances
    driver = fleet.driver()
    before = set(fleet.instance_ids())
    # when 2 more are launched
    launched = driver.launch(2)
    # then the ASG wants 4, asked for without waiting for its cooldown
    assert fleet.asg()["DesiredCapacity"] == 4
    (request,) = fleet.calls("SetDesiredCapacity")
    assert (request["DesiredCapacity"], request["HonorCooldown"]) == ("4", "false")
    # and the two new instances come back with their private IPs, port and zone
    assert len(launched) == 2
    assert {r.ref for r in launched} == set(fleet.instance_ids()) - before
    for running in launched:
        assert running.host == fleet.private_ip(running.ref)
        assert running.host.startswith("10.0.")
        assert running.port == PORT
        assert running.zone == fleet.lifecycle(running.ref)["AvailabilityZone"]


def test_a_launch_above_the_asg_maximum_is_refused_and_changes_nothing(fleet: Fleet) -> None:
    driver = fleet.driver()
    with pytest.raises(ScalingDriverError, match=r"desired capacity of 6, above .* MaxSize of 5"):
        driver.launch(4)
    assert fleet.asg()["DesiredCapacity"] == 2
    assert fleet.calls("SetDesiredCapacity") == []


def test_running_lists_in_service_instances_with_their_addresses(fleet: Fleet) -> None:
    # given one of the two instances put in Standby (out of service)
    serving, standby = fleet.instance_ids()
    fleet.account.autoscaling.enter_standby(
        AutoScalingGroupName=fleet.name, InstanceIds=[standby], ShouldDecrementDesiredCapacity=True
    )
    # when the driver lists what runs
    running = fleet.driver().running()
    # then only the serving one is there, with its address
    assert running == [
        Running(
            ref=serving,
            host=fleet.private_ip(serving),
            port=PORT,
            zone=fleet.lifecycle(serving)["AvailabilityZone"],
        )
    ]


def test_an_asg_that_does_not_exist_is_named_in_the_error(fleet: Fleet) -> None:
    driver = fleet.driver(auto_scaling_group_name="nowhere")
    with pytest.raises(ScalingDriverError, match="no Auto Scaling group named 'nowhere' in eu-"):
        driver.running()


# -- protection ----------------------------------------------------------------------------------


def test_protect_sets_and_clears_scale_in_protection(fleet: Fleet) -> None:
    ref, other = fleet.instance_ids()
    driver = fleet.driver()
    driver.protect(ref, True)
    assert fleet.lifecycle(ref)["ProtectedFromScaleIn"] is True
    assert fleet.lifecycle(other)["ProtectedFromScaleIn"] is False
    driver.protect(ref, False)
    assert fleet.lifecycle(ref)["ProtectedFromScaleIn"] is False


def test_the_asg_own_scale_in_skips_a_protected_instance(fleet: Fleet) -> None:
    # given one instance protected through the driver
    ref, other = fleet.instance_ids()
    fleet.driver().protect(ref, True)
    # when the ASG shrinks by itself
    fleet.account.autoscaling.set_desired_capacity(
        AutoScalingGroupName=fleet.name, DesiredCapacity=1
    )
    # then it took the unprotected one
    assert fleet.instance_ids() == [ref]
    assert fleet.ec2_state(other) == "terminated"


# -- terminate and the lifecycle hook --------------------------------------------------------


def test_terminate_deregisters_first_then_shrinks_the_asg(fleet: Fleet) -> None:
    # given an instance registered in the target group
    ref, other = fleet.instance_ids()
    driver = fleet.driver()
    driver.register_target(ref)
    assert fleet.targets() == {f"{ref}:{PORT}": "healthy"}
    # when it is terminated
    driver.terminate(ref, grace_seconds=30)
    # then the target group no longer routes to it, the ASG wants one fewer (no replacement)
    # and the instance has left the group
    assert fleet.targets() == {}
    asg = fleet.asg()
    assert asg["DesiredCapacity"] == 1
    assert [i["InstanceId"] for i in asg["Instances"]] == [other]
    changes = ("DeregisterTargets", "TerminateInstanceInAutoScalingGroup")
    assert [r["Action"] for r in fleet.sent if r["Action"] in changes] == list(changes)
    (request,) = fleet.calls("TerminateInstanceInAutoScalingGroup")
    assert request == {
        "Action": "TerminateInstanceInAutoScalingGroup",
        "Version": "2011-01-01",
        "InstanceId": ref,
        "ShouldDecrementDesiredCapacity": "true",
    }
    # moto has no Terminating:Wait: the hook holds nothing and EC2 terminates it at once.
    # AWS would list it as Terminating:Wait until lifecycle_complete() or the hook's timeout.
    assert fleet.lifecycle(ref) == {}
    assert fleet.ec2_state(ref) == "terminated"


def test_terminating_a_gone_instance_again_is_a_no_op(fleet: Fleet) -> None:
    ref, _ = fleet.instance_ids()
    driver = fleet.driver()
    driver.terminate(ref, grace_seconds=30)
    driver.terminate(ref, grace_seconds=30)
    assert fleet.asg()["DesiredCapacity"] == 1
    assert len(fleet.calls("TerminateInstanceInAutoScalingGroup")) == 1


def test_without_a_hook_or_target_group_terminate_goes_straight_to_aws(fleet: Fleet) -> None:
    ref, _ = fleet.instance_ids()
    driver = fleet.driver(lifecycle_hook_name="", target_group_arn="")
    driver.terminate(ref, grace_seconds=0)
    assert fleet.ec2_state(ref) == "terminated"
    assert fleet.asg()["DesiredCapacity"] == 1


def test_it_refuses_to_terminate_an_instance_of_another_asg(fleet: Fleet, account: Account) -> None:
    # given a second ASG of the same account
    stranger = Fleet(account, fleet.name + "-other", fleet.target_group_arn)
    account.autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=stranger.name,
        LaunchTemplate={"LaunchTemplateName": account.template, "Version": "$Latest"},
        MinSize=0,
        MaxSize=2,
        DesiredCapacity=1,
        VPCZoneIdentifier=account.subnets[0],
    )
    (theirs,) = stranger.instance_ids()
    # when our group is asked to terminate their instance, it refuses and nothing happens
    with pytest.raises(ScalingDriverError, match=f"belongs to Auto Scaling group {stranger.name}"):
        fleet.driver().terminate(theirs, grace_seconds=30)
    assert stranger.instance_ids() == [theirs]


def test_heartbeat_and_complete_name_the_hook_the_group_and_the_instance(fleet: Fleet) -> None:
    # given an instance being terminated under the hook
    ref, _ = fleet.instance_ids()
    driver = fleet.driver()
    # an instance the hook does not hold is not completed (there is nothing to complete)
    driver.lifecycle_complete(ref)
    assert fleet.calls("CompleteLifecycleAction") == []
    # moto never holds an instance in Terminating:Wait; the one read of that state stands in
    # for what AWS would answer (the only stand-in in this file)
    driver.lifecycle_state = lambda ref: "Terminating:Wait"  # type: ignore[method-assign]
    # when the instance is still draining, then ready: moto implements neither call (HTTP
    # 500), which reaches the caller as an error naming the call, without the secret
    with pytest.raises(ScalingDriverError, match="RecordLifecycleActionHeartbeat") as beat:
        driver.lifecycle_heartbeat(ref)
    with pytest.raises(ScalingDriverError, match="CompleteLifecycleAction") as done:
        driver.lifecycle_complete(ref)
    # then the requests AWS would act on went out as its API wants them
    hook = {"LifecycleHookName": fleet.hook, "AutoScalingGroupName": fleet.name, "InstanceId": ref}
    assert fleet.calls("RecordLifecycleActionHeartbeat") == [
        {"Action": "RecordLifecycleActionHeartbeat", "Version": "2011-01-01", **hook}
    ]
    assert fleet.calls("CompleteLifecycleAction") == [
        {
            "Action": "CompleteLifecycleAction",
            "Version": "2011-01-01",
            "LifecycleActionResult": "CONTINUE",
            **hook,
        }
    ]
    for error in (beat.value, done.value):
        assert SECRET not in str(error) and KEY_ID not in str(error)
        assert f"for Auto Scaling group {fleet.name}" in str(error)


def test_without_a_hook_heartbeat_and_complete_ask_nothing(fleet: Fleet) -> None:
    ref, _ = fleet.instance_ids()
    driver = fleet.driver(lifecycle_hook_name="")
    driver.lifecycle_heartbeat(ref)
    driver.lifecycle_complete(ref)
    assert fleet.sent == []


# -- the target group ----------------------------------------------------------------------------


def test_targets_are_registered_when_healthy_and_deregistered_before_drain(fleet: Fleet) -> None:
    ref, _ = fleet.instance_ids()
    driver = fleet.driver()
    # when the instance turned healthy
    driver.register_target(ref)
    # then the target group routes to it on the configured port; the drain is not confirmed
    assert fleet.targets() == {f"{ref}:{PORT}": "healthy"}
    assert driver.target_state(ref) == "healthy"
    assert driver.drain_confirmed(ref) is False
    # when it is drained
    driver.deregister_target(ref)
    # then it is gone (moto skips the deregistration delay: AWS shows `draining` meanwhile)
    assert fleet.targets() == {}
    assert driver.target_state(ref) == "unused"
    assert driver.drain_confirmed(ref) is True
    # and deregistering again asks nothing more of AWS
    driver.deregister_target(ref)
    assert len(fleet.calls("DeregisterTargets")) == 1


def test_a_draining_target_is_not_confirmed_gone(fleet: Fleet) -> None:
    # given a registered instance terminated behind Signalbox's back: moto's one way to a
    # target in `draining`
    ref, _ = fleet.instance_ids()
    driver = fleet.driver()
    driver.register_target(ref)
    fleet.account.ec2.terminate_instances(InstanceIds=[ref])
    # then the drain is not confirmed while the load balancer is still draining it
    assert driver.target_state(ref) == "draining"
    assert driver.drain_confirmed(ref) is False


def test_an_ip_target_group_gets_the_private_address(fleet: Fleet) -> None:
    ref, _ = fleet.instance_ids()
    arn = fleet.target_group("ip")
    driver = fleet.driver(target_group_arn=arn)
    driver.register_target(ref)
    assert fleet.targets(arn) == {f"{fleet.private_ip(ref)}:{PORT}": "healthy"}
    driver.deregister_target(ref)
    assert fleet.targets(arn) == {}


def test_without_a_target_group_the_traffic_router_does_the_routing(fleet: Fleet) -> None:
    ref, _ = fleet.instance_ids()
    driver = fleet.driver(target_group_arn="")
    driver.register_target(ref)
    driver.deregister_target(ref)
    assert (driver.target_state(ref), driver.drain_confirmed(ref)) == ("", True)
    assert fleet.targets() == {}


def test_an_aws_refusal_is_reported_without_the_credentials(fleet: Fleet) -> None:
    ref, _ = fleet.instance_ids()
    missing = fleet.target_group_arn[:-4] + "0000"
    with pytest.raises(ScalingDriverError) as refused:
        fleet.driver(target_group_arn=missing).register_target(ref)
    message = str(refused.value)
    assert message.startswith(
        f"AWS refused DescribeTargetGroups for Auto Scaling group {fleet.name}"
    )
    assert "TargetGroupNotFound" in message
    assert SECRET not in message and KEY_ID not in message


# -- checking the setup, the endpoint guard, the registry ---------------------------------------


def test_verify_passes_a_group_set_up_as_documented(fleet: Fleet) -> None:
    assert fleet.driver().verify() == []


def test_verify_names_what_does_not_fit(fleet: Fleet) -> None:
    # given the target group attached to the ASG and a launching hook under our hook's name
    fleet.account.autoscaling.attach_load_balancer_target_groups(
        AutoScalingGroupName=fleet.name, TargetGroupARNs=[fleet.target_group_arn]
    )
    fleet.account.autoscaling.put_lifecycle_hook(
        LifecycleHookName="on-launch",
        AutoScalingGroupName=fleet.name,
        LifecycleTransition="autoscaling:EC2_INSTANCE_LAUNCHING",
    )
    # then both are explained, and a hook name the ASG lacks too
    assert fleet.driver(lifecycle_hook_name="on-launch").verify() == [
        "the target group is attached to the Auto Scaling group: AWS would give new instances "
        "traffic before Signalbox's health checks pass; detach it",
        "the lifecycle hook on-launch is for autoscaling:EC2_INSTANCE_LAUNCHING, not "
        "autoscaling:EC2_INSTANCE_TERMINATING",
    ]
    assert fleet.driver(lifecycle_hook_name="gone").verify()[1] == (
        "the Auto Scaling group has no lifecycle hook named gone"
    )


def test_a_metadata_endpoint_is_refused_before_any_connection(fleet: Fleet) -> None:
    group = ScalingGroup(
        driver=DriverKind.AWS_ASG,
        driver_config={**fleet.config(), "endpoint_url": "http://169.254.169.254/"},
    )
    with pytest.raises(ScalingDriverError, match=r"driver_config\.endpoint_url: refused"):
        AutoScalingGroupDriver(group)


def test_clean_config_keeps_only_the_known_settings() -> None:
    config = {"region": "eu-west-1", "auto_scaling_group_name": "web", "port": 8080}
    assert clean_config(config) == config


# -- the group API -------------------------------------------------------------------------------

ASG_CONFIG = {
    "region": "eu-west-1",
    "auto_scaling_group_name": "checkout-production",
    "port": 8080,
    "target_group_arn": "arn:aws:elasticloadbalancing:eu-west-1:123456789012:"
    "targetgroup/checkout/6d0ecf831eec9f09",
    "lifecycle_hook_name": "signalbox-drain",
}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"auto_scaling_group_name": None}, "driver_config.auto_scaling_group_name", "required"),
        ({"port": None}, "driver_config.port", "required for aws_asg"),
        ({"port": 0}, "driver_config.port", "1 to 65535"),
        ({"port": "8080"}, "driver_config.port", "a whole number"),
        ({"region": "Ireland"}, "driver_config.region", "such as eu-west-1"),
        ({"target_group_arn": "tg-checkout"}, "driver_config.target_group_arn", "targetgroup/"),
        ({"lifecycle_hook_name": "drain me"}, "driver_config.lifecycle_hook_name", "letters"),
        ({"group_name": "web"}, "driver_config.group_name", "unknown setting"),
        (
            {"endpoint_url": "http://169.254.169.254/"},
            "driver_config.endpoint_url",
            "cloud metadata",
        ),
    ],
)
def test_a_bad_asg_driver_config_answers_400_naming_the_setting(
    api_as: Any, routed: Any, changes: dict[str, Any], field: str, words: str
) -> None:
    # given an aws_asg group body with one bad setting (None: left out)
    config = {**ASG_CONFIG, **changes}
    body = group_body(
        driver="aws_asg", driver_config={k: v for k, v in config.items() if v is not None}
    )
    # when it is posted
    answer = api_as("owner").post("/api/v1/scaling/groups", body, format="json")
    # then the answer names that setting, and nothing is saved
    assert answer.status_code == 400, answer.json()
    fields = answer.json()["error"]["fields"]
    assert field in fields, fields
    assert any(words in reason for reason in fields[field]), fields
    assert not ScalingGroup.objects.exists()


@pytest.mark.django_db
def test_malformed_asg_credentials_answer_400_without_echoing_them(
    api_as: Any, routed: Any
) -> None:
    body = group_body(driver="aws_asg", driver_config=ASG_CONFIG, credentials="no-colon-secret")
    answer = api_as("owner").post("/api/v1/scaling/groups", body, format="json")
    assert answer.status_code == 400
    assert "ACCESS_KEY_ID:SECRET_ACCESS_KEY" in answer.json()["error"]["fields"]["credentials"][0]
    assert "no-colon-secret" not in answer.content.decode()


@pytest.mark.django_db
def test_a_good_asg_driver_config_is_saved(api_as: Any, routed: Any) -> None:
    body = group_body(driver="aws_asg", driver_config=ASG_CONFIG, credentials=f"{KEY_ID}:{SECRET}")
    answer = api_as("owner").post("/api/v1/scaling/groups", body, format="json")
    assert answer.status_code == 201, answer.json()
    assert answer.json()["driver_config"] == ASG_CONFIG
    assert SECRET not in answer.content.decode()
    assert isinstance(driver_of(ScalingGroup.objects.get()), AutoScalingGroupDriver)


@pytest.mark.django_db
def test_an_asg_with_a_target_group_needs_no_traffic_route(api_as: Any, world: Any) -> None:
    # given checkout has no traffic route in production
    with_group = {
        **ASG_CONFIG,
        "target_group_arn": "arn:aws:elasticloadbalancing:eu-west-1:123456789012:"
        "targetgroup/checkout/6d0ecf831eec9f09",
    }
    without = {k: v for k, v in ASG_CONFIG.items() if k != "target_group_arn"}
    owner = api_as("owner")
    # an ASG whose target group routes the instances is accepted
    answer = owner.post(
        "/api/v1/scaling/groups", group_body(driver="aws_asg", driver_config=with_group),
        format="json",
    )  # fmt: skip
    assert answer.status_code == 201, answer.json()
    ScalingGroup.objects.all().delete()
    # one without is refused, naming what to add
    answer = owner.post(
        "/api/v1/scaling/groups", group_body(driver="aws_asg", driver_config=without),
        format="json",
    )  # fmt: skip
    assert answer.status_code == 400
    assert "target_group_arn" in answer.json()["error"]["fields"]["service"][0]


# -- the lifecycle on an ASG ---------------------------------------------------------------------


@pytest.mark.django_db
def test_a_scale_in_on_an_asg_deregisters_starts_the_hooked_termination_then_completes(
    fleet: Fleet, world: Any
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from catalog.choices import Lifecycle
    from catalog.models import Instance
    from scaling import lifecycle
    from scaling.choices import TerminationState
    from scaling.models import Termination

    # given a group of two ASG instances, both in the target group, and no Signalbox route
    driver = fleet.driver()
    group = ScalingGroup.objects.create(
        service=world.service,
        environment=world.production,
        driver=DriverKind.AWS_ASG,
        driver_config=fleet.config(),
        credentials=f"{KEY_ID}:{SECRET}",
        min_instances=1,
        max_instances=5,
        desired=2,
        enabled=False,
    )
    refs = fleet.instance_ids()
    for n, ref in enumerate(refs):
        driver.register_target(ref)
        Instance.objects.create(
            service=world.service,
            environment=world.production,
            host=fleet.private_ip(ref),
            port=PORT,
            lifecycle=Lifecycle.ACTIVE,
            labels={"driver_ref": ref},
            registered_at=timezone.now() - timedelta(minutes=10 - n),
        )
    # when the group wants one
    ScalingGroup.objects.filter(pk=group.pk).update(desired=1)
    lifecycle.converge(group.pk)  # chosen, deregistered
    lifecycle.converge(group.pk)  # the target group no longer routes: confirmed
    termination = Termination.objects.get()
    # then, before the instance says it is ready, AWS already stopped routing to it and its
    # termination started (a real ASG holds it in Terminating:Wait on the hook meanwhile)
    assert termination.state == TerminationState.AWAITING_READY
    assert termination.message == "the platform stopped routing to it"
    assert termination.driver_ref == refs[0]  # the oldest
    assert f"{refs[0]}:{PORT}" not in fleet.targets()
    assert fleet.asg()["DesiredCapacity"] == 1
    # and once it is ready, the termination completes (moto holds nothing, so the
    # CompleteLifecycleAction for an instance AWS no longer holds is skipped)
    lifecycle.ready_to_terminate(termination, "done")
    lifecycle.converge(group.pk)
    termination.refresh_from_db()
    assert (termination.state, termination.ending) == (TerminationState.TERMINATED, "ready"), (
        termination.message
    )
    assert fleet.ec2_state(refs[0]) == "terminated"
    assert fleet.targets() == {f"{refs[1]}:{PORT}": "healthy"}
