"""AWS Auto Scaling groups through boto3: desired capacity, scale-in protection, the
Terminating:Wait lifecycle hook, and the target group Signalbox gives traffic through."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
from botocore.parsers import ResponseParserError

from controlplane import outbound
from controlplane.crypto import mask
from scaling.drivers.base import InstanceDriver, Running, ScalingDriverError
from scaling.models import ScalingGroup

# The ASG's lifecycle states of an instance that is starting or serving (Pending:Wait and
# Pending:Proceed exist when the group has a launch hook of its own).
ACTIVE_STATES = frozenset({"Pending", "Pending:Wait", "Pending:Proceed", "InService"})
# States of an instance already on its way out: terminating it again is a no-op.
HELD = "Terminating:Wait"  # the state a termination hook holds an instance in
LEAVING_PREFIXES = ("Terminating", "Terminated", "Detaching", "Detached", "Warmed:Terminat")
# An ASG lists a new instance as Pending, with its private IP, a few seconds after
# SetDesiredCapacity; launch() waits this long for them, and running() finds any later.
LIST_WAIT_SECONDS = 30.0
LIST_POLL_SECONDS = 1.0
# DescribeInstances takes at most 200 values per filter.
FILTER_CHUNK = 200
TARGET_GONE = frozenset({"unused"})  # DescribeTargetHealth: not registered (any more)
TARGET_TYPES = frozenset({"instance", "ip"})
ACCESS_DENIED = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"})
IAM_PREFIXES = {"elbv2": "elasticloadbalancing"}  # boto3's client name -> IAM's action prefix
NO_ACTIVE_ACTION = "No active Lifecycle Action"
TERMINATING_TRANSITION = "autoscaling:EC2_INSTANCE_TERMINATING"

# -- driver_config ----------------------------------------------------------------------------

REQUIRED = ("region", "auto_scaling_group_name", "port")
OPTIONAL = ("endpoint_url", "target_group_arn", "lifecycle_hook_name")
REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")
TARGET_GROUP_ARN = re.compile(
    r"^arn:aws[a-z-]*:elasticloadbalancing:[a-z0-9-]+:\d{12}:targetgroup/[A-Za-z0-9-]{1,32}/[0-9a-f]+$"
)
HOOK_NAME = re.compile(r"^[A-Za-z0-9/_-]{1,255}$")  # AWS: [A-Za-z0-9\-_\/]+, 1..255


class ConfigError(ValueError):
    """A driver_config setting is wrong: `field` names it (without `driver_config.`)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"driver_config.{field}: {reason}")
        self.field = field
        self.reason = reason


def clean_config(config: Any) -> dict[str, Any]:
    """The aws_asg driver_config, checked; raises ConfigError naming the first bad setting."""
    if not isinstance(config, dict):
        raise ConfigError("", "must be an object")
    unknown = sorted(set(config) - set(REQUIRED) - set(OPTIONAL))
    if unknown:
        known = ", ".join(sorted((*REQUIRED, *OPTIONAL)))
        raise ConfigError(unknown[0], f"unknown setting; use {known}")
    for name in REQUIRED:
        if config.get(name) in (None, ""):
            raise ConfigError(name, "required for aws_asg")
    for name in ("region", "auto_scaling_group_name", *OPTIONAL):
        if not isinstance(config.get(name, ""), str):
            raise ConfigError(name, "must be a string")
    port = config["port"]
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ConfigError("port", "the port the instances listen on: a whole number, 1 to 65535")
    if not REGION.match(config["region"]):
        raise ConfigError("region", "an AWS region code such as eu-west-1")
    if len(config["auto_scaling_group_name"]) > 255:
        raise ConfigError("auto_scaling_group_name", "at most 255 characters")
    arn = config.get("target_group_arn", "")
    if arn and not TARGET_GROUP_ARN.match(arn):
        raise ConfigError(
            "target_group_arn",
            "a target group ARN: arn:aws:elasticloadbalancing:REGION:ACCOUNT:targetgroup/NAME/ID",
        )
    hook = config.get("lifecycle_hook_name", "")
    if hook and not HOOK_NAME.match(hook):
        raise ConfigError(
            "lifecycle_hook_name", "1 to 255 letters, digits, '-', '_' or '/' (as AWS allows)"
        )
    endpoint = config.get("endpoint_url", "")
    if endpoint:
        reason = outbound.refusal(endpoint)
        if reason:
            raise ConfigError("endpoint_url", reason)
    return {name: config[name] for name in (*REQUIRED, *OPTIONAL) if name in config}


