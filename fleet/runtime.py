"""The running fleet: one asyncio loop, one aiohttp server listening on one socket per
instance, the control API, dependency calls through circuit breakers, leaks, traffic."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import random
import socket
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from fleet.breaker import BreakerConfig, CircuitState, Transition
from fleet.control import control_app
from fleet.errors import FleetError
from fleet.faults import FaultError, Faults, apply_update
from fleet.instance import MB, Instance
from fleet.plan import DEFAULT_HOST, ConfigError, InstanceSpec, Plan, write_plan
from fleet.reporter import DEFAULT_INTERVAL_SECONDS, Reporter
from fleet.server import instance_app
from fleet.tracing import Span, Tracing, end
from fleet.traffic import Traffic

log = logging.getLogger("fleet")

DEFAULT_CALL_TIMEOUT = 2.0  # seconds a dependency call may take before it counts as failed
# All leaks of the fleet together never allocate more than this, whatever is injected.
DEFAULT_LEAK_BUDGET_MB = 4096
LEAK_TICK_SECONDS = 0.5
LISTEN_BACKLOG = 128
# Simulated round trip to an external API (Stripe, S3): never real traffic off the machine.
EXTERNAL_LATENCY_MS = (15, 45)
# Connections the fleet's one client (calls between instances, the traffic generator) may
# have in use at once; beyond it a call waits for a free one, within its timeout.
CLIENT_CONNECTIONS = 512
# A draining instance says it is ready once no request has been in flight for this long.
DRAIN_QUIET_SECONDS = 0.5


class Fleet:
    """Start with `await fleet.start()`, stop with `await fleet.stop()`."""

    def __init__(
        self,
        plan: Plan,
        *,
        state_path: Path | None = None,
        breaker_config: BreakerConfig | None = None,
        call_timeout: float = DEFAULT_CALL_TIMEOUT,
        traffic_rps: float = 0.0,
        leak_budget_mb: int = DEFAULT_LEAK_BUDGET_MB,
        hystrix_interval: float = 1.0,
        shutdown_timeout: float = 2.0,
        listen: str | None = None,
        report_url: str | None = None,
        report_tokens: Callable[[], dict[str, str]] | None = None,
        report_interval: float = DEFAULT_INTERVAL_SECONDS,
        otlp_url: str | None = None,
    ) -> None:
        self.plan = plan
        # The plan's host is what others connect to; this is what the sockets bind.
        self.listen = listen_address(listen, plan.control_host)
        # How the fleet reaches its own sockets (calls between instances, tests): never
        # through the plan's host, which may be a name only other machines resolve.
        self.local_host = (
            DEFAULT_HOST if ipaddress.IPv4Address(self.listen).is_unspecified else self.listen
        )
        self.state_path = state_path
        self.breaker_config = breaker_config or BreakerConfig()
        self.call_timeout = call_timeout
        self.leak_budget_bytes = leak_budget_mb * MB
        self.hystrix_interval = hystrix_interval
        self.shutdown_timeout = shutdown_timeout
        self.instances: dict[str, Instance] = {}
        self.by_port: dict[int, Instance] = {}
        self.routes: dict[tuple[str, str], str] = {}
        self.external_faults: dict[str, Faults] = {
            x["slug"]: Faults() for x in plan.external_dependencies
        }
        self.traffic = Traffic(self, traffic_rps)
        self.closing = False
        # A plan of port-0 instances (tests) keeps new instances on free ports too.
        self.ephemeral = all(i.port == 0 for i in plan.instances)
        self._listeners: dict[str, asyncio.Server] = {}
        self._cursor: dict[tuple[str, str], int] = {}
        # (service, environment) -> instances: calls pick from here without scanning.
        self._pools: dict[tuple[str, str], list[Instance]] = {}
        self._runner: web.AppRunner | None = None
        self._control: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._leak_task: asyncio.Task[None] | None = None
        self._drains: set[asyncio.Task[None]] = set()
        # What each instance reports to Signalbox (memory, CPU, in flight): off without a URL.
        self.reporter: Reporter | None = None
        team_of = {s.slug: s.team for s in plan.services}
        # OpenTelemetry spans to Signalbox's OTLP endpoint, with the same team tokens.
        self.tracing: Tracing | None = (
            Tracing(otlp_url, report_tokens or dict, team_of) if otlp_url else None
        )
        if report_url:
            self.reporter = Reporter(
                report_url,
                report_tokens or dict,
                lambda: [(team_of.get(i.spec.service, ""), i) for i in self.instances.values()],
                lambda: self.session,
                report_interval,
            )

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=CLIENT_CONNECTIONS, limit_per_host=0),
            timeout=aiohttp.ClientTimeout(total=self.call_timeout),
        )
        # One server for every instance: the instance is known by the port a request
        # came in on, so 1,000 instances cost 1,000 sockets, not 1,000 servers.
        self._runner = web.AppRunner(
            instance_app(self),
            access_log=None,
            handler_cancellation=True,
            shutdown_timeout=self.shutdown_timeout,
        )
        await self._runner.setup()
        self._control = web.AppRunner(control_app(self), access_log=None)
        await self._control.setup()
        try:
            for spec in self.plan.instances:
                await self._launch(spec)
            sock = _bind(self.listen, self.plan.control_port, "control API")
            await web.SockSite(self._control, sock).start()
        except FleetError:
            await self.stop()
            raise
        self.plan.control_port = sock.getsockname()[1]
        self._leak_task = asyncio.create_task(self._leak_loop())
        self.traffic.start()
        if self.reporter is not None:
            self.reporter.start()
        self.save_state()
        log.info("fleet up: %d instances, control API at %s", len(self.instances),
                 self.control_url)

    async def stop(self) -> None:
        self.closing = True
        await self.traffic.stop()
        if self.reporter is not None:
            await self.reporter.stop()
        if self._leak_task is not None:
            self._leak_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._leak_task
        for task in list(self._drains):
            task.cancel()
        if self._drains:
            await asyncio.gather(*self._drains, return_exceptions=True)
        if self._control is not None:
            await self._control.cleanup()
        for listener in self._listeners.values():
            listener.close()
        self._listeners.clear()
        if self._runner is not None:
            for instance in self.instances.values():
                instance.answering.set()
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()
        if self.tracing is not None:
            await asyncio.to_thread(self.tracing.shutdown)  # sends what is still queued
        log.info("fleet stopped")

    @property
    def control_url(self) -> str:
        return f"http://{self.local_host}:{self.plan.control_port}"

    def url(self, instance: Instance) -> str:
        return f"http://{self.local_host}:{instance.spec.port}"

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("the fleet is not started")
        return self._session

    def save_state(self) -> None:
        """Write the current instance list, so a seed registers what really runs."""
        if self.state_path is None:
            return
        self.plan.instances = [i.spec for i in self.instances.values()]
        write_plan(self.plan, self.state_path)

    # -- instances ---------------------------------------------------------------------

    def get(self, instance_id: str) -> Instance:
        try:
            return self.instances[instance_id]
        except KeyError:
            raise FleetError(404, f"no instance {instance_id!r} in the fleet") from None

    def of(self, service: str, environment: str) -> list[Instance]:
        """The service's instances in an environment, in the order they were started."""
        return self._pools.get((service, environment), [])

    async def add_instance(
        self, service: str, environment: str, version: str, zone: str | None = None,
    ) -> Instance:
        fields: dict[str, list[str]] = {}
        if self.plan.service(service) is None:
            fields["service"] = [f"unknown service {service!r}"]
        if environment not in self.plan.environment_slugs():
            fields["environment"] = [f"unknown environment {environment!r}"]
        if not _valid_version(version):
            fields["version"] = ["must be a non-empty string of at most 64 characters"]
        if fields:
            raise FleetError(400, "cannot start that instance", fields)
        taken = set(self.instances)
        n = next(n for n in range(1, len(taken) + 2) if f"{service}-{environment}-{n}" not in taken)
        spec = InstanceSpec(
            id=f"{service}-{environment}-{n}",
            service=service,
            environment=environment,
            host=self.plan.control_host,
            port=self._next_port(),
            version=version,
            zone=zone or self.plan.zones[(n - 1) % len(self.plan.zones)],
        )
        instance = await self._launch(spec)
        self.save_state()
        log.info("started %s on port %d", instance.id, instance.spec.port)
        return instance

    async def remove_instance(self, instance_id: str, grace: float = 0.0) -> None:
        """Stop an instance. With a grace period it is a SIGTERM: no new connections, the
        requests in flight may finish for up to `grace` seconds, then the rest is cut."""
        instance = self.get(instance_id)
        if grace > 0:
            listener = self._listeners.pop(instance.id, None)
            if listener is not None:
                listener.close()
            deadline = time.monotonic() + grace
            while instance.in_flight and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if instance.in_flight:
                log.warning("%s: %d request(s) cut at the end of the grace period",
                            instance_id, instance.in_flight)
        await self._stop_listening(instance)
        instance.answering.set()
        del self.instances[instance_id]
        self.by_port.pop(instance.spec.port, None)
        self._pools[(instance.spec.service, instance.spec.environment)].remove(instance)
        self.save_state()
        log.info("stopped %s", instance_id)

    def tell_draining(self, instance_id: str, notice: Any) -> Instance:
        """The control plane says this instance is draining: finish the work in flight, then
        answer on the notice's URL with its token (heartbeats while waiting)."""
        instance = self.get(instance_id)
        fields = {}
        if not isinstance(notice, dict):
            raise FleetError(400, "bad drain notice", {"non_field_errors": ["expected an object"]})
        for name in ("ready_url", "token"):
            if not isinstance(notice.get(name), str) or not notice.get(name):
                fields[name] = ["is required"]
        for name in ("ready_url", "heartbeat_url"):
            value = notice.get(name)
            if value is not None and not str(value).startswith(("http://", "https://")):
                fields[name] = ["must be an http:// or https:// URL"]
        if fields:
            raise FleetError(400, "bad drain notice", fields)
        if instance.draining is None:
            instance.draining = dict(notice)
            task = asyncio.create_task(self._answer_drain(instance))
            self._drains.add(task)
            task.add_done_callback(self._drains.discard)
        return instance

    async def _answer_drain(self, instance: Instance) -> None:
        notice = instance.draining or {}
        headers = {"Authorization": f"Bearer {notice['token']}"}
        beat = max(1.0, float(notice.get("heartbeat_seconds") or 10) / 2)
        last_beat = time.monotonic()
        quiet_since: float | None = None
        while not self.closing and instance.id in self.instances:
            now = time.monotonic()
            if instance.faults.ignore_drain:
                await asyncio.sleep(0.2)  # a liar: never answers, never heartbeats
                continue
            quiet_since = (quiet_since or now) if instance.in_flight == 0 else None
            if quiet_since is not None and now - quiet_since >= DRAIN_QUIET_SECONDS:
                if await self._post(notice["ready_url"], headers, {"reason": "no work in flight"}):
                    instance.said_ready_at = time.time()
                    log.info("%s: told the control plane it is ready to terminate", instance.id)
                    return
            elif notice.get("heartbeat_url") and now - last_beat >= beat:
                await self._post(str(notice["heartbeat_url"]), headers, {})
                last_beat = now
            await asyncio.sleep(0.1)

    async def _post(self, url: str, headers: dict[str, str], body: dict[str, Any]) -> bool:
        try:
            async with self.session.post(url, json=body, headers=headers) as resp:
                await resp.read()
                if resp.status >= 400:
                    log.warning("POST %s answered %d", url, resp.status)
                return resp.status < 400
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.warning("POST %s failed: %s", url, exc)
            return False

    async def set_faults(
        self, instance_id: str, update: Any, spare: asyncio.BaseTransport | None = None,
    ) -> Instance:
        """Apply a partial fault update. `spare` is a connection that going down must not
        cut: the one asking for it, so it still gets its answer."""
        instance = self.get(instance_id)
        try:
            faults = apply_update(instance.faults, update)
        except FaultError as exc:
            raise FleetError(400, str(exc), exc.fields) from None
        if isinstance(update, dict) and update.get("reset"):
            instance.restart()
        if faults.down and instance.listening:
            await self._stop_listening(instance, spare)
        elif not faults.down and not instance.listening:
            await self._listen(instance)
        if faults.hang:
            instance.answering.clear()
        else:
            instance.answering.set()
        instance.faults = faults
        log.info("%s faults: %s", instance_id, faults.to_json() if faults.active else "none")
        return instance

    def set_version(self, instance_id: str, version: Any) -> Instance:
        instance = self.get(instance_id)
        if not _valid_version(version):
            raise FleetError(400, "bad version", {
                "version": ["must be a non-empty string of at most 64 characters"],
            })
        instance.set_version(version)
        self.save_state()
        log.info("%s now runs version %s", instance_id, version)
        return instance

    def set_circuit(self, instance_id: str, name: str, state: Any) -> Instance:
        instance = self.get(instance_id)
        breaker = instance.breakers.get(name)
        if breaker is None:
            raise FleetError(404, f"{instance_id} has no circuit {name!r}")
        manual = {"closed", "forced_open", "disabled", "metrics_only"}
        if state not in manual:
            raise FleetError(400, "bad circuit state", {
                "state": [f"must be one of {', '.join(sorted(manual))}"],
            })
        breaker.force(CircuitState(state))
        return instance

    def set_external_faults(self, slug: str, update: Any) -> Faults:
        if slug not in self.external_faults:
            raise FleetError(404, f"no external dependency {slug!r}")
        if isinstance(update, dict):
            bad = update.keys() - {"error_rate", "latency_ms", "reset"}
            if bad:
                raise FleetError(400, "external dependencies take error_rate and latency_ms", {
                    key: ["not supported for an external dependency"] for key in sorted(bad)
                })
        try:
            faults = apply_update(self.external_faults[slug], update)
        except FaultError as exc:
            raise FleetError(400, str(exc), exc.fields) from None
        self.external_faults[slug] = faults
        return faults

    def set_route(self, service: str, environment: str, url: str | None) -> None:
        """Send calls to a service through a URL (a load balancer) instead of straight to
        its instances; None goes back to picking instances round-robin."""
        if self.plan.service(service) is None or environment not in self.plan.environment_slugs():
            raise FleetError(404, f"no service {service!r} in environment {environment!r}")
        if url is None:
            self.routes.pop((service, environment), None)
            return
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise FleetError(400, "bad route", {"url": ["must be an http:// or https:// URL"]})
        self.routes[(service, environment)] = url.rstrip("/")

    # -- calls between services ----------------------------------------------------------

    def pick(self, service: str, environment: str) -> str | None:
        """The base URL for the next call to a service: its route, or its next instance."""
        route = self.routes.get((service, environment))
        if route:
            return route
        candidates = self.of(service, environment)
        if not candidates:
            return None
        key = (service, environment)
        cursor = self._cursor.get(key, 0)
        self._cursor[key] = cursor + 1
        return self.url(candidates[cursor % len(candidates)])

    async def call_dependencies(self, caller: Instance, span: Span) -> dict[str, Any]:
        names = list(caller.breakers)
        results = await asyncio.gather(*(self._call(caller, name, span) for name in names))
        return dict(zip(names, results, strict=True))

    async def _call(self, caller: Instance, name: str, span: Span) -> dict[str, Any]:
        breaker = caller.breakers[name]
        if not breaker.acquire():
            return {"ok": False, "short_circuited": True, "circuit": breaker.state.value}
        started = time.monotonic()
        outcome: dict[str, Any]
        client_span = None
        if self.tracing is not None and span.otel is not None:
            # peer.service names the callee: an edge even if its side never reports.
            client_span = self.tracing.start_client(
                caller.spec.service, caller.spec.environment, span, f"GET {name}",
                **{"peer.service": name},
            )
        try:
            if name in self.external_faults:
                outcome = await self._call_external(name)
            else:
                outcome = await self._call_service(caller, name, span, client_span)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            outcome = {"ok": False, "error": type(exc).__name__}
        except BaseException:
            # Cancelled (our caller hung up) or a bug: no outcome to judge the dependency by.
            breaker.release()
            end(client_span, True, "cancelled")
            raise
        end(client_span, not outcome["ok"], str(outcome.get("error") or outcome.get("status")))
        elapsed = time.monotonic() - started
        breaker.record(elapsed, outcome["ok"])
        outcome["latency_ms"] = round(1000 * elapsed, 1)
        outcome["circuit"] = breaker.state.value
        return outcome

    async def _call_service(
        self, caller: Instance, name: str, span: Span, client_span: Any = None
    ) -> dict[str, Any]:
        base = self.pick(name, caller.spec.environment)
        if base is None:
            return {"ok": False, "error": f"no instance of {name} in {caller.spec.environment}"}
        # The callee's parent is this call's CLIENT span (its own id when traces export).
        own_id = (
            f"{client_span.get_span_context().span_id:016x}" if client_span is not None else None
        )
        headers = span.child_headers(own_id)
        async with self.session.get(f"{base}/api/work", headers=headers) as resp:
            raw = await resp.read()
        try:
            body = json.loads(raw)
        except ValueError:
            body = None  # a load balancer's own error page, say: the status still counts
        if not isinstance(body, dict):
            body = {}
        return {
            "ok": resp.status < 500,
            "status": resp.status,
            "instance": body.get("instance"),
            "trace_id": body.get("trace_id"),
        }

    async def _call_external(self, slug: str) -> dict[str, Any]:
        faults = self.external_faults[slug]
        delay = random.randint(*EXTERNAL_LATENCY_MS) + faults.latency_ms
        await asyncio.sleep(delay / 1000)
        failed = faults.error_rate > 0 and random.random() * 100 < faults.error_rate
        return {"ok": not failed, "external": True, "status": 503 if failed else 200}

    # -- sockets -------------------------------------------------------------------------

    async def _launch(self, spec: InstanceSpec) -> Instance:
        service = self.plan.service(spec.service)
        if service is None:
            raise FleetError(400, f"{spec.id}: unknown service {spec.service!r}")
        sock = _bind(self.listen, spec.port, spec.id)
        spec = replace(spec, port=sock.getsockname()[1])
        instance = Instance(
            spec,
            (*service.depends_on, *service.external),
            self.breaker_config,
            on_transition=_log_transitions(spec.id),
        )
        self.instances[spec.id] = instance
        self.by_port[spec.port] = instance
        self._pools.setdefault((spec.service, spec.environment), []).append(instance)
        await self._serve(instance, sock)
        return instance

    async def _listen(self, instance: Instance) -> None:
        spec = instance.spec
        await self._serve(instance, _bind(self.listen, spec.port, spec.id))

    async def _serve(self, instance: Instance, sock: socket.socket) -> None:
        assert self._runner is not None and self._runner.server is not None
        # What aiohttp's SockSite does, minus registering a site with the runner: that
        # registry is a list searched on every add, and 16,000 instances took 9 s to
        # start through it instead of 2 s.
        listener = await asyncio.get_running_loop().create_server(
            self._runner.server, sock=sock, backlog=LISTEN_BACKLOG,
        )
        self._listeners[instance.id] = listener
        instance.listening = True

    async def _stop_listening(
        self, instance: Instance, spare: asyncio.BaseTransport | None = None,
    ) -> None:
        listener = self._listeners.pop(instance.id, None)
        if listener is not None:
            listener.close()
        instance.listening = False
        # A stopped process takes its open connections with it, keep-alive ones included.
        server = self._runner.server if self._runner else None
        for conn in list(server.connections if server else []):
            transport = conn.transport
            sockname = transport.get_extra_info("sockname") if transport else None
            if transport is None or transport is spare:
                continue
            if sockname and sockname[1] == instance.spec.port:
                transport.abort()

    def _next_port(self) -> int:
        """Fixed-port fleets grow past their highest port; port-0 fleets stay on port 0."""
        if self.ephemeral:
            return 0
        used = {i.spec.port for i in self.instances.values()}
        port = max(used, default=self.plan.control_port) + 1
        while port in used or port == self.plan.control_port or not _free(self.listen, port):
            port += 1
        return port

    async def _leak_loop(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(LEAK_TICK_SECONDS)
            now = time.monotonic()
            leaked = sum(i.leaked_bytes for i in self.instances.values())
            for instance in self.instances.values():
                budget = self.leak_budget_bytes - leaked
                leaked += instance.leak(now - last, budget)
            last = now


def _log_transitions(instance_id: str) -> Transition:
    def transition(name: str, before: CircuitState, after: CircuitState) -> None:
        log.info("%s: circuit %s %s -> %s", instance_id, name, before.value, after.value)

    return transition


def listen_address(requested: str | None, plan_host: str, where: str = "listen") -> str:
    """The address to bind: the one asked for, else the plan's host when it is an address
    of this machine, else loopback. Nothing listens beyond loopback unless asked to."""
    if requested is None:
        return plan_host if _local_address(plan_host) else DEFAULT_HOST
    try:
        ipaddress.IPv4Address(requested)
    except ValueError:
        raise ConfigError(f"{where} {requested!r}: must be an IPv4 address of this machine "
                          "(127.0.0.1), or 0.0.0.0 for all of them") from None
    return requested


def _local_address(host: str) -> bool:
    try:
        if ipaddress.IPv4Address(host).is_unspecified:
            return False
    except ValueError:
        return False  # a name: where it resolves is for others to decide
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, 0))
        except OSError:
            return False
    return True


def _bind(host: str, port: int, what: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise FleetError(409, f"{what}: cannot listen on {host}:{port}: {exc.strerror}") from exc
    return sock


def _free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _valid_version(version: Any) -> bool:
    return isinstance(version, str) and 0 < len(version.strip()) <= 64
