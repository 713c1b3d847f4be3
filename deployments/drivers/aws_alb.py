"""AWS Application Load Balancer through boto3: a forward action with two weighted target groups,
and the groups' CloudWatch metrics for analysis."""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, ReadTimeoutError

from deployments.drivers.base import (
    Applied,
    Difference,
    Driver,
    DriverError,
    Member,
    Observed,
    Pool,
    Split,
    Target,
    TargetStats,
    TransientError,
)

# Pool names (see Driver.wanted_pools): a rule's forward action, a listener's default
# action, a target group's targets.
RULE, LISTENER, GROUP = "rule:", "listener:", "group:"
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
        return forward_weights(actions)

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
        self._forward(
            self._forward_pool(),
            {stable_group: 100 - split.canary_percent, canary_group: split.canary_percent},
        )
        applied = self.read(split, state)
        if abs(applied.canary_percent - split.canary_percent) > 0.01:
            raise DriverError(
                f"weights read back from the ALB ({applied.weights}) differ from those set "
                f"({100 - split.canary_percent}/{split.canary_percent})"
            )
        return applied

    def _forward_pool(self) -> str:
        """The pool name of the route's forward action: its rule, else its listener's default."""
        if self.route.get("rule_arn"):
            return f"{RULE}{self.route['rule_arn']}"
        if not self.route.get("listener_arn"):
            raise DriverError("an ALB route needs a rule ARN or a listener ARN")
        return f"{LISTENER}{self.route['listener_arn']}"

    def _forward(self, pool: str, weights: dict[str, int]) -> None:
        """Set the rule's (or listener's) forward action to these weighted groups."""
        action = {
            "Type": "forward",
            "ForwardConfig": {
                "TargetGroups": [
                    {"TargetGroupArn": group, "Weight": weight} for group, weight in weights.items()
                ]
            },
        }
        if pool.startswith(RULE):
            self._aws("modify_rule", RuleArn=pool.removeprefix(RULE), Actions=[action])
        else:
            self._aws(
                "modify_listener",
                ListenerArn=pool.removeprefix(LISTENER),
                DefaultActions=[action],
            )

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

    # -- reconciling -----------------------------------------------------------------------

    def wanted_pools(
        self, split: Split | None, drained: tuple[Target, ...], state: dict[str, Any]
    ) -> dict[str, Pool]:
        """The forward action's two weights, and each group's targets as `apply` leaves them
        (the stable group's only while it takes traffic); {} until the groups are chosen."""
        stable_group, canary_group = state.get("stable_group"), state.get("canary_group")
        if not stable_group or not canary_group:
            return {}
        pools: dict[str, Pool] = {}
        if split is not None:
            percent = split.canary_percent
            pools[self._forward_pool()] = Pool(
                {stable_group: Member(weight=100 - percent), canary_group: Member(weight=percent)}
            )
            pools[f"{GROUP}{canary_group}"] = Pool({t.address: Member() for t in split.canary})
            if percent < 100:
                pools[f"{GROUP}{stable_group}"] = Pool({t.address: Member() for t in split.stable})
        if drained:
            pool = pools.setdefault(f"{GROUP}{stable_group}", Pool(exclusive=False))
            pool.members |= {t.address: Member(serving=False) for t in drained}
        return pools

    def observe(self, pools: Collection[str]) -> Observed:
        """The rules' and listeners' forward actions (one call each kind) and the groups'
        targets (one call per group: DescribeTargetHealth takes one group)."""
        observed: Observed = {}
        rules = [p.removeprefix(RULE) for p in pools if p.startswith(RULE)]
        if rules:
            for rule in self._aws("describe_rules", RuleArns=rules)["Rules"]:
                observed[f"{RULE}{rule['RuleArn']}"] = _weights(rule.get("Actions", []))
        listeners = [p.removeprefix(LISTENER) for p in pools if p.startswith(LISTENER)]
        if listeners:
            found = self._aws("describe_listeners", ListenerArns=listeners)["Listeners"]
            for listener in found:
                key = f"{LISTENER}{listener['ListenerArn']}"
                observed[key] = _weights(listener.get("DefaultActions", []))
        for pool in (p for p in pools if p.startswith(GROUP)):
            health = self._aws("describe_target_health", TargetGroupArn=pool.removeprefix(GROUP))
            observed[pool] = {
                f"{d['Target']['Id']}:{d['Target'].get('Port')}": Member(
                    serving=d.get("TargetHealth", {}).get("State") != "draining"
                )
                for d in health["TargetHealthDescriptions"]
            }
        return observed

    def repair(self, differences: list[Difference], wanted: dict[str, Pool]) -> None:
        """A forward action is set whole, from the wanted pool; targets are (de)registered."""
        for pool in dict.fromkeys(d.pool for d in differences):
            if not pool.startswith(GROUP):
                weights = {group: m.weight or 0 for group, m in wanted[pool].members.items()}
                self._forward(pool, weights)
                continue
            group = pool.removeprefix(GROUP)
            ours = [d for d in differences if d.pool == pool]
            register = [_target(d.member) for d in ours if d.wanted.takes_traffic]
            leave = [_target(d.member) for d in ours if not d.wanted.takes_traffic]
            if register:
                self._aws("register_targets", TargetGroupArn=group, Targets=register)
            if leave:
                self._aws("deregister_targets", TargetGroupArn=group, Targets=leave)

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


def forward_weights(actions: list[dict[str, Any]]) -> dict[str, int]:
    """Target group ARN -> weight in the first forward action of a rule or listener."""
    for action in actions:
        if action.get("Type") != "forward":
            continue
        groups = (action.get("ForwardConfig") or {}).get("TargetGroups")
        if groups:
            return {g["TargetGroupArn"]: int(g.get("Weight", 1)) for g in groups}
        if action.get("TargetGroupArn"):
            return {action["TargetGroupArn"]: 1}
    return {}


def _weights(actions: list[dict[str, Any]]) -> dict[str, Member]:
    return {group: Member(weight=weight) for group, weight in forward_weights(actions).items()}


def _target(address: str) -> dict[str, Any]:
    host, _, port = address.rpartition(":")
    return {"Id": host, "Port": int(port)}


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
