"""The scale-in handshake on the instance's side: learn that Signalbox is draining this
instance, finish the work in flight (heartbeating while it lasts), say ready to terminate;
or ask not to be chosen at all for a while (protection, like ECS task protection).

All talking happens on the client's background thread. The service's threads only count
work (`InFlight`) and leave wishes (protect, unprotect, ready) that the thread carries
out; nothing here raises into them. A control plane that is away is asked again later, and
what it said last stays true meanwhile.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from signalbox_client.transport import Answer, Transport, Unreachable, error_message

logger = logging.getLogger("signalbox_client")

LIFECYCLE_PATH = "/api/v1/instances/{id}/lifecycle"
READY_PATH = "/api/v1/instances/{id}/ready-to-terminate"
HEARTBEAT_PATH = "/api/v1/instances/{id}/lifecycle-heartbeat"
PROTECTION_PATH = "/api/v1/instances/{id}/protection"

# The states GET .../lifecycle answers (scaling/api/handshake.py).
LAUNCHING = "launching"
IN_SERVICE = "in_service"
DRAINING = "draining"  # chosen; the router is being drained
TERMINATE_WHEN_READY = "terminate_when_ready"  # the router stopped routing: finish, say ready
STOPPING = "stopping"  # SIGTERM is on its way
TERMINATED = "terminated"
LEAVING = frozenset({DRAINING, TERMINATE_WHEN_READY, STOPPING})

# While leaving, the answer decides when the instance may go: look every second (a 304).
LEAVING_POLL_SECONDS = 1.0
# A Signalbox without the endpoint (404: older, or the instance was deleted) is asked rarely.
NOT_FOUND_POLL_SECONDS = 60.0
# A ready, heartbeat or protection that did not get through is tried again after this,
# doubling up to the cap while the control plane stays away.
RETRY_SECONDS, MAX_RETRY_SECONDS = 1.0, 30.0
# Heartbeats go at half the lifecycle timeout, and never more often than this.
MIN_HEARTBEAT_EVERY = 1.0
PROTECTION_DEFAULT_MINUTES, PROTECTION_MAX_MINUTES = 120, 2880  # ECS's default and maximum


@dataclass(frozen=True)
class Drain:
    """What Signalbox said when it began to drain this instance."""

    state: str
    # Ready-to-terminate is expected by then; heartbeats move it. None until the router has
    # confirmed the drain (state `draining`).
    deadline: datetime | None
    since: datetime | None
    heartbeat_seconds: int | None


class InFlight:
    """Work in flight, counted on the service's threads; `on_edge(busy)` hears 0 -> 1 and
    1 -> 0 (it must only set flags: it runs on the service's thread)."""

    def __init__(self, on_edge: Callable[[bool], None]) -> None:
        self._count = 0
        self._lock = threading.Lock()
        self._on_edge = on_edge
        self.tracked = False  # the service counts its work: report it
        self.unbalanced = 0  # end_work() calls without a begin_work()

    def begin(self) -> None:
        with self._lock:
            self._count += 1
            self.tracked = True
            busy = self._count == 1
        if busy:
            self._on_edge(True)

    def end(self) -> None:
        with self._lock:
            if self._count == 0:
                self.unbalanced += 1
                first, idle = self.unbalanced == 1, False
            else:
                self._count -= 1
                first, idle = False, self._count == 0
        if first:
            logger.warning("signalbox: end_work() without begin_work(); counted in stats()")
        if idle:
            self._on_edge(False)

    @property
    def count(self) -> int:
        return self._count


@dataclass
class _Listener:
    callback: Callable[[Drain], Any]
    fired: bool = False


class Handshake:
    """The instance's lifecycle as last heard, and the answers it owes (run by the thread)."""

    def __init__(
        self,
        transport: Transport,
        in_flight: InFlight,
        *,
        interval: float | None,
        auto_ready: bool,
        on_error: Callable[[str], None],
    ) -> None:
        self.transport = transport
        self.in_flight = in_flight
        self.interval = interval
        self.auto_ready = auto_ready
        self._on_error = on_error
        self._lock = threading.Lock()
        self._listeners: list[_Listener] = []
        self.state: str | None = None
        self.etag: str | None = None
        self.drain: Drain | None = None
        self.heartbeat_seconds: int | None = None
        self.protected_until: datetime | None = None
        self.ready_sent = False  # Signalbox accepted ready-to-terminate for this drain
        self.heartbeats_sent = 0
        self._saw_drain = False
        self._done = False  # nothing more to answer for this drain (ready sent, or refused)
        self._ready_wish: str | None = None
        self._protection_wish: tuple[str, int, str] | None = None
        self._next_poll = 0.0
        self._next_beat = 0.0
        self._retry_at = 0.0
        self._backoff = 0.0
        self._not_found = False

    # -- what the service asks (any thread) ---------------------------------------------------

    def on_drain(self, callback: Callable[[Drain], Any]) -> None:
        with self._lock:
            self._listeners.append(_Listener(callback))

    def want_ready(self, reason: str) -> None:
        self._ready_wish = reason[:300]

    def want_protection(self, minutes: int, reason: str) -> None:
        self._protection_wish = ("protect", minutes, reason[:300])

    def want_unprotection(self) -> None:
        self._protection_wish = ("unprotect", 0, "")

    @property
    def leaving(self) -> bool:
        return self.state in LEAVING

    @property
    def finished(self) -> bool:
        """This instance is on its way out for good: registering again would revive it."""
        return (
            self.ready_sent
            or self.state == STOPPING
            or (self.state == TERMINATED and self._saw_drain)
        )

    # -- the background thread ------------------------------------------------------------------

    def step(self, now: float, instance_id: int | None) -> float:
        """Do what is due; returns when to come back (time.monotonic())."""
        if instance_id is None or self.interval is None:
            return now + (self.interval or 3600.0)
        if self._protection_wish is not None and now >= self._retry_at:
            self._send_protection(instance_id, now)
        if now >= self._next_poll:
            self._next_poll = now + self._poll_every(self.poll(instance_id))
        if self.leaving:
            self._fire()
        due = [self._next_poll]
        if self._protection_wish is not None:
            due.append(self._retry_at)
        answer_at = self._answer(now, instance_id)
        if answer_at is not None:
            due.append(answer_at)
        return min(due)

    def poll(self, instance_id: int) -> bool:
        """GET the lifecycle with If-None-Match; True when the answer was usable (304 too)."""
        headers = {"If-None-Match": self.etag} if self.etag else {}
        try:
            answer = self.transport.request(
                "GET", LIFECYCLE_PATH.format(id=instance_id), headers=headers
            )
        except Unreachable as exc:
            self._on_error(str(exc))
            return False
        said_before = self._not_found
        self._not_found = answer.status == 404
        if answer.status == 304:
            return True
        if answer.status == 200 and isinstance(answer.body, dict):
            self.etag = answer.etag
            self._heard(answer.body)
            return True
        if self._not_found and said_before:
            return False  # said once: an older Signalbox, or the instance was deleted
        self._refused("lifecycle", answer)
        return False

    def _poll_every(self, usable: bool) -> float:
        assert self.interval is not None
        if self.leaving:
            return min(self.interval, LEAVING_POLL_SECONDS)
        if not usable and self._not_found:
            return max(self.interval, NOT_FOUND_POLL_SECONDS)
        return self.interval

    def _heard(self, body: dict[str, Any]) -> None:
        """Take in a lifecycle answer (from a poll, or a POST's answer)."""
        state = str(body.get("state") or "")
        before = self.state
        self.state = state
        if "protected_until" in body:
            self.protected_until = _when(body.get("protected_until"))
        if isinstance(body.get("heartbeat_seconds"), int):
            self.heartbeat_seconds = body["heartbeat_seconds"]
        if state in LEAVING:
            self._saw_drain = True
            self.drain = Drain(
                state,
                _when(body.get("deadline")),
                _when(body.get("since")),
                self.heartbeat_seconds,
            )
            if state == TERMINATE_WHEN_READY and before != TERMINATE_WHEN_READY:
                self._next_beat = 0.0  # busy: restart the timeout now, it began before we heard
                logger.info("signalbox: draining; ready to terminate expected by %s",
                            self.drain.deadline)  # fmt: skip
        elif state in (IN_SERVICE, LAUNCHING) and before in LEAVING:
            # The termination was called off: a later drain is a new one.
            self.drain = None
            self.ready_sent = self._done = self._saw_drain = False
            with self._lock:
                for listener in self._listeners:
                    listener.fired = False

    def _fire(self) -> None:
        drain = self.drain
        assert drain is not None
        with self._lock:
            due = [listener for listener in self._listeners if not listener.fired]
            for listener in due:
                listener.fired = True
        for listener in due:
            try:
                listener.callback(drain)
            except Exception:  # the service's callback must not stop the handshake
                logger.exception("signalbox: on_drain callback %r failed", listener.callback)

    def _answer(self, now: float, instance_id: int) -> float | None:
        """Say ready, or heartbeat while work is in flight; returns when next due."""
        if self._done:
            return None
        wish = self._ready_wish
        busy = self.in_flight.count > 0
        if wish is None and self.auto_ready and self.state == TERMINATE_WHEN_READY and not busy:
            wish = "no work in flight"
        if wish is not None:
            if now >= self._retry_at:
                self._send_ready(instance_id, wish, now)
            return None if self._done else self._retry_at
        if self.state == TERMINATE_WHEN_READY and busy:
            if now >= self._next_beat:
                self._send_heartbeat(instance_id, now)
            return self._next_beat
        return None

    def _send_ready(self, instance_id: int, reason: str, now: float) -> None:
        try:
            answer = self.transport.request(
                "POST", READY_PATH.format(id=instance_id), {"reason": reason}
            )
        except Unreachable as exc:
            self._retry(now, str(exc))
            return
        if answer.status == 200:
            self._backoff = 0.0
            self._ready_wish = None
            self.ready_sent = self._done = True
            if isinstance(answer.body, dict):
                self._heard(answer.body)
            logger.info("signalbox: said ready to terminate (%s)", reason)
        elif 400 <= answer.status < 500:
            # 404: not (or no longer) being terminated. Asking again would get the same.
            self._ready_wish = None
            self._done = self.leaving
            self._next_poll = now  # see where it stands
            self._refused("ready-to-terminate", answer)
        else:
            self._retry(now, f"ready-to-terminate answered {answer.status}")

    def _send_heartbeat(self, instance_id: int, now: float) -> None:
        try:
            answer = self.transport.request("POST", HEARTBEAT_PATH.format(id=instance_id))
        except Unreachable as exc:
            self._on_error(str(exc))
            self._next_beat = now + RETRY_SECONDS
            return
        every = max(MIN_HEARTBEAT_EVERY, (self.heartbeat_seconds or 60) / 2)
        if answer.status == 200:
            self.heartbeats_sent += 1
            if isinstance(answer.body, dict):
                self._heard(answer.body)
            self._next_beat = now + every
        else:
            self._refused("lifecycle-heartbeat", answer)
            self._next_beat = now + (every if answer.status < 500 else RETRY_SECONDS)
            self._next_poll = now

    def _send_protection(self, instance_id: int, now: float) -> None:
        wish = self._protection_wish
        assert wish is not None
        kind, minutes, reason = wish
        path = PROTECTION_PATH.format(id=instance_id)
        try:
            if kind == "protect":
                answer = self.transport.request(
                    "POST", path, {"minutes": minutes, "reason": reason}
                )
            else:
                answer = self.transport.request("DELETE", path)
        except Unreachable as exc:
            self._retry(now, str(exc))
            return
        if answer.status >= 500:
            self._retry(now, f"protection answered {answer.status}")
            return
        if self._protection_wish is wish:  # a newer wish waits for the next pass
            self._protection_wish = None
        self._backoff = 0.0
        if answer.status == 200 and isinstance(answer.body, dict):
            self.protected_until = _when(answer.body.get("protected_until"))
        else:
            self._refused("protection", answer)

    def _retry(self, now: float, why: str) -> None:
        self._on_error(why)
        self._backoff = min(max(self._backoff * 2, RETRY_SECONDS), MAX_RETRY_SECONDS)
        self._retry_at = now + self._backoff

    def _refused(self, what: str, answer: Answer) -> None:
        why = f"{what} answered {answer.status}: {error_message(answer)}"
        self._on_error(why)
        logger.warning("signalbox: %s", why)

    def finish(self, instance_id: int | None) -> None:
        """The service is stopping while Signalbox waits for it: don't make it wait longer."""
        if instance_id is None or not self.leaving or self._done:
            return
        self._send_ready(instance_id, self._ready_wish or "the service stopped", 0.0)


def _when(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None
