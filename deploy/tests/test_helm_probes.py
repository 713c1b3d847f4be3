"""The chart's pods as real processes: the rendered web container's environment and probes
against a real uvicorn with production settings, and the rendered worker's concurrency.

What a cluster would add is played here: the Secret's keys become files and variables (as
the kubelet mounts and injects them), and each probe is sent as the kubelet sends it (its
path, port and headers; success is a status from 200 to 399, redirects not followed).
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from controlplane.tests.resilience import OwnRedis, free_port, wait_for
from deploy.tests.rendering import ROOT, component, container, dockerfile_cmd, render

pytestmark = pytest.mark.slow
HOST = "signalbox.example.com"


def process_environment(
    workload: dict[str, Any], secret: dict[str, str], files: Path
) -> dict[str, str]:
    """The container's environment as the kubelet would give it: secretKeyRef values from
    `secret`, and the secret volume's files written under `files` instead of /run/secrets."""
    spec = workload["spec"]["template"]["spec"]
    (volume,) = [v["secret"] for v in spec["volumes"] if "secret" in v]
    (mount,) = [m for m in container(workload)["volumeMounts"] if m["name"] == "secrets"]
    for item in volume["items"]:
        (files / item["path"]).write_text(secret[item["key"]] + "\n")
    env = {"PATH": os.environ["PATH"], "HOME": str(files), "PYTHONPATH": str(ROOT)}
    for item in container(workload)["env"]:
        if "valueFrom" in item:
            env[item["name"]] = secret[item["valueFrom"]["secretKeyRef"]["key"]]
        else:
            env[item["name"]] = item["value"].replace(mount["mountPath"], str(files))
    return env


def probe(port: int, http_get: dict[str, Any], **replace_headers: str | None) -> int:
    """The status a kubelet's httpGet probe gets (it does not follow a redirect off-host)."""
    return fetch(port, http_get, **replace_headers)[0]


def fetch(port: int, http_get: dict[str, Any], **replace_headers: str | None) -> tuple[int, bytes]:
    """(status, body) of the probe's request, with headers replaced (None: left out)."""
    headers = {h["name"]: h["value"] for h in http_get.get("httpHeaders", [])}
    for name, value in replace_headers.items():
        name = name.replace("_", "-")
        if value is None:
            headers.pop(name, None)
        else:
            headers[name] = value
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.putrequest("GET", http_get["path"], skip_host="Host" in headers)
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def kubelet_passes(status: int) -> bool:
    return 200 <= status < 400


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    own = OwnRedis(tmp_path)
    own.start()
    yield own
    own.stop()


@pytest.fixture
def secret(transactional_db: None, own_redis: OwnRedis) -> dict[str, str]:
    """The Secret's four keys: the test database, a Redis of the test's own, new keys."""
    return {
        "database-url": _test_database_url(),
        "redis-url": own_redis.url,
        "secret-key": secrets.token_urlsafe(50),
        "encryption-key": Fernet.generate_key().decode(),
    }


def _test_database_url() -> str:
    """The database pytest-django set up (test_<name>), as a DATABASE_URL."""
    from django.db import connection

    db = {key: str(value or "") for key, value in connection.settings_dict.items()}
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def test_the_rendered_probes_tell_ready_from_not_ready(
    secret: dict[str, str], own_redis: OwnRedis, tmp_path: Path
) -> None:
    # given the chart rendered for a TLS ingress, SECURE_SSL_REDIRECT on
    objects = render(**{
        "secrets.existingSecret": "signalbox", "config.allowedHosts[0]": HOST,
        "ingress.enabled": "true", "ingress.host": HOST,
    })  # fmt: skip
    web = component(objects, "Deployment", "web")
    spec = container(web)
    files = tmp_path / "secrets"
    files.mkdir()
    env = process_environment(web, secret, files)
    assert env["SECURE_SSL_REDIRECT"] == "true" and env["SIGNALBOX_ENV"] == "production"
    # and the static files the image collects at build time (its STATIC_ROOT)
    env["STATIC_ROOT"] = str(tmp_path / "static")
    subprocess.run([sys.executable, "manage.py", "collectstatic", "--no-input"], cwd=ROOT,
                   env=env, check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    # and the image's CMD on a free loopback port instead of 0.0.0.0:8000
    command = dockerfile_cmd()
    port = free_port()
    command[command.index("--host") + 1] = "127.0.0.1"
    command[command.index("--port") + 1] = str(port)
    command[0] = str(Path(sys.executable).with_name(command[0]))
    log = (tmp_path / "web.log").open("ab")
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)  # fmt: skip
    readiness, liveness = spec["readinessProbe"]["httpGet"], spec["livenessProbe"]["httpGet"]
    try:
        startup = spec["startupProbe"]
        allowed = startup["periodSeconds"] * startup["failureThreshold"]
        wait_for(lambda: _answers(port, startup["httpGet"]) == 200, allowed, f"startup; {tmp_path}")
        # when everything is up, the pod is ready and alive
        status, body = fetch(port, readiness)
        assert status == 200, body
        assert probe(port, liveness) == 200
        # without the chart's headers the kubelet's request is refused (its Host is the
        # pod's IP) or redirected to https (which a kubelet counts as success)
        assert probe(port, readiness, Host="10.244.1.7:8000") == 400
        assert probe(port, readiness, X_Forwarded_Proto=None) == 301

        # when Redis goes away
        own_redis.stop()
        # then the pod leaves the Service but is not restarted
        wait_for(lambda: probe(port, readiness) == 503, 15, "/readyz to fail")
        assert "redis" in json.loads(fetch(port, readiness)[1])["output"]
        assert not kubelet_passes(probe(port, readiness))
        assert probe(port, liveness) == 200
        # and without X-Forwarded-Proto the redirect would have kept it in rotation
        assert kubelet_passes(probe(port, readiness, X_Forwarded_Proto=None))
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(15)


def _ready(worker_log: Path) -> bool:
    return "ready." in worker_log.read_text(errors="replace")


def _answers(port: int, http_get: dict[str, Any]) -> int:
    try:
        return probe(port, http_get)
    except OSError:
        return 0


def test_the_rendered_worker_runs_the_pods_share_of_processes(
    secret: dict[str, str], tmp_path: Path
) -> None:
    # given the worker container as rendered: compose's command, the chart's concurrency
    objects = render(**{"secrets.existingSecret": "signalbox", "config.allowedHosts[0]": HOST,
                        "worker.concurrency": "3"})  # fmt: skip
    worker = component(objects, "Deployment", "worker")
    files = tmp_path / "secrets"
    files.mkdir()
    env = process_environment(worker, secret, files)
    command = list(container(worker)["command"])
    command[0] = str(Path(sys.executable).with_name(command[0]))
    log_path = tmp_path / "worker.log"
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log_path.open("ab"),
                               stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        # then Celery starts that many prefork processes, whatever the machine's CPU count
        wait_for(lambda: _ready(log_path), 60, f"worker ready; see {log_path}")
        assert "concurrency: 3 (prefork)" in log_path.read_text()
        children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
        assert len(children) == 3
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)
