"""The Signalbox client: one background thread reports breakers, polls overrides, heartbeats,
and speaks the scale-in handshake (lifecycle, ready-to-terminate, protection, metrics).

The calling application never waits on the control plane. Breaker callbacks and work
counting only count; the thread does all the talking, with short timeouts and backoff, and
bounded buffers that drop the oldest reports (counted in `stats()`) while the control plane
is away.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import pybreaker

from signalbox_client.breaker import SignalboxBreaker, SignalboxListener, reported_state
from signalbox_client.buffer import ReportBuffer
from signalbox_client.health import Check, Health
from signalbox_client.lifecycle import (
    PROTECTION_DEFAULT_MINUTES,
    PROTECTION_MAX_MINUTES,
    Drain,
    Handshake,
    InFlight,
)
from signalbox_client.metrics import Metrics
from signalbox_client.overrides import FORCED_CLOSED, FORCED_OPEN, Overrides
from signalbox_client.transport import Transport, Unreachable, error_message

logger = logging.getLogger("signalbox_client")

REPORTS_PATH = "/api/v1/circuits/reports"
OVERRIDES_PATH = "/api/v1/circuits/overrides"
REGISTER_PATH = "/api/v1/instances/register"
DEREGISTER_PATH = "/api/v1/instances/deregister"
MAX_BACKOFF_SECONDS = 60.0


@dataclass
class _Watched:
    breaker: pybreaker.CircuitBreaker
    listener: SignalboxListener


class Signalbox:
    """Connects one instance of a service to Signalbox.

    ```
    signalbox = Signalbox(url, token, service="checkout", environment="production",
                          host="10.0.0.5", port=8080, register=True).start()
    payments = signalbox.breaker("payments", protects="payments", fail_max=5)
    payments.call(charge, order)

    signalbox.on_drain(lambda drain: consumer.stop())   # scale-in: stop taking new work
    with signalbox.work():                              # in flight: never chosen; waited for
        handle(request)
    ```
    """

    def __init__(
        self,
        url: str,
        token: str,
        *,
        service: str,
        environment: str,
        host: str | None = None,
        port: int | None = None,
        instance: str | None = None,
        version: str = "",
        zone: str = "",
        labels: dict[str, str] | None = None,
        register: bool = False,
        heartbeat_seconds: int = 30,
        report_interval: float = 5.0,
        override_interval: float = 10.0,
        buffer_size: int = 10_000,
        batch_size: int = 500,
        timeout: float = 2.0,
        instance_id: int | None = None,
        lifecycle_interval: float | None = 5.0,
        auto_ready: bool = True,
        metrics_interval: float = 10.0,
    ) -> None:
        if register and (host is None or port is None):
            raise ValueError("register=True needs host and port (what the control plane probes)")
        self.service = service
        self.environment = environment
        self.host = host
        self.port = port
        self.instance = instance or (f"{host}:{port}" if host and port else socket.gethostname())
        self.version = version
        self.zone = zone
        self.labels = dict(labels or {})
        self.register = register
        self.heartbeat_seconds = heartbeat_seconds
        self.report_interval = report_interval
        self.override_interval = override_interval
        self.batch_size = batch_size
        self.transport = Transport(url, token, timeout=timeout)
        self.overrides = Overrides()
        self.buffer = ReportBuffer(buffer_size)
        self._watched: dict[str, _Watched] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._snapshot_now = False
        self._backoff = 0.0
        self._retry_at = 0.0
        self.sent = 0
        self.rejected = 0
        self.send_failures = 0
        self.last_error = ""
        self.registered = False
        # The catalog's id of this instance: from registration, or given (the handshake
        # and metrics need it; metrics fall back to host and port).
        self.instance_id = instance_id
        self.work_in_flight = InFlight(self._work_edge)
        self.handshake = Handshake(
            self.transport,
            self.work_in_flight,
            interval=lifecycle_interval,
            auto_ready=auto_ready,
            on_error=self._error,
        )
        self.metrics = Metrics(
            self.transport,
            self.work_in_flight,
            interval=metrics_interval,
            capacity=buffer_size,
            on_error=self._error,
        )

    @classmethod
    def from_env(cls, **overrides: Any) -> Signalbox:
        """Settings from SIGNALBOX_URL, SIGNALBOX_TOKEN, SIGNALBOX_SERVICE, SIGNALBOX_ENVIRONMENT,
        and optionally SIGNALBOX_HOST, SIGNALBOX_PORT, SIGNALBOX_VERSION, SIGNALBOX_ZONE,
        SIGNALBOX_INSTANCE_ID."""
        env = os.environ
        missing = [
            n
            for n in (
                "SIGNALBOX_URL",
                "SIGNALBOX_TOKEN",
                "SIGNALBOX_SERVICE",
                "SIGNALBOX_ENVIRONMENT",
            )
            if not env.get(n) and n.removeprefix("SIGNALBOX_").lower() not in overrides
        ]
        if missing:
            raise ValueError("set " + ", ".join(missing) + " (or pass them as arguments)")
        settings: dict[str, Any] = {
            "url": env.get("SIGNALBOX_URL"),
            "token": env.get("SIGNALBOX_TOKEN"),
            "service": env.get("SIGNALBOX_SERVICE"),
            "environment": env.get("SIGNALBOX_ENVIRONMENT"),
            "host": env.get("SIGNALBOX_HOST"),
            "port": int(env["SIGNALBOX_PORT"]) if env.get("SIGNALBOX_PORT") else None,
            "version": env.get("SIGNALBOX_VERSION", ""),
            "zone": env.get("SIGNALBOX_ZONE", ""),
        }
        if env.get("SIGNALBOX_INSTANCE_ID"):
            try:
                settings["instance_id"] = int(env["SIGNALBOX_INSTANCE_ID"])
            except ValueError:
                raise ValueError(
                    f"SIGNALBOX_INSTANCE_ID must be the instance's numeric id "
                    f"(got {env['SIGNALBOX_INSTANCE_ID']!r})"
                ) from None
        settings.update(overrides)
        url, token = settings.pop("url"), settings.pop("token")
        return cls(url, token, **settings)

    # -- breakers ---------------------------------------------------------------------------

    def breaker(
        self,
        name: str,
        *,
        protects: str | None = None,
        slow_call_seconds: float | None = None,
        window_seconds: int = 10,
        **kwargs: Any,
    ) -> SignalboxBreaker:
        """A pybreaker breaker that reports here and obeys overrides (kwargs go to pybreaker)."""
        breaker = SignalboxBreaker(
            self,
            name,
            protects=protects,
            slow_call_seconds=slow_call_seconds,
            window_seconds=window_seconds,
            **kwargs,
        )
        self._add(name, breaker, breaker.signalbox)
        return breaker

    def watch(
        self,
        breaker: pybreaker.CircuitBreaker,
        *,
        protects: str | None = None,
        slow_call_seconds: float | None = None,
        window_seconds: int = 10,
    ) -> SignalboxListener:
        """Report an existing pybreaker breaker (it must have a name).

        Overrides reach a plain breaker by opening or closing it at each poll: between
        polls pybreaker may move it to half-open by itself. Use `breaker()` for strict
        obedience.
        """
        if not breaker.name:
            raise ValueError("give the breaker a name: it is the circuit's name in Signalbox")
        listener = SignalboxListener(
            self,
            protects=protects,
            slow_call_seconds=slow_call_seconds,
            window_seconds=window_seconds,
        )
        breaker.add_listener(listener)
        self._add(breaker.name, breaker, listener)
        return listener

    def _add(
        self, name: str, breaker: pybreaker.CircuitBreaker, listener: SignalboxListener
    ) -> None:
        with self._lock:
            if name in self._watched:
                raise ValueError(f"a breaker named {name!r} is already reported")
            self._watched[name] = _Watched(breaker, listener)

    def circuit_states(self) -> dict[str, str]:
        """Each breaker's state as reported (overrides included)."""
        with self._lock:
            watched = dict(self._watched)
        return {
            name: reported_state(w.breaker, self.overrides.state_for(name))
            for name, w in sorted(watched.items())
        }

    def _state_changed(self) -> None:
        # Called on the app's thread: only flag it and wake the reporter.
        self._snapshot_now = True
        self._wake.set()

    # -- the background thread ----------------------------------------------------------------

    def start(self) -> Signalbox:
        """Start the background thread (idempotent); returns self."""
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._stopping.clear()
                self._thread = threading.Thread(
                    target=self._run, name="signalbox-client", daemon=True
                )
                self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Report one last time (breakers and metrics), say ready to terminate if Signalbox
        is draining this instance, deregister, and stop the thread (waits at most `timeout`)."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def flush(self) -> None:
        """Snapshot every breaker and try to send everything now (reports and metrics), on
        the caller's thread."""
        self._snapshot()
        self._send_all(force=True)
        key = self._metric_key()
        if key is not None:
            self.metrics.send(key, time.monotonic())

    def stats(self) -> dict[str, Any]:
        return {
            "buffered": len(self.buffer),
            "dropped": self.buffer.dropped,
            "sent": self.sent,
            "rejected": self.rejected,
            "send_failures": self.send_failures,
            "last_error": self.last_error,
            "registered": self.registered,
            "overrides": {f.circuit: f.state for f in self.overrides.active()},
            "instance_id": self.instance_id,
            "lifecycle": self.handshake.state,
            "in_flight": self.work_in_flight.count,
            "unbalanced_end_work": self.work_in_flight.unbalanced,
            "ready_sent": self.handshake.ready_sent,
            "lifecycle_heartbeats": self.handshake.heartbeats_sent,
            "protected_until": self.handshake.protected_until,
            "metrics_sent": self.metrics.sent,
            "metrics_rejected": self.metrics.rejected,
            "metrics_buffered": len(self.metrics.pending),
            "metrics_dropped": self.metrics.pending.dropped,
        }

    def _run(self) -> None:
        now = time.monotonic()
        next_snapshot = now + self.report_interval
        next_poll = now
        next_beat = now if self.register else float("inf")
        next_handshake = next_metrics = now
        while not self._stopping.is_set():
            now = time.monotonic()
            try:
                if now >= next_beat:
                    next_beat = now + (self.heartbeat_seconds if self._heartbeat() else 5.0)
                if now >= next_poll:
                    self.poll_overrides()
                    next_poll = now + self.override_interval
                if now >= next_snapshot or self._snapshot_now:
                    self._snapshot()
                    next_snapshot = now + self.report_interval
                self._send_all()
                next_handshake = self.handshake.step(now, self.instance_id)
                next_metrics = self.metrics.step(now, self._metric_key())
            except Exception:  # the reporter must outlive any surprise; the app never sees it
                logger.exception("signalbox client loop error")
            wait = min(next_beat, next_poll, next_snapshot, next_handshake, next_metrics)
            wait -= time.monotonic()
            if len(self.buffer) and self._retry_at > time.monotonic():
                wait = min(wait, self._retry_at - time.monotonic())
            self._wake.wait(max(wait, 0.01))
            self._wake.clear()
        self._finish()

    def _finish(self) -> None:
        try:
            self._snapshot()
            self._send_all(force=True)
            key = self._metric_key()
            if key is not None:
                self.metrics.send(key, time.monotonic())
            self.handshake.finish(self.instance_id)
            if self.registered:
                self.transport.request("POST", DEREGISTER_PATH, self._address())
        except Unreachable as exc:
            self.last_error = str(exc)

    def _error(self, why: str) -> None:
        self.last_error = why

    # -- reports ------------------------------------------------------------------------------

    def _snapshot(self) -> None:
        self._snapshot_now = False
        at = datetime.now(UTC).isoformat()
        with self._lock:
            watched = dict(self._watched)
        for name, w in watched.items():
            forced = self.overrides.state_for(name)
            if not isinstance(w.breaker, SignalboxBreaker):
                self._impose(w.breaker, forced)
            counts = w.listener.window()
            report: dict[str, Any] = {
                "circuit": name,
                "state": reported_state(w.breaker, forced),
                "reported_at": at,
                "calls": counts.calls,
                "failed_calls": counts.failures,
                "slow_calls": counts.slow,
                "rejected_calls": counts.rejected,
                "failure_rate": round(100.0 * counts.failures / counts.calls, 2)
                if counts.calls
                else None,
                "thresholds": {
                    "fail_max": w.breaker.fail_max,
                    "reset_timeout_seconds": w.breaker.reset_timeout,
                    "window_seconds": w.listener.window_seconds,
                },
            }
            if w.listener.slow_call_seconds is not None:
                report["slow_call_rate"] = (
                    round(100.0 * counts.slow / counts.calls, 2) if counts.calls else None
                )
                report["thresholds"]["slow_call_seconds"] = w.listener.slow_call_seconds
            if w.listener.protects:
                report["protects"] = w.listener.protects
            self.buffer.add(report)

    @staticmethod
    def _impose(breaker: pybreaker.CircuitBreaker, forced: str | None) -> None:
        if forced == FORCED_OPEN and breaker.current_state != pybreaker.STATE_OPEN:
            breaker.open()
        elif forced == FORCED_CLOSED and breaker.current_state != pybreaker.STATE_CLOSED:
            breaker.close()

    def _send_all(self, *, force: bool = False) -> None:
        while len(self.buffer) and (force or time.monotonic() >= self._retry_at):
            batch = self.buffer.peek(self.batch_size)
            body = {
                "service": self.service,
                "environment": self.environment,
                "instance": self.instance,
                "reports": batch,
            }
            try:
                answer = self.transport.request("POST", REPORTS_PATH, body)
            except Unreachable as exc:
                self._failed(str(exc))
                return
            if answer.status in (200, 202):
                self.buffer.discard(batch)
                self.sent += len(batch)
                self._backoff = 0.0
            elif answer.status in (400, 401, 403, 404, 413):
                # Sending it again would fail again: drop it, say why, keep going.
                self.buffer.discard(batch)
                self.rejected += len(batch)
                self.last_error = f"reports refused ({answer.status}): {error_message(answer)}"
                logger.warning("signalbox refused %d reports: %s", len(batch), self.last_error)
            else:
                self._failed(f"reports answered {answer.status}")
                return

    def _failed(self, why: str) -> None:
        self.send_failures += 1
        self.last_error = why
        self._backoff = min(max(self._backoff * 2, self.report_interval), MAX_BACKOFF_SECONDS)
        self._retry_at = time.monotonic() + self._backoff

    # -- overrides ----------------------------------------------------------------------------

    def poll_overrides(self) -> bool:
        """Fetch the overrides if they changed (If-None-Match); True if the answer was usable."""
        query = urlencode({"service": self.service, "environment": self.environment})
        headers = {"If-None-Match": self.overrides.etag} if self.overrides.etag else {}
        try:
            answer = self.transport.request("GET", f"{OVERRIDES_PATH}?{query}", headers=headers)
        except Unreachable as exc:
            self.last_error = str(exc)
            return False  # keep obeying what we last heard, until each override expires
        if answer.status == 304:
            return True
        if answer.status == 200 and isinstance(answer.body, dict):
            self.overrides.replace(list(answer.body.get("overrides") or []), answer.etag)
            self._snapshot_now = True  # report the forced states without waiting
            return True
        self.last_error = f"overrides answered {answer.status}: {error_message(answer)}"
        return False

    # -- registration ---------------------------------------------------------------------------

    def _address(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "environment": self.environment,
            "host": self.host,
            "port": self.port,
        }

    def _heartbeat(self) -> bool:
        if self.handshake.finished:
            # Terminated by scale-in (or about to be): registering again would bring the
            # instance back into the catalog as live, and into rotation.
            return True
        body = {
            **self._address(),
            "version": self.version,
            "zone": self.zone,
            "labels": self.labels,
            "heartbeat_seconds": self.heartbeat_seconds,
        }
        try:
            answer = self.transport.request("POST", REGISTER_PATH, body)
        except Unreachable as exc:
            self.last_error = str(exc)
            return False
        if answer.status in (200, 201):
            self.registered = True
            if isinstance(answer.body, dict) and isinstance(answer.body.get("id"), int):
                self.instance_id = answer.body["id"]
            return True
        self.last_error = f"registration answered {answer.status}: {error_message(answer)}"
        logger.warning("signalbox registration failed: %s", self.last_error)
        return False

    # -- the scale-in handshake ----------------------------------------------------------------

    def on_drain(self, callback: Callable[[Drain], Any]) -> Callable[[Drain], Any]:
        """Call `callback(drain)` once, on the client's thread, when Signalbox starts draining
        this instance (`drain.deadline`: say ready by then). Stop taking new work there, and
        return quickly. Usable as a decorator."""
        self.handshake.on_drain(callback)
        self._wake.set()
        return callback

    @contextmanager
    def work(self) -> Iterator[None]:
        """Count the block as work in flight (`with signalbox.work(): handle(request)`)."""
        self.work_in_flight.begin()
        try:
            yield
        finally:
            self.work_in_flight.end()

    def begin_work(self) -> None:
        """One more piece of work in flight (pair with end_work())."""
        self.work_in_flight.begin()

    def end_work(self) -> None:
        """One piece of work done; an unpaired call is counted in stats(), never raised."""
        self.work_in_flight.end()

    @property
    def in_flight(self) -> int:
        return self.work_in_flight.count

    @property
    def draining(self) -> bool:
        """Signalbox is draining this instance (or stopping it): take no new work."""
        return self.handshake.leaving

    @property
    def drain(self) -> Drain | None:
        """The drain as last heard (its deadline moves with heartbeats), or None."""
        return self.handshake.drain if self.handshake.leaving else None

    @property
    def lifecycle(self) -> str | None:
        """The lifecycle state as last heard: launching, in_service, draining,
        terminate_when_ready, stopping, terminated (None before the first answer)."""
        return self.handshake.state

    @property
    def protected_until(self) -> datetime | None:
        return self.handshake.protected_until

    def ready_to_terminate(self, reason: str = "") -> None:
        """Tell Signalbox this instance may be stopped now (sent by the client's thread).
        With auto_ready (the default) the client says it once drained and idle."""
        self.handshake.want_ready(reason or "the service said so")
        self._wake.set()

    def protect(self, minutes: int = PROTECTION_DEFAULT_MINUTES, reason: str = "") -> None:
        """Don't choose this instance for scale-in for `minutes` (1 to 2880, default 120),
        like ECS task protection; sent by the client's thread, `protected_until` once done."""
        if isinstance(minutes, bool) or not isinstance(minutes, int):
            raise ValueError(f"minutes must be a whole number (got {minutes!r})")
        if not 1 <= minutes <= PROTECTION_MAX_MINUTES:
            raise ValueError(f"minutes must be 1 to {PROTECTION_MAX_MINUTES} (got {minutes})")
        self.handshake.want_protection(minutes, reason)
        self._wake.set()

    def unprotect(self) -> None:
        """This instance may be chosen for scale-in again."""
        self.handshake.want_unprotection()
        self._wake.set()

    def poll_lifecycle(self) -> bool:
        """Fetch the lifecycle now if it changed (If-None-Match); True if the answer was
        usable. The client's thread does this by itself every `lifecycle_interval`."""
        if self.instance_id is None:
            return False
        return self.handshake.poll(self.instance_id)

    def report_metrics(self, values: Mapping[str, float], at: datetime | None = None) -> None:
        """Report values about this instance (`{"cpu_percent": 41.5, "queue.depth": 12}`),
        sent in the next batch. A name or value the API would refuse raises ValueError here."""
        self.metrics.add(values, at)
        self._wake.set()

    @property
    def deletion_cost(self) -> float | None:
        """This instance's cost of deletion: scale-in takes the lowest first (then the least
        loaded, then the oldest). Set it (`signalbox.deletion_cost = 10`); sent with every
        batch of metrics. None (the default) reports nothing, which Signalbox reads as 0."""
        return self.metrics.deletion_cost

    @deletion_cost.setter
    def deletion_cost(self, value: float | None) -> None:
        self.metrics.set_deletion_cost(value)
        self._wake.set()

    def _work_edge(self, busy: bool) -> None:
        # On the app's thread: only wake the client when the edge matters to Signalbox.
        if self.metrics.became_busy() if busy else self.handshake.leaving:
            self._wake.set()

    def _metric_key(self) -> dict[str, Any] | None:
        if self.instance_id is not None:
            return {"instance": self.instance_id}
        if self.host is not None and self.port is not None:
            return self._address()
        return None

    # -- health -------------------------------------------------------------------------------

    def health(
        self, checks: dict[str, Check] | None = None, *, include_circuits: bool = True
    ) -> Health:
        """A Health for this instance, with its breakers' states as checks (open ones warn)."""
        return Health(
            service_id=self.service,
            version=self.version or None,
            checks=checks,
            circuits=self if include_circuits else None,
        )
