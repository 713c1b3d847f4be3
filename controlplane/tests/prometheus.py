"""A real Prometheus (Debian's /usr/bin/prometheus) for tests: scrape targets of our own on
127.0.0.1, then ask its HTTP API. Used by the analysis provider's tests and by the
/metrics scrape test; skips the test when Prometheus is not installed."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

PROMETHEUS = shutil.which("prometheus")


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url

    def query(self, promql: str) -> dict[str, Any]:
        """The API's answer to an instant query (status, data or error), as JSON."""
        answer: dict[str, Any] = httpx.get(
            f"{self.url}/api/v1/query", params={"query": promql}, timeout=5
        ).json()
        return answer

    def wait_for(
        self,
        promql: str,
        condition: Callable[[list[dict[str, Any]]], bool] = bool,
        timeout: float = 30,
    ) -> list[dict[str, Any]]:
        """Poll until the query's result meets `condition` (by default: is not empty)."""
        deadline = time.monotonic() + timeout
        result: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            try:
                answer = self.query(promql)
                result = answer["data"]["result"] if answer.get("status") == "success" else []
                if condition(result):
                    return result
            except (httpx.HTTPError, KeyError, ValueError):
                pass
            time.sleep(0.2)
        raise AssertionError(f"prometheus never answered {promql} as expected; last: {result}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def running_prometheus(config: str, directory: Path) -> Iterator[Prometheus]:
    """Prometheus with this YAML config, its data in `directory`, on a free local port."""
    if PROMETHEUS is None:
        pytest.skip("prometheus is not installed (apt-get install -y prometheus)")
    port = free_port()
    (directory / "prometheus.yml").write_text(config)
    log = (directory / "prometheus.log").open("w")
    process = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={directory / 'prometheus.yml'}",
            f"--storage.tsdb.path={directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield Prometheus(f"http://127.0.0.1:{port}")
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
