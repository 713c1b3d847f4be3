"""The `process` driver: real instances of the demo fleet, started and stopped through the
fleet's control API (`POST /fleet/instances`, `DELETE /fleet/instances/<id>`).

driver_config: {"control_url": "http://127.0.0.1:8500", "version": "1.4.0"}; the fleet's
service and environment are the group's slugs unless `service`/`environment` say otherwise.
Every call goes through the outbound guard (a group's config is user-set), so the fleet's
network must be allowed in SIGNALBOX_OUTBOUND_ALLOWED_NETWORKS, as probes of it need anyway.

The drain notice is the webhook form of the handshake: the fleet's instance is told it is
draining, with the URLs and the lifecycle token to answer on, and answers itself when its
in-flight requests are done (docs/scaling.md, The handshake).
"""

from __future__ import annotations

from typing import Any

import httpx

from catalog.choices import Lifecycle
from catalog.models import Instance
from controlplane import outbound
from scaling.drivers.base import InstanceDriver, Running, ScalingDriverError

TIMEOUT = 5.0
CONFIG_FIELDS = frozenset({"control_url", "version", "service", "environment"})


def config_problems(config: Any) -> dict[str, str]:
    """Field -> what is wrong, for the API's 400 (empty when the config is usable)."""
    if not isinstance(config, dict):
        return {"driver_config": "must be an object"}
    problems = {
        f"driver_config.{k}": "unknown field for the process driver"
        for k in config.keys() - CONFIG_FIELDS
    }
    url = config.get("control_url")
    if not isinstance(url, str) or not url:
        problems["driver_config.control_url"] = "is required: the fleet's control API URL"
    else:
        why = outbound.refusal(url)
        if why:
            problems["driver_config.control_url"] = why
    for name in ("version", "service", "environment"):
        value = config.get(name)
        if value is not None and (not isinstance(value, str) or not 0 < len(value) <= 64):
            problems[f"driver_config.{name}"] = (
                "must be a non-empty string of at most 64 characters"
            )
    return problems


class ProcessDriver(InstanceDriver):
    @property
    def config(self) -> dict[str, Any]:
        return dict(self.group.driver_config or {})

    @property
    def base(self) -> str:
        url = self.config.get("control_url")
        if not url:
            raise ScalingDriverError("the process driver needs driver_config.control_url")
        return str(url).rstrip("/")

    @property
    def service(self) -> str:
        return str(self.config.get("service") or self.group.service.slug)

    @property
    def environment(self) -> str:
        return str(self.config.get("environment") or self.group.environment.slug)

    def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        ok: tuple[int, ...] = (),
        timeout: float = TIMEOUT,
    ) -> Any:
        url = self.base + path
        try:
            reply = outbound.request(method, url, json=body, timeout=timeout)
        except outbound.Refused as exc:
            raise ScalingDriverError(f"the fleet's control API at {self.base}: {exc}") from exc
        except (OSError, httpx.HTTPError) as exc:
            raise ScalingDriverError(
                f"cannot reach the fleet's control API at {self.base}: {exc}"
            ) from exc
        if reply.status_code in ok:
            return None
        if not reply.ok:
            raise ScalingDriverError(
                f"the fleet answered {method} {path} with {reply.status_code}: "
                f"{outbound.excerpt(reply.text)}"
            )
        try:
            return reply.json()
        except ValueError as exc:
            raise ScalingDriverError(f"the fleet answered {method} {path} with non-JSON") from exc

    def version(self) -> str:
        """What new instances run: the config's version, else the one most running have."""
        wanted = self.config.get("version")
        if wanted:
            return str(wanted)
        versions = (
            Instance.objects.filter(
                service_id=self.group.service_id,
                environment_id=self.group.environment_id,
                lifecycle__in=(Lifecycle.ACTIVE, Lifecycle.REGISTERED),
            )
            .exclude(version="")
            .values_list("version", flat=True)
        )
        counts: dict[str, int] = {}
        for version in versions:
            counts[version] = counts.get(version, 0) + 1
        if not counts:
            raise ScalingDriverError(
                "no running instance tells which version to launch: set driver_config.version"
            )
        return max(counts, key=lambda v: (counts[v], v))

    def launch(self, count: int) -> list[Running]:
        version = self.version()
        started = []
        for _ in range(count):
            answer = self._call(
                "POST",
                "/fleet/instances",
                {"service": self.service, "environment": self.environment, "version": version},
            )
            started.append(_running(answer))
        return started

    def terminate(self, ref: str, grace_seconds: float) -> None:
        # The fleet answers once the process is gone: after at most the grace period.
        self._call(
            "DELETE",
            f"/fleet/instances/{ref}?grace={grace_seconds:g}",
            ok=(404,),
            timeout=TIMEOUT + grace_seconds,
        )

    def running(self) -> list[Running]:
        answer = self._call("GET", "/fleet/instances")
        rows = answer.get("instances", answer) if isinstance(answer, dict) else answer
        return [
            _running(row)
            for row in rows
            if row.get("service") == self.service and row.get("environment") == self.environment
        ]

    def protect(self, ref: str, protected: bool) -> None:
        """The fleet has no scale-in of its own to protect from: Signalbox's rows suffice."""

    def lifecycle_heartbeat(self, ref: str) -> None:
        """Nothing on the platform waits: the termination row's deadline is the timer."""

    def lifecycle_complete(self, ref: str) -> None:
        """Nothing on the platform waits: `terminate` stops the process."""

    def notify_draining(self, ref: str, notice: dict[str, Any]) -> None:
        """Tell the instance it is draining and how to answer (the webhook form)."""
        self._call("POST", f"/fleet/instances/{ref}/lifecycle", notice, ok=(404,))


def _running(row: Any) -> Running:
    try:
        return Running(
            ref=str(row["id"]),
            host=str(row["host"]),
            port=int(row["port"]),
            version=str(row.get("version") or ""),
            zone=str(row.get("zone") or ""),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ScalingDriverError(f"the fleet described an instance without {exc}") from exc
