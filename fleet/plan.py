"""The fleet plan: read demo.yaml, lay instances out on deterministic ports, read and write
the plan JSON that the seed registers (the format of briefs/contracts.md)."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import yaml

DEFAULT_BASE_PORT = 7100
DEFAULT_CONTROL_PORT = 7900
DEFAULT_HOST = "127.0.0.1"
BASE_PORT_ENV = "SIGNALBOX_FLEET_BASE_PORT"
CONTROL_PORT_ENV = "SIGNALBOX_FLEET_CONTROL_PORT"
HOST_ENV = "SIGNALBOX_FLEET_HOST"
_HOST_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


EXTERNAL_STATUS_KEYS = ("status_source", "status_components", "probe_url")


class ConfigError(ValueError):
    """A fleet config or plan that cannot be used; the message names the file and field."""


@dataclass(frozen=True)
class InstanceSpec:
    """One instance as the plan lists it. Port 0 means: any free port, chosen at start."""

    id: str
    service: str
    environment: str
    host: str
    port: int
    version: str
    zone: str
    grpc_port: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "service": self.service,
            "environment": self.environment,
            "host": self.host,
            "port": self.port,
            "version": self.version,
            "zone": self.zone,
            "grpc_port": self.grpc_port,
        }


@dataclass(frozen=True)
class ServiceSpec:
    """A demo service and what it calls."""

    slug: str
    name: str
    team: str
    tier: int
    description: str
    depends_on: tuple[str, ...]
    external: tuple[str, ...]
    repository_url: str
    runbook_url: str

    def to_json(self) -> dict[str, Any]:
        return {
            "slug": self.slug,
            "name": self.name,
            "team": self.team,
            "tier": self.tier,
            "description": self.description,
            "depends_on": list(self.depends_on),
            "external": list(self.external),
            "repository_url": self.repository_url,
            "runbook_url": self.runbook_url,
        }


@dataclass
class Plan:
    """Everything the fleet runs and the seed registers."""

    control_host: str
    control_port: int
    teams: list[dict[str, Any]]
    environments: list[dict[str, Any]]
    external_dependencies: list[dict[str, Any]]
    services: list[ServiceSpec]
    instances: list[InstanceSpec] = field(default_factory=list)
    zones: tuple[str, ...] = ("zone-a", "zone-b", "zone-c")

    def service(self, slug: str) -> ServiceSpec | None:
        return next((s for s in self.services if s.slug == slug), None)

    def environment_slugs(self) -> list[str]:
        return [e["slug"] for e in self.environments]

    def entry_services(self) -> list[str]:
        """Services nothing else calls: where user traffic comes in."""
        called = {dep for s in self.services for dep in s.depends_on}
        return [s.slug for s in self.services if s.slug not in called]

    def to_json(self) -> dict[str, Any]:
        return {
            "control": {"host": self.control_host, "port": self.control_port},
            "teams": self.teams,
            "environments": self.environments,
            "external_dependencies": self.external_dependencies,
            "services": [s.to_json() for s in self.services],
            "instances": [i.to_json() for i in self.instances],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], source: str = "plan") -> Plan:
        try:
            services = [
                ServiceSpec(
                    slug=s["slug"],
                    name=s["name"],
                    team=s["team"],
                    tier=int(s["tier"]),
                    description=s.get("description", ""),
                    depends_on=tuple(s.get("depends_on", [])),
                    external=tuple(s.get("external", [])),
                    repository_url=s.get("repository_url", ""),
                    runbook_url=s.get("runbook_url", ""),
                )
                for s in data["services"]
            ]
            instances = [
                InstanceSpec(
                    id=i["id"],
                    service=i["service"],
                    environment=i["environment"],
                    host=i.get("host", DEFAULT_HOST),
                    port=int(i["port"]),
                    version=str(i["version"]),
                    zone=i.get("zone", "zone-a"),
                    grpc_port=i.get("grpc_port"),
                )
                for i in data["instances"]
            ]
            plan = cls(
                control_host=data["control"].get("host", DEFAULT_HOST),
                control_port=int(data["control"]["port"]),
                teams=list(data["teams"]),
                environments=list(data["environments"]),
                external_dependencies=list(data.get("external_dependencies", [])),
                services=services,
                instances=instances,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{source}: not a fleet plan ({exc!r} missing or malformed)") from exc
        ids = [i.id for i in instances]
        ports = [i.port for i in instances if i.port]
        if len(set(ids)) != len(ids) or len(set(ports)) != len(ports):
            raise ConfigError(f"{source}: instances: ids and non-zero ports must be unique")
        zones = sorted({i.zone for i in instances})
        if zones:
            plan.zones = tuple(zones)
        return plan


def load_plan(path: Path) -> Plan:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the plan: {exc}") from exc
    return Plan.from_json(data, source=str(path))


def write_plan(plan: Plan, path: Path) -> None:
    """Write atomically, so a seed reading the file never sees half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as out:
        json.dump(plan.to_json(), out, indent=2)
        out.write("\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def port_from_env(name: str) -> int | None:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return None
    try:
        port = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: must be a port number (0-65535)") from None
    if not 0 <= port <= 65535:
        raise ConfigError(f"{name}={raw!r}: must be a port number (0-65535)")
    return port


def check_host(host: str, where: str) -> str:
    """The address the plan gives every instance (what Signalbox registers and probes):
    a host name or an IPv4 address that others can connect to."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        labels = host.split(".")
        if len(host) <= 253 and all(_HOST_LABEL.fullmatch(label) for label in labels):
            return host
        raise ConfigError(f"{where} {host!r}: must be a host name (fleet, fleet.internal) "
                          "or an IPv4 address") from None
    if ip.version != 4:
        raise ConfigError(f"{where} {host!r}: the fleet listens on IPv4 only; "
                          "use a host name or an IPv4 address")
    if ip.is_unspecified:
        raise ConfigError(f"{where} {host!r}: no one can connect to 0.0.0.0; give the name "
                          "others reach this machine by, and `run --listen 0.0.0.0`")
    return host


def point_vendors_at(plan: Plan, host: str) -> None:
    """Rewrite the demo vendors' loopback status and probe URLs to `host` (a container name)."""
    for external in plan.external_dependencies:
        for key in ("status_page_url", "probe_url"):
            url = urlsplit(str(external.get(key) or ""))
            if url.hostname in ("127.0.0.1", "localhost"):
                netloc = host + (f":{url.port}" if url.port else "")
                external[key] = urlunsplit(url._replace(netloc=netloc))


def build_plan(
    path: Path,
    *,
    base_port: int | None = None,
    control_port: int | None = None,
    count_per_service: int | None = None,
    host: str | None = None,
) -> Plan:
    """Read a fleet YAML and lay out its instances.

    Ports and host: explicit argument, else the environment variable, else the YAML, else
    the default. Instance ports count up from base_port + 1 in the YAML's order of services
    and environments, skipping the control port; base_port 0 gives every instance port 0
    (a free port chosen when the fleet starts, which tests use).
    """
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the fleet config: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    config = _Config(raw, str(path))
    base = _first(base_port, port_from_env(BASE_PORT_ENV), raw.get("base_port"), DEFAULT_BASE_PORT)
    control = _first(
        control_port, port_from_env(CONTROL_PORT_ENV), raw.get("control_port"),
        DEFAULT_CONTROL_PORT,
    )
    host = _host(host, raw.get("host"), path)
    plan = Plan(
        control_host=host,
        control_port=control,
        teams=config.teams(),
        environments=config.environments(),
        external_dependencies=config.externals(),
        services=config.services(),
        zones=config.zones(),
    )
    plan.instances = config.instances(plan, host, base, control, count_per_service)
    return plan


def _first(*values: Any) -> int:
    return int(next(v for v in values if v is not None))


def _host(given: str | None, configured: Any, path: Path) -> str:
    sources = ((given, "--host"), (os.environ.get(HOST_ENV) or None, HOST_ENV),
               (configured, f"{path}: host"))
    for value, where in sources:
        if value is not None:
            return check_host(str(value), where)
    return DEFAULT_HOST


class _Config:
    """Validates the YAML piece by piece, naming the file, entity and field on error."""

    def __init__(self, raw: dict[str, Any], source: str) -> None:
        self.raw = raw
        self.source = source

    def fail(self, where: str, reason: str) -> ConfigError:
        return ConfigError(f"{self.source}: {where}: {reason}")

    def items(self, key: str) -> list[dict[str, Any]]:
        value = self.raw.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise self.fail(key, "expected a list of mappings")
        return value

    def need(self, item: dict[str, Any], where: str, key: str) -> Any:
        if item.get(key) in (None, ""):
            raise self.fail(f"{where}.{key}", "is required")
        return item[key]

    def zones(self) -> tuple[str, ...]:
        zones = self.raw.get("zones", ["zone-a", "zone-b", "zone-c"])
        if not isinstance(zones, list) or not zones:
            raise self.fail("zones", "expected a non-empty list")
        return tuple(str(z) for z in zones)

    def teams(self) -> list[dict[str, Any]]:
        teams = []
        for n, t in enumerate(self.items("teams")):
            where = f"teams[{n}]"
            teams.append({"slug": self.need(t, where, "slug"), "name": self.need(t, where, "name")})
        return teams

    def environments(self) -> list[dict[str, Any]]:
        envs = []
        for n, e in enumerate(self.items("environments")):
            where = f"environments[{n}]"
            envs.append({
                "slug": self.need(e, where, "slug"),
                "name": self.need(e, where, "name"),
                "order": int(e.get("order", (n + 1) * 10)),
                "is_production": bool(e.get("is_production", False)),
            })
        if not envs:
            raise self.fail("environments", "at least one environment is needed")
        return envs

    def externals(self) -> list[dict[str, Any]]:
        out = []
        for n, x in enumerate(self.items("external_dependencies")):
            where = f"external_dependencies[{n}]"
            out.append({
                "slug": self.need(x, where, "slug"),
                "name": self.need(x, where, "name"),
                "status_page_url": x.get("status_page_url", ""),
                # how Signalbox watches it (docs/external.md); seed_demo passes them on
                **{k: x[k] for k in EXTERNAL_STATUS_KEYS if k in x},
            })
        return out

    def services(self) -> list[ServiceSpec]:
        teams = {t["slug"] for t in self.teams()}
        externals = {x["slug"] for x in self.externals()}
        raw = self.items("services")
        slugs = [str(s.get("slug")) for s in raw]
        services = []
        for n, s in enumerate(raw):
            where = f"services[{n}] ({s.get('slug')})"
            if s.get("team") not in teams:
                raise self.fail(f"{where}.team", f"unknown team {s.get('team')!r}")
            for dep in s.get("depends_on", []):
                if dep not in slugs:
                    raise self.fail(f"{where}.depends_on", f"unknown service {dep!r}")
            for ext in s.get("external", []):
                if ext not in externals:
                    raise self.fail(f"{where}.external", f"unknown external dependency {ext!r}")
            services.append(ServiceSpec(
                slug=self.need(s, where, "slug"),
                name=self.need(s, where, "name"),
                team=s["team"],
                tier=int(s.get("tier", 3)),
                description=str(s.get("description", "")).strip(),
                depends_on=tuple(s.get("depends_on", [])),
                external=tuple(s.get("external", [])),
                repository_url=str(s.get("repository_url", "")),
                runbook_url=str(s.get("runbook_url", "")),
            ))
        self._refuse_cycles(services)
        return services

    def _refuse_cycles(self, services: list[ServiceSpec]) -> None:
        # A cycle would make one /api/work call recurse through the fleet forever.
        graph = {s.slug: s.depends_on for s in services}
        done: set[str] = set()

        def visit(slug: str, path: tuple[str, ...]) -> None:
            if slug in path:
                cycle = " -> ".join((*path[path.index(slug):], slug))
                raise self.fail("services", f"dependencies form a cycle: {cycle}")
            if slug in done:
                return
            for dep in graph[slug]:
                visit(dep, (*path, slug))
            done.add(slug)

        for slug in graph:
            visit(slug, ())

    def instances(
        self, plan: Plan, host: str, base: int, control: int, count_per_service: int | None,
    ) -> list[InstanceSpec]:
        env_counts = {
            e["slug"]: int(e.get("instances", 2)) for e in self.items("environments")
        }
        raw_services = {s["slug"]: s for s in self.items("services")}
        out: list[InstanceSpec] = []
        port = base
        for service in plan.services:
            raw = raw_services[service.slug]
            for env in plan.environment_slugs():
                count = count_per_service or int(
                    (raw.get("instances") or {}).get(env, env_counts[env])
                )
                version = self._version(raw, env, f"services ({service.slug})")
                for n in range(1, count + 1):
                    if base:
                        port += 1
                        if port == control:
                            port += 1
                        if port > 65535:
                            raise self.fail("base_port", "too many instances to fit the ports")
                    out.append(InstanceSpec(
                        id=f"{service.slug}-{env}-{n}",
                        service=service.slug,
                        environment=env,
                        host=host,
                        port=port if base else 0,
                        version=version,
                        zone=plan.zones[(n - 1) % len(plan.zones)],
                    ))
        return out

    def _version(self, raw: dict[str, Any], env: str, where: str) -> str:
        versions = raw.get("versions")
        if isinstance(versions, dict) and env in versions:
            return str(versions[env])
        if raw.get("version"):
            return str(raw["version"])
        raise self.fail(f"{where}.version", f"no version for environment {env!r}")
