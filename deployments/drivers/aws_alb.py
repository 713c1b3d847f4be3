"""AWS Application Load Balancer through boto3: a forward action with two weighted target groups."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, ReadTimeoutError

from deployments.drivers.base import (
    Applied,
    Driver,
    DriverError,
    Split,
    Target,
    TargetStats,
    TransientError,
)

THROTTLED = {"Throttling", "ThrottlingException", "RequestLimitExceeded", "ServiceUnavailable"}


class ALBDriver(Driver):
    """The route's rule (or the listener's default action) forwards to a stable and a canary
    target group; which of the two is stable is decided at the first change and remembered,
    so consecutive rollouts alternate between the groups (blue/green)."""

    _client: Any = None

    def client(self) -> Any:
        if self._client is not None:
            return self._client
        options: dict[str, Any] = {
            "region_name": self.connection.get("region") or "us-east-1",
            # Our own retries and breaker apply; botocore's would multiply them.
            "config": Config(
                connect_timeout=self.timeout,
                read_timeout=self.timeout,
                retries={"max_attempts": 1, "mode": "standard"},
            ),
        }
        if self.connection.get("endpoint_url"):
            options["endpoint_url"] = self.connection["endpoint_url"]
        if self.credentials:
            key_id, _, secret = self.credentials.partition(":")
            options["aws_access_key_id"] = key_id
            options["aws_secret_access_key"] = secret
        self._client = boto3.client("elbv2", **options)
        return self._client

    def _aws(self, operation: str, **kwargs: Any) -> Any:
        def run() -> Any:
            try:
                return getattr(self.client(), operation)(**kwargs)
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                message = exc.response.get("Error", {}).get("Message", str(exc))
                if code in THROTTLED:
                    raise TransientError(f"{operation}: {code}") from exc
                raise DriverError(f"AWS refused {operation}: {code}: {message}") from exc
            except (ConnectionError, ReadTimeoutError) as exc:
                raise TransientError(f"{operation}: {exc}") from exc
            except BotoCoreError as exc:
                raise DriverError(f"{operation}: {exc}") from exc

        return self.call(operation, run)

    @property
    def groups(self) -> list[str]:
        groups = list(self.route.get("target_group_arns") or [])
        if len(groups) != 2:
            raise DriverError("an ALB route needs exactly two target group ARNs (blue and green)")
        return groups

    def _forward_weights(self) -> dict[str, int]:
        rule_arn = self.route.get("rule_arn")
        if rule_arn:
            rules = self._aws("describe_rules", RuleArns=[rule_arn])["Rules"]
            actions = rules[0]["Actions"] if rules else []
        else:
            listener_arn = self.route.get("listener_arn")
            if not listener_arn:
                raise DriverError("an ALB route needs a rule ARN or a listener ARN")
            listeners = self._aws("describe_listeners", ListenerArns=[listener_arn])["Listeners"]
            actions = listeners[0]["DefaultActions"] if listeners else []
        for action in actions:
            if action.get("Type") != "forward":
                continue
            groups = (action.get("ForwardConfig") or {}).get("TargetGroups")
            if groups:
                return {g["TargetGroupArn"]: int(g.get("Weight", 1)) for g in groups}
            if action.get("TargetGroupArn"):
                return {action["TargetGroupArn"]: 1}
        return {}

    def prepare(self, split: Split, state: dict[str, Any]) -> dict[str, Any]:
        if state.get("stable_group"):
            return state
        weights = self._forward_weights()
        first, second = self.groups
        stable = first if weights.get(first, 0) >= weights.get(second, 0) else second
        canary = second if stable == first else first
        return {**state, "stable_group": stable, "canary_group": canary}

    def _sync_targets(self, group: str, targets: tuple[Target, ...]) -> None:
        """Make the group hold exactly these targets (registering is idempotent in AWS)."""
        health = self._aws("describe_target_health", TargetGroupArn=group)
        present = {
            f"{d['Target']['Id']}:{d['Target'].get('Port')}": d["Target"]
            for d in health["TargetHealthDescriptions"]
            if d.get("TargetHealth", {}).get("State") != "draining"
        }
        wanted = {t.address for t in targets}
        stale = [target for address, target in present.items() if address not in wanted]
        if stale:
            self._aws("deregister_targets", TargetGroupArn=group, Targets=stale)
        missing = [t for t in targets if t.address not in present]
        if missing:
            self._aws(
                "register_targets",
                TargetGroupArn=group,
                Targets=[{"Id": t.host, "Port": t.port} for t in missing],
            )

    def apply(self, split: Split, state: dict[str, Any]) -> Applied:
        stable_group, canary_group = state["stable_group"], state["canary_group"]
        if split.canary_percent > 0 and not split.canary:
            raise DriverError("cannot send traffic to the new version: it has no instances")
        if split.canary_percent < 100 and not split.stable:
            raise DriverError("cannot send traffic to stable: it has no instances")
        self._sync_targets(canary_group, split.canary)
        if split.canary_percent < 100:
            self._sync_targets(stable_group, split.stable)
        action = {
            "Type": "forward",
            "ForwardConfig": {
                "TargetGroups": [
                    {"TargetGroupArn": stable_group, "Weight": 100 - split.canary_percent},
                    {"TargetGroupArn": canary_group, "Weight": split.canary_percent},
                ]
            },
        }
        if self.route.get("rule_arn"):
            self._aws("modify_rule", RuleArn=self.route["rule_arn"], Actions=[action])
        else:
            self._aws(
                "modify_listener", ListenerArn=self.route["listener_arn"], DefaultActions=[action]
            )
        applied = self.read(split, state)
        if abs(applied.canary_percent - split.canary_percent) > 0.01:
            raise DriverError(
                f"weights read back from the ALB ({applied.weights}) differ from those set "
                f"({100 - split.canary_percent}/{split.canary_percent})"
            )
        return applied

    def read(self, split: Split, state: dict[str, Any]) -> Applied:
        weights = self._forward_weights()
        total = sum(weights.values())
        canary = weights.get(state.get("canary_group", ""), 0)
        share = round(100.0 * canary / total, 2) if total else 0.0
        return Applied(canary_percent=share, weights=weights)

    def drain(self, targets: tuple[Target, ...], state: dict[str, Any]) -> None:
        # Deregistering is how an ALB drains: in-flight requests finish within the group's
        # deregistration delay, new ones go elsewhere.
        if targets:
            self._aws(
                "deregister_targets",
                TargetGroupArn=state.get("stable_group") or self.groups[0],
                Targets=[{"Id": t.host, "Port": t.port} for t in targets],
            )

    def ready(self, targets: tuple[Target, ...], state: dict[str, Any]) -> None:
        group = state.get("stable_group") or self.groups[0]
        if targets:
            self._aws(
                "register_targets",
                TargetGroupArn=group,
                Targets=[{"Id": t.host, "Port": t.port} for t in targets],
            )

    def stats(self, targets: tuple[Target, ...], state: dict[str, Any]) -> dict[str, TargetStats]:
        # Per-target request counts of an ALB live in CloudWatch, which this driver does not
        # read; the lb_stats provider therefore reports "no data" (inconclusive) for ALBs.
        return {}
