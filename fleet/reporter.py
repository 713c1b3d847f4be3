"""Each demo instance reports what a real service's agent would: its memory, its CPU and the
requests it has in flight, batched to Signalbox's `POST /api/v1/metrics` every few seconds
with its team's `report` token.

The fleet's instances share one process, so two of the three figures are a model, not a
reading: `memory_mb` is the instance's baseline plus the memory its `leak` fault really
allocated, and `cpu_percent` follows the calls it answered over the last minute
(`CPU_PER_RPS` per call per second, on top of `IDLE_CPU`). `in_flight` is exact. That is
enough for the scaler's victim choice (never one with work in flight) and for the leak
verdict (memory growing while load is flat) to show in `make run`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from .instance import ERROR_WINDOW_SECONDS, Instance
from .plan import ConfigError

log = logging.getLogger("fleet.reporter")

IDLE_CPU = 3.0
CPU_PER_RPS = 9.0
DEFAULT_INTERVAL_SECONDS = 10.0


def load_tokens(path: Path) -> dict[str, str]:
    """A JSON object of team slug -> report token (`manage.py seed_demo` writes one)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read report tokens ({exc})") from None
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v for k, v in data.items()
    ):
        raise ConfigError(
            f'{path}: must be a JSON object of team slug -> token, e.g. {{"payments": "sbx_..."}}'
        )
    return dict(data)


class TokenFile:
    """The tokens file, read again whenever it changes: the fleet may start before the seed
    writes it (docker-compose starts the fleet first), and a re-seed may replace tokens."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._seen: float | None = None
        self._tokens: dict[str, str] = {}
        self._problem = ""

    def current(self) -> dict[str, str]:
        try:
            changed = self.path.stat().st_mtime
        except OSError:
            self._say(f"waiting for {self.path} (manage.py seed_demo writes it)")
            return {}
        if changed != self._seen:
            try:
                self._tokens = load_tokens(self.path)
                self._seen, self._problem = changed, ""
            except ConfigError as exc:
                self._say(str(exc))
                return {}
        return self._tokens

    def _say(self, problem: str) -> None:
        if problem != self._problem:
            log.warning("report tokens: %s", problem)
        self._problem = problem


def readings(instance: Instance) -> dict[str, float]:
    calls, _ = instance.calls.totals()
    rps = calls / ERROR_WINDOW_SECONDS
    return {
        "memory_mb": round(instance.memory_mb, 3),
        "cpu_percent": round(min(100.0, IDLE_CPU + CPU_PER_RPS * rps), 2),
        "in_flight": float(instance.in_flight),
    }


class Reporter:
    """Posts every live instance's readings, one batch per team, until stopped."""

    def __init__(
        self,
        url: str,
        tokens: Callable[[], dict[str, str]],
        instances: Callable[[], list[tuple[str, Instance]]],
        session: Callable[[], aiohttp.ClientSession],
        interval: float = DEFAULT_INTERVAL_SECONDS,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"--report-url must start with http:// or https:// (got {url!r})")
        self.endpoint = url.rstrip("/") + "/api/v1/metrics"
        self.tokens = tokens  # team slug -> token, asked each round
        self.instances = instances  # (team, instance) pairs, taken fresh each round
        self.session = session
        self.interval = interval
        self.sent = 0  # values accepted by Signalbox
        self.failing = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.report_once()

    def batches(self, tokens: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
        by_team: dict[str, list[dict[str, Any]]] = {}
        for team, instance in self.instances():
            if team not in tokens or not instance.listening:
                continue
            spec = instance.spec
            for name, value in readings(instance).items():
                by_team.setdefault(team, []).append(
                    {
                        "service": spec.service,
                        "environment": spec.environment,
                        "host": spec.host,
                        "port": spec.port,
                        "name": name,
                        "value": value,
                    }
                )
        return by_team

    async def report_once(self) -> None:
        tokens = self.tokens()
        for team, values in self.batches(tokens).items():
            try:
                status, body = await self._post(tokens[team], values)
                if status == 400:
                    # Signalbox keeps nothing of a batch naming an instance it does not know
                    # (one the fleet launched that is not registered yet): send the rest.
                    refused = _refused(body)
                    kept = [v for n, v in enumerate(values) if n not in refused]
                    if refused and kept:
                        values = kept
                        status, body = await self._post(tokens[team], values)
                if status == 202:
                    self.sent += len(values)
                    self._recovered()
                else:
                    self._failed(f"{team}: {status} {body[:300]}")
            except (aiohttp.ClientError, TimeoutError) as exc:
                # Signalbox away: the next round tries again; readings are not queued.
                self._failed(f"{type(exc).__name__}: {exc}")

    async def _post(self, token: str, values: list[dict[str, Any]]) -> tuple[int, str]:
        headers = {"Authorization": f"Bearer {token}"}
        async with self.session().post(
            self.endpoint, json={"metrics": values}, headers=headers
        ) as answer:
            return answer.status, await answer.text()

    def _failed(self, why: str) -> None:
        if not self.failing:
            log.warning("reporting metrics to %s failed (%s); retrying every %gs",
                        self.endpoint, why, self.interval)  # fmt: skip
        self.failing = True

    def _recovered(self) -> None:
        if self.failing:
            log.info("reporting metrics to %s works again", self.endpoint)
        self.failing = False


def _refused(body: str) -> set[int]:
    """The positions of the values a 400 names (`metrics.3`, `metrics.3.at`)."""
    try:
        fields = json.loads(body)["error"]["fields"]
    except (ValueError, KeyError, TypeError):
        return set()
    found = set()
    for key in fields:
        parts = str(key).split(".")
        if len(parts) >= 2 and parts[0] == "metrics" and parts[1].isdigit():
            found.add(int(parts[1]))
    return found
