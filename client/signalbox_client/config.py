"""Runtime config from Signalbox, live: a thread long-polls
`GET /api/v1/config/<service>/<environment>` (ETag / If-None-Match, held until a change),
keeps the values, flags, endpoints and secrets, and applies log levels to Python `logging`
as they change, restoring a logger's own level when its key (or a debug window) goes away.

    config = ConfigWatcher(url, token, "checkout", "production", instance=42)
    config.start()
    if config.flag("new_checkout"): ...

With `instance` set, debug windows for that instance (or its zone) are included, and the
levels it applied are reported back, which is how Signalbox proves a window's revert."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlencode

from signalbox_client.transport import Transport, Unreachable, error_message

logger = logging.getLogger(__name__)

ROOT_NAMES = ("root", "ROOT")
# Seconds between retries while the control plane cannot be reached, doubling up to the cap.
RETRY_SECONDS = 1.0
RETRY_CAP_SECONDS = 30.0
_LEVELS = {
    "TRACE": logging.DEBUG,
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARN": logging.WARNING,
    "WARNING": logging.WARNING,
    "ERROR": logging.ERROR,
    "CRITICAL": logging.CRITICAL,
    "FATAL": logging.CRITICAL,
    "OFF": logging.CRITICAL + 10,
}


class ConfigWatcher:
    """Thread-safe reads; one daemon thread does the polling."""

    def __init__(
        self,
        base_url: str,
        token: str,
        service: str,
        environment: str,
        *,
        instance: int | None = None,
        wait_seconds: int = 60,
        apply_log_levels: bool = True,
        on_change: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        if not 1 <= wait_seconds <= 300:
            raise ValueError("wait_seconds must be between 1 and 300 (the server's maximum)")
        # The server holds up to wait + wait/16; the socket waits a little longer than that.
        self.transport = Transport(base_url, token, timeout=wait_seconds * 17 / 16 + 10)
        self.path = f"/api/v1/config/{quote(service)}/{quote(environment)}"
        self.instance = instance
        self.wait_seconds = wait_seconds
        self.apply_log_levels = apply_log_levels
        self.on_change = on_change
        self.etag: str | None = None
        self.document: dict[str, Any] = {}
        self._originals: dict[str, int] = {}
        self._lock = threading.RLock()  # wait_for predicates read under it
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.changed = threading.Condition(self._lock)

    # -- reading -------------------------------------------------------------------------

    def _section(self, name: str) -> dict[str, Any]:
        with self._lock:
            return dict(self.document.get(name) or {})

    def flag(self, key: str, default: bool = False) -> bool:
        return bool(self._section("flags").get(key, default))

    def value(self, key: str, default: Any = None) -> Any:
        return self._section("values").get(key, default)

    def endpoint(self, key: str, default: str | None = None) -> str | None:
        return self._section("endpoints").get(key, default)

    def secret(self, key: str) -> str | None:
        return self._section("secrets").get(key)

    def log_levels(self) -> dict[str, str]:
        return self._section("log_levels")

    @property
    def version(self) -> int:
        with self._lock:
            return int(self.document.get("version", 0))

    # -- running -------------------------------------------------------------------------

    def start(self) -> ConfigWatcher:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="signalbox-config", daemon=True)
            self._thread.start()
        return self

    def stop(self, *, restore: bool = True) -> None:
        """Stop polling (the thread ends after the poll in flight); restore logger levels."""
        self._stop.set()
        if restore:
            self._apply({})

    def wait_for(self, predicate: Callable[[ConfigWatcher], bool], timeout: float) -> bool:
        """Block until `predicate(self)` holds after a change (or now), at most `timeout` s."""
        with self.changed:
            return self.changed.wait_for(lambda: predicate(self), timeout)

    def poll_once(self) -> bool:
        """One long-poll; True if the config changed. Raises Unreachable."""
        headers = {"If-None-Match": self.etag} if self.etag else {}
        query = {"wait": f"{self.wait_seconds}s"}
        if self.instance is not None:
            query["instance"] = str(self.instance)
        answer = self.transport.request("GET", f"{self.path}?{urlencode(query)}", headers=headers)
        if answer.status == 304:
            return False
        if answer.status != 200 or not isinstance(answer.body, dict):
            raise Unreachable(f"config answered {answer.status}: {error_message(answer)}")
        applied = self._apply(answer.body.get("log_levels") or {}) if self.apply_log_levels else {}
        if self.instance is not None and self.apply_log_levels:
            self._report(applied)  # before waking readers: "changed" means "reported" too
        with self.changed:
            self.document = answer.body
            self.etag = answer.etag
            self.changed.notify_all()
        if self.on_change is not None:
            self.on_change(answer.body)
        return True

    def _run(self) -> None:
        delay = RETRY_SECONDS
        while not self._stop.is_set():
            try:
                self.poll_once()
                delay = RETRY_SECONDS
            except Unreachable as exc:
                logger.warning("signalbox config: %s; retrying in %.0f s", exc, delay)
                self._stop.wait(delay)
                delay = min(delay * 2, RETRY_CAP_SECONDS)

    # -- log levels ----------------------------------------------------------------------

    def _apply(self, levels: dict[str, str]) -> dict[str, str]:
        """Set each named logger; put back the original level of those no longer named.
        Returns what is applied now (logger -> level name), as reported to Signalbox."""
        applied: dict[str, str] = {}
        with self._lock:
            for name, level in levels.items():
                number = _LEVELS.get(str(level).upper())
                if number is None:
                    logger.warning("signalbox config: unknown level %r for %s", level, name)
                    continue
                target = logging.getLogger(None if name in ROOT_NAMES else name)
                self._originals.setdefault(name, target.level)
                target.setLevel(number)
                applied[name] = str(level).upper()
            for name in [n for n in self._originals if n not in applied]:
                target = logging.getLogger(None if name in ROOT_NAMES else name)
                target.setLevel(self._originals.pop(name))
        return applied

    def _report(self, applied: dict[str, str]) -> None:
        try:
            self.transport.request(
                "POST", "/api/v1/applied-levels", {"instance": self.instance, "levels": applied}
            )
        except Unreachable as exc:
            logger.warning("signalbox config: could not report applied levels: %s", exc)
