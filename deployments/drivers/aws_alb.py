"""AWS Application Load Balancer through boto3: a forward action with two weighted target groups,
and the groups' CloudWatch metrics for analysis."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
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
CLOUDWATCH_PERIOD = 60  # seconds: ALB metrics are published per minute
# Query id suffix: (metric in AWS/ApplicationELB per TargetGroup and LoadBalancer, statistic)
ALB_METRICS = {
    "requests": ("RequestCount", "Sum"),
    "2xx": ("HTTPCode_Target_2XX_Count", "Sum"),
    "3xx": ("HTTPCode_Target_3XX_Count", "Sum"),
    "4xx": ("HTTPCode_Target_4XX_Count", "Sum"),
    "5xx": ("HTTPCode_Target_5XX_Count", "Sum"),
    "latency": ("TargetResponseTime", "Average"),
}


class ALBDriver(Driver):
    """The route's rule (or the listener's default action) forwards to a stable and a canary
    target group; which of the two is stable is decided at the first change and remembered,
    so consecutive rollouts alternate between the groups (blue/green)."""

    _client: Any = None
    _cloudwatch: Any = None
    windowed_stats = True

    def _options(self, endpoint: str) -> dict[str, Any]:
        options: dict[str, Any] = {
            "region_name": self.connection.get("region") or "us-east-1",
            # Our own retries and breaker apply; botocore's would multiply them.
            "config": Config(
                connect_timeout=self.timeout,
                read_timeout=self.timeout,
                retries={"max_attempts": 1, "mode": "standard"},
            ),
        }
        if endpoint:
            options["endpoint_url"] = endpoint
        if self.credentials:
            key_id, _, secret = self.credentials.partition(":")
            options["aws_access_key_id"] = key_id
            options["aws_secret_access_key"] = secret
        return options

    def client(self) -> Any:
        if self._client is None:
            endpoint = self.connection.get("endpoint_url") or ""
            self._client = boto3.client("elbv2", **self._options(endpoint))
        return self._client

    def cloudwatch(self) -> Any:
        """CloudWatch with the same region and credentials; `cloudwatch_endpoint_url` (else
        `endpoint_url`) points it elsewhere, for tests."""
        if self._cloudwatch is None:
            endpoint = (
                self.connection.get("cloudwatch_endpoint_url")
                or self.connection.get("endpoint_url")
                or ""
            )
            self._cloudwatch = boto3.client("cloudwatch", **self._options(endpoint))
        return self._cloudwatch

    def _aws(self, operation: str, **kwargs: Any) -> Any:
        return self._run(self.client, operation, kwargs)

    def _cw(self, operation: str, **kwargs: Any) -> Any:
        return self._run(self.cloudwatch, operation, kwargs)

    def _run(self, client: Callable[[], Any], operation: str, kwargs: dict[str, Any]) -> Any:
        def run() -> Any:
            try:
                return getattr(client(), operation)(**kwargs)
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
        # An ALB has no per-target counters; its stats are per target group, over time, in
        # CloudWatch: see group_stats, which the lb_stats provider uses for this driver.
        return {}

    def _load_balancer_dimension(self) -> str:
        """CloudWatch's LoadBalancer dimension (app/NAME/ID), from the rule or listener ARN,
        else from the stable group's load balancer."""
        for arn in (self.route.get("rule_arn"), self.route.get("listener_arn")):
            resource = (arn or "").split(":", 5)[-1]  # listener[-rule]/app/NAME/ID/...
            parts = resource.split("/")
            if len(parts) >= 4 and parts[0] in ("listener", "listener-rule"):
                return "/".join(parts[1:4])
        found = self._aws("describe_target_groups", TargetGroupArns=[self.groups[0]])
        balancers = found["TargetGroups"][0].get("LoadBalancerArns") if found else None
        if not balancers:
            raise DriverError("the target groups are attached to no load balancer")
        return str(balancers[0]).split(":", 5)[-1].removeprefix("loadbalancer/")

    def group_stats(self, state: dict[str, Any], seconds: int) -> dict[str, TargetStats]:
        """Per side ("stable", "canary"): the target group's CloudWatch counts over the last
        `seconds` (at least 60, CloudWatch's resolution for ALB metrics). A side whose
        group has no datapoint in that time is left out."""
        if not state.get("stable_group") or not state.get("canary_group"):
            raise DriverError("the rollout has not chosen its stable and canary groups yet")
        seconds = max(CLOUDWATCH_PERIOD, int(seconds))
        balancer = self._load_balancer_dimension()
        sides = {"stable": state["stable_group"], "canary": state["canary_group"]}
        queries = []
        for side, group in sides.items():
            dimensions = [
                {"Name": "TargetGroup", "Value": group.split(":", 5)[-1]},
                {"Name": "LoadBalancer", "Value": balancer},
            ]
            for key, (metric, stat) in ALB_METRICS.items():
                queries.append(
                    {
                        "Id": f"{side}_{key}",
                        "MetricStat": {
                            "Metric": {
                                "Namespace": "AWS/ApplicationELB",
                                "MetricName": metric,
                                "Dimensions": dimensions,
                            },
                            "Period": CLOUDWATCH_PERIOD,
                            "Stat": stat,
                        },
                        "ReturnData": True,
                    }
                )
        end = datetime.now(UTC)
        series: dict[str, dict[datetime, float]] = {}
        token = None
        while True:
            page = self._cw(
                "get_metric_data",
                MetricDataQueries=queries,
                StartTime=end - timedelta(seconds=seconds),
                EndTime=end,
                **({"NextToken": token} if token else {}),
            )
            for result in page.get("MetricDataResults", []):
                points = series.setdefault(result["Id"], {})
                stamps, values = result.get("Timestamps", []), result.get("Values", [])
                points.update(zip(stamps, values, strict=False))
            token = page.get("NextToken")
            if not token:
                break
        found = {}
        for side, group in sides.items():
            got = {key: series.get(f"{side}_{key}", {}) for key in ALB_METRICS}
            if not any(got.values()):
                continue
            codes = sum(sum(got[k].values()) for k in ("2xx", "3xx", "4xx", "5xx"))
            requests = sum(got["requests"].values()) if got["requests"] else codes
            found[side] = TargetStats(
                address=group,
                responses=int(requests),
                responses_2xx=int(sum(got["2xx"].values())),
                responses_5xx=int(sum(got["5xx"].values())),
                rtime_ms=_weighted_ms(got["latency"], got["requests"]),
            )
        return found


def _weighted_ms(latency: dict[datetime, float], requests: dict[datetime, float]) -> float | None:
    """TargetResponseTime's per-minute averages (seconds), weighted by each minute's requests."""
    if not latency:
        return None
    weights = [requests.get(at, 0.0) for at in latency]
    if sum(weights) > 0:
        mean = sum(v * w for v, w in zip(latency.values(), weights, strict=True)) / sum(weights)
    else:
        mean = sum(latency.values()) / len(latency)
    return round(mean * 1000, 1)