def credentials_problem(credentials: str) -> str:
    """Why these stored credentials cannot be used ("" when they can); never echoes them."""
    if not credentials:
        return ""
    key_id, _, secret = credentials.partition(":")
    if not key_id or not secret:
        return (
            "ACCESS_KEY_ID:SECRET_ACCESS_KEY (one colon between them), or empty for boto3's "
            "default chain (instance role, environment)"
        )
    return ""


@dataclass(frozen=True)
class Settings:
    """A group's driver_config, read once."""

    region: str
    group_name: str
    port: int
    endpoint_url: str = ""
    target_group_arn: str = ""
    hook_name: str = ""

    @classmethod
    def of(cls, group: ScalingGroup) -> Settings:
        try:
            config = clean_config(group.driver_config)
        except ConfigError as exc:
            raise ScalingDriverError(f"group {group.pk}: {exc}") from None
        return cls(
            region=config["region"],
            group_name=config["auto_scaling_group_name"],
            port=config["port"],
            endpoint_url=config.get("endpoint_url", ""),
            target_group_arn=config.get("target_group_arn", ""),
            hook_name=config.get("lifecycle_hook_name", ""),
        )


# -- the driver -------------------------------------------------------------------------------


class AutoScalingGroupDriver(InstanceDriver):
    """One ASG. Without a target group the service's traffic router (HAProxy, an ALB route)
    routes to the instances and the target-group calls are no-ops; with a lifecycle hook,
    terminate() only starts the termination and lifecycle_complete() finishes it."""

    connect_timeout = 3.0
    read_timeout = 10.0
    # botocore's standard mode retries throttling and 5xx answers with backoff; the
    # reconciler retries the step after that.
    attempts = 3

    def __init__(self, group: ScalingGroup) -> None:
        super().__init__(group)
        self.settings = Settings.of(group)
        self._clients: dict[str, Any] = {}
        self._target_type = ""

    def client(self, service: str) -> Any:
        """A boto3 client (autoscaling, ec2, elbv2) with the group's region and credentials."""
        if service not in self._clients:
            self._clients[service] = boto3.client(service, **self._options())
        return self._clients[service]

    def _options(self) -> dict[str, Any]:
        options: dict[str, Any] = {
            "region_name": self.settings.region,
            "config": Config(
                connect_timeout=self.connect_timeout,
                read_timeout=self.read_timeout,
                retries={"max_attempts": self.attempts, "mode": "standard"},
            ),
        }
        endpoint = self.settings.endpoint_url
        if endpoint:
            # Checked again at call time: the name may resolve elsewhere than when saved.
            reason = outbound.refusal(endpoint)
            if reason:
                raise ScalingDriverError(f"driver_config.endpoint_url: {reason}")
            options["endpoint_url"] = endpoint
        credentials = self.group.credentials or ""
        if credentials:
            if credentials_problem(credentials):
                raise ScalingDriverError(
                    f"the group's credentials must be {credentials_problem(credentials)}"
                )
            key_id, _, secret = credentials.partition(":")
            options["aws_access_key_id"] = key_id
            options["aws_secret_access_key"] = secret
        return options

    def _call(self, service: str, operation: str, **kwargs: Any) -> Any:
        client = self.client(service)
        name = _api_name(client, operation)
        where = f"{name} for Auto Scaling group {self.settings.group_name}"
        try:
            return getattr(client, operation)(**kwargs)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code, message = error.get("Code", ""), error.get("Message", "")
            hint = ""
            if code in ACCESS_DENIED:
                prefix = IAM_PREFIXES.get(service, service)
                hint = f" (the credentials need {prefix}:{name}; docs/scaling.md lists them)"
            raise ScalingDriverError(
                self._scrub(f"AWS refused {where}: {code}: {message}{hint}")
            ) from exc
        except NoCredentialsError:
            raise ScalingDriverError(
                f"{where}: no AWS credentials: set the group's credentials, or give the "
                "control plane a role or AWS_* environment variables"
            ) from None
        except ResponseParserError as exc:
            # What an endpoint that is not AWS (a proxy's error page, an emulator lacking the
            # call) answers; botocore's message carries the whole page.
            raise ScalingDriverError(
                f"{where} failed: the answer was not AWS's (an error page, or an endpoint "
                "that does not implement the call)"
            ) from exc
        except BotoCoreError as exc:
            first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ScalingDriverError(self._scrub(f"{where} failed: {first_line}")) from exc

    def _scrub(self, text: str) -> str:
        """An error as the operator sees it: never the credentials, never too long."""
        for part in (self.group.credentials or "").partition(":")[::2]:
            if part:
                text = text.replace(part, mask(part))
        return text[:400]

    # -- the ASG ------------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """The ASG as AWS describes it (DescribeAutoScalingGroups)."""
        found = self._call(
            "autoscaling",
            "describe_auto_scaling_groups",
            AutoScalingGroupNames=[self.settings.group_name],
        )["AutoScalingGroups"]
        if not found:
            raise ScalingDriverError(
                f"no Auto Scaling group named {self.settings.group_name!r} in "
                f"{self.settings.region}"
            )
        return dict(found[0])

    def launch(self, count: int) -> list[Running]:
        """SetDesiredCapacity(desired + count), then the new instances once the ASG lists them
        with their addresses (up to LIST_WAIT_SECONDS; any later ones show in running())."""
        if count <= 0:
            return []
        asg = self.describe()
        before = {i["InstanceId"] for i in asg["Instances"]}
        desired = int(asg["DesiredCapacity"]) + count
        if desired > int(asg["MaxSize"]):
            raise ScalingDriverError(
                f"launching {count} needs a desired capacity of {desired}, above the Auto "
                f"Scaling group's MaxSize of {asg['MaxSize']}: raise it in AWS"
            )
        self._call(
            "autoscaling",
            "set_desired_capacity",
            AutoScalingGroupName=self.settings.group_name,
            DesiredCapacity=desired,
            HonorCooldown=False,
        )
        deadline = time.monotonic() + LIST_WAIT_SECONDS
        while True:
            new = [r for r in self.running() if r.ref not in before]
            if len(new) >= count or time.monotonic() >= deadline:
                return new
            time.sleep(LIST_POLL_SECONDS)

    def running(self) -> list[Running]:
        """The ASG's Pending and InService instances with their private IPs; one without an
        address yet (EC2 is eventually consistent) is left out until it has one."""
        instances = [
            i for i in self.describe()["Instances"] if i["LifecycleState"] in ACTIVE_STATES
        ]
        addresses = self._private_ips([i["InstanceId"] for i in instances])
        return [
            Running(
                ref=i["InstanceId"],
                host=addresses[i["InstanceId"]],
                port=self.settings.port,
                zone=i.get("AvailabilityZone", ""),
            )
            for i in instances
            if addresses.get(i["InstanceId"])
        ]

    def _private_ips(self, refs: list[str]) -> dict[str, str]:
        # A filter, not InstanceIds: an id EC2 does not know yet is left out instead of
        # failing the whole call with InvalidInstanceID.NotFound.
        found: dict[str, str] = {}
        for start in range(0, len(refs), FILTER_CHUNK):
            token = ""
            while True:
                page = self._call(
                    "ec2",
                    "describe_instances",
                    Filters=[{"Name": "instance-id", "Values": refs[start : start + FILTER_CHUNK]}],
                    **({"NextToken": token} if token else {}),
                )
                for reservation in page.get("Reservations", []):
                    for instance in reservation.get("Instances", []):
                        if instance.get("PrivateIpAddress"):
                            found[instance["InstanceId"]] = instance["PrivateIpAddress"]
                token = page.get("NextToken", "")
                if not token:
                    break
        return found

    def lifecycle_state(self, ref: str) -> str:
        """The instance's LifecycleState in this ASG ("" when the ASG no longer has it)."""
        found = self._call("autoscaling", "describe_auto_scaling_instances", InstanceIds=[ref])
        for instance in found["AutoScalingInstances"]:
            if instance["AutoScalingGroupName"] != self.settings.group_name:
                raise ScalingDriverError(
                    f"{ref} belongs to Auto Scaling group {instance['AutoScalingGroupName']}, "
                    f"not {self.settings.group_name}: refusing to touch it"
                )
            return str(instance["LifecycleState"])
        return ""

    def terminate(self, ref: str, grace_seconds: float) -> None:
        """Deregister from the target group, then TerminateInstanceInAutoScalingGroup with
        ShouldDecrementDesiredCapacity (so the ASG does not replace it). With a lifecycle hook
        AWS holds the instance in Terminating:Wait until lifecycle_complete() or the hook's
        timeout. The grace is the instance's own: EC2 shuts its OS down (systemd's stop
        timeouts), which Signalbox cannot stretch."""
        state = self.lifecycle_state(ref)
        if not state or state.startswith(LEAVING_PREFIXES):
            return
        self.deregister_target(ref)
        self._call(
            "autoscaling",
            "terminate_instance_in_auto_scaling_group",
            InstanceId=ref,
            ShouldDecrementDesiredCapacity=True,
        )

    def protect(self, ref: str, protected: bool) -> None:
        self._call(
            "autoscaling",
            "set_instance_protection",
            AutoScalingGroupName=self.settings.group_name,
            InstanceIds=[ref],
            ProtectedFromScaleIn=protected,
        )

    def lifecycle_heartbeat(self, ref: str) -> None:
        """RecordLifecycleActionHeartbeat: restarts the hook's HeartbeatTimeout (within its
        GlobalTimeout: 100 x HeartbeatTimeout or 48 h, whichever is less). No hook: no-op."""
        if not self.settings.hook_name:
            return
        try:
            self._call(
                "autoscaling",
                "record_lifecycle_action_heartbeat",
                **self._hook_action(ref),
            )
        except ScalingDriverError as exc:
            if NO_ACTIVE_ACTION in str(exc):
                raise ScalingDriverError(
                    f"AWS holds no lifecycle action of {ref} under the hook "
                    f"{self.settings.hook_name}: it was not terminated yet, or the hook timed "
                    "out or was completed (then the instance is being terminated)"
                ) from exc
            raise

    def lifecycle_complete(self, ref: str) -> None:
        """CompleteLifecycleAction(CONTINUE): AWS finishes terminating the instance. A
        termination AWS no longer holds (completed, timed out) is already going: a no-op."""
        if not self.settings.hook_name:
            return
        if self.lifecycle_state(ref) != HELD:
            return  # not (or no longer) held by the hook: nothing to complete
        try:
            self._call(
                "autoscaling",
                "complete_lifecycle_action",
                LifecycleActionResult="CONTINUE",
                **self._hook_action(ref),
            )
        except ScalingDriverError as exc:
            if NO_ACTIVE_ACTION not in str(exc):
                raise

    def _hook_action(self, ref: str) -> dict[str, str]:
        return {
            "LifecycleHookName": self.settings.hook_name,
            "AutoScalingGroupName": self.settings.group_name,
            "InstanceId": ref,
        }

    # -- what the lifecycle asks of a platform that routes and holds ------------------------

    @property
    def routes_traffic(self) -> bool:
        return bool(self.settings.target_group_arn)

    def route_in(self, ref: str) -> None:
        self.register_target(ref)

    def route_out(self, ref: str) -> None:
        self.deregister_target(ref)

    def routed_out(self, ref: str) -> bool:
        return self.drain_confirmed(ref)

    @property
    def holds_termination(self) -> bool:
        return bool(self.settings.hook_name)

    # -- the target group ---------------------------------------------------------------------

    def register_target(self, ref: str) -> None:
        """Give the instance traffic (RegisterTargets): once its health checks pass."""
        if self.settings.target_group_arn:
            self._call(
                "elbv2",
                "register_targets",
                TargetGroupArn=self.settings.target_group_arn,
                Targets=[self._target(ref)],
            )

    def deregister_target(self, ref: str) -> None:
        """Stop new requests to the instance (DeregisterTargets); the group's deregistration
        delay lets in-flight ones finish. A target not registered is left alone."""
        if not self.settings.target_group_arn or self.target_state(ref) in TARGET_GONE:
            return
        self._call(
            "elbv2",
            "deregister_targets",
            TargetGroupArn=self.settings.target_group_arn,
            Targets=[self._target(ref)],
        )

    def target_state(self, ref: str) -> str:
        """The instance's DescribeTargetHealth state: initial, healthy, unhealthy, draining,
        unused (not registered), unavailable; "" without a target group."""
        if not self.settings.target_group_arn:
            return ""
        found = self._call(
            "elbv2",
            "describe_target_health",
            TargetGroupArn=self.settings.target_group_arn,
            Targets=[self._target(ref)],
        )["TargetHealthDescriptions"]
        return str(found[0]["TargetHealth"]["State"]) if found else "unused"

    def drain_confirmed(self, ref: str) -> bool:
        """The target group no longer routes to the instance: it was deregistered and has
        left `draining` (the deregistration delay is over). True without a target group."""
        return self.target_state(ref) in (TARGET_GONE | {""})

    def target_type(self) -> str:
        """The target group's TargetType (instance or ip), read once."""
        if not self._target_type:
            found = self._call(
                "elbv2", "describe_target_groups", TargetGroupArns=[self.settings.target_group_arn]
            )["TargetGroups"]
            kind = str(found[0].get("TargetType", "instance")) if found else ""
            if kind not in TARGET_TYPES:
                raise ScalingDriverError(
                    f"target group {self.settings.target_group_arn} has target type {kind!r}: "
                    "use a group of type instance or ip"
                )
            self._target_type = kind
        return self._target_type

    def _target(self, ref: str) -> dict[str, Any]:
        if self.target_type() == "instance":
            return {"Id": ref, "Port": self.settings.port}
        address = self._private_ips([ref]).get(ref)
        if not address:
            raise ScalingDriverError(f"EC2 knows no private IP of {ref}")
        return {"Id": address, "Port": self.settings.port}

    # -- setup check --------------------------------------------------------------------------

    def verify(self) -> list[str]:
        """What in AWS does not fit this group's settings (docs/scaling.md); empty if all does."""
        asg = self.describe()
        problems = []
        arn = self.settings.target_group_arn
        if arn and arn in asg.get("TargetGroupARNs", []):
            problems.append(
                "the target group is attached to the Auto Scaling group: AWS would give new "
                "instances traffic before Signalbox's health checks pass; detach it"
            )
        if arn:
            self.target_type()  # raises when the group is missing or of another type
        hook = self.settings.hook_name
        if hook:
            hooks = self._call(
                "autoscaling",
                "describe_lifecycle_hooks",
                AutoScalingGroupName=self.settings.group_name,
                LifecycleHookNames=[hook],
            )["LifecycleHooks"]
            if not hooks:
                problems.append(f"the Auto Scaling group has no lifecycle hook named {hook}")
            elif hooks[0]["LifecycleTransition"] != TERMINATING_TRANSITION:
                problems.append(
                    f"the lifecycle hook {hook} is for {hooks[0]['LifecycleTransition']}, "
                    f"not {TERMINATING_TRANSITION}"
                )
        return problems


def _api_name(client: Any, operation: str) -> str:
    """SetDesiredCapacity for set_desired_capacity, as AWS's docs and IAM name it."""
    return str(client.meta.method_to_api_mapping.get(operation, operation))
