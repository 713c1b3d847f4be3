"""The Helm chart (deploy/helm/signalbox) rendered by the real `helm template`: valid for a
pinned Kubernetes, and the same processes, commands and settings as docker-compose.yml."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from deploy.tests.rendering import (
    CHART,
    COMPOSE_PROCESSES,
    COMPOSE_VALUES,
    ROOT,
    RenderError,
    by_kind,
    component,
    compose,
    container,
    dockerfile_cmd,
    pod_spec,
    render,
)

# The oldest Kubernetes still in wide support when the chart was written; every object
# must validate against its published schema, strictly (no unknown fields).
KUBERNETES_VERSION = "1.30.0"
# Settings only the cluster needs, each with why; anything else the chart sets that
# docker-compose.yml does not (or the reverse) is drift.
KUBERNETES_ONLY_ENV = {
    # Celery's default concurrency is the node's CPU count, not the pod's share of it.
    "worker": {"CELERY_WORKER_CONCURRENCY"},
}

PRODUCTION_VALUES = {
    "secrets.existingSecret": "signalbox",
    "config.allowedHosts[0]": "signalbox.example.com",
    "config.csrfTrustedOrigins[0]": "https://signalbox.example.com",
    "ingress.enabled": "true",
    "ingress.host": "signalbox.example.com",
    "ingress.tls[0].secretName": "signalbox-tls",
    "ingress.tls[0].hosts[0]": "signalbox.example.com",
    "config.extraEnv.LOG_LEVEL": "WARNING",
    "config.extraSecretEnv[0].name": "EMAIL_HOST_PASSWORD",
    "config.extraSecretEnv[0].secretName": "signalbox-smtp",
    "config.extraSecretEnv[0].key": "password",
    "imagePullSecrets[0].name": "registry",
}


@pytest.fixture(scope="module")
def composed() -> list[dict[str, Any]]:
    return render(COMPOSE_VALUES)


@pytest.fixture(scope="module")
def production() -> list[dict[str, Any]]:
    return render(**PRODUCTION_VALUES)


def workloads(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """compose service name -> the rendered workload that runs it."""
    found = {name: component(objects, "Deployment", name) for name in ("web", "worker", "beat")}
    found["migrate"] = component(objects, "Job", "migrate")
    return found


def env_of(workload: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in container(workload).get("env", [])}


@pytest.mark.parametrize(
    "values",
    [
        pytest.param({}, id="compose values"),
        pytest.param(PRODUCTION_VALUES, id="production values"),
        pytest.param(
            {**PRODUCTION_VALUES, "web.autoscaling.enabled": "false",
             "worker.autoscaling.enabled": "false", "migrate.enabled": "false",
             "ingress.nginx.enabled": "false", "web.podDisruptionBudget.enabled": "false"},
            id="no autoscaling, no migrations, other ingress",
        ),
    ],
)  # fmt: skip
def test_every_object_is_valid_for_the_pinned_kubernetes(values: dict[str, str]) -> None:
    # given the chart rendered with these values
    objects = render(COMPOSE_VALUES, **values) if not values else render(**values)
    # then each object passes the Kubernetes schema, unknown fields included
    assert objects
    for obj in objects:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_the_validation_catches_a_wrong_object(composed: list[dict[str, Any]]) -> None:
    # given a rendered Deployment with a field misspelt, as a bad template edit would make
    web = component(composed, "Deployment", "web")
    broken = yaml.safe_load(yaml.safe_dump(web))
    broken["spec"]["template"]["spec"]["containers"][0]["readynessProbe"] = {}
    # then the pinned schema refuses it
    with pytest.raises(kubernetes_validate.ValidationError, match="readynessProbe"):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_it_runs_every_compose_process_with_its_command(composed: list[dict[str, Any]]) -> None:
    services = compose()["services"]
    rendered = workloads(composed)
    # compose's processes are the chart's, besides the databases and the demo profile
    assert set(rendered) == set(COMPOSE_PROCESSES)
    ours = {
        name for name, service in services.items()
        if "profiles" not in service
        and not service.get("image", "").startswith(("postgres", "redis"))
    }  # fmt: skip
    assert ours == set(COMPOSE_PROCESSES)
    image_cmd = dockerfile_cmd()
    for name in COMPOSE_PROCESSES:
        # what each runs: its own command, or the image's CMD where it sets none (compose's
        # web; the chart's web leaves it to the image too)
        ran = container(rendered[name])
        assert "args" not in ran, name
        assert ran.get("command", image_cmd) == services[name].get("command", image_cmd), name


def test_web_listens_where_the_image_serves(composed: list[dict[str, Any]]) -> None:
    cmd = dockerfile_cmd()
    port = int(cmd[cmd.index("--port") + 1])
    web = component(composed, "Deployment", "web")
    (http,) = container(web)["ports"]
    # the pod's port is the CMD's, on every address (a pod is reached on its own IP)
    assert (http["name"], http["containerPort"]) == ("http", port)
    assert cmd[cmd.index("--host") + 1] == "0.0.0.0"  # noqa: S104
    service = by_kind(composed, "Service")[0]
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    assert service["spec"]["selector"] == web["spec"]["selector"]["matchLabels"]


def test_it_sets_the_compose_environment(composed: list[dict[str, Any]]) -> None:
    services = compose()["services"]
    for name, workload in workloads(composed).items():
        expected: dict[str, str] = {k: str(v) for k, v in services[name]["environment"].items()}
        env = env_of(workload)
        # the same names, plus only the documented Kubernetes-only ones
        assert set(env) == set(expected) | KUBERNETES_ONLY_ENV.get(name, set()), name
        for key, value in expected.items():
            if key in {"DATABASE_URL", "REDIS_URL"}:
                # compose has the demo's credentials inline; here they come from the Secret
                assert env[key]["valueFrom"]["secretKeyRef"]["name"] == "signalbox", key
            else:
                assert env[key]["value"] == value, f"{name}: {key}"


def test_key_files_are_where_compose_mounts_its_secrets(composed: list[dict[str, Any]]) -> None:
    services = compose()["services"]
    for name, workload in workloads(composed).items():
        env = env_of(workload)
        mounts = {m["name"]: m for m in container(workload)["volumeMounts"]}
        volumes = {v["name"]: v for v in pod_spec(workload)["volumes"]}
        secret_volume = volumes[mounts["secrets"]["name"]]["secret"]
        files = {
            f"{mounts['secrets']['mountPath']}/{item['path']}" for item in secret_volume["items"]
        }
        # compose's secrets are files under /run/secrets/, named by the *_FILE settings
        assert {f"/run/secrets/{s}" for s in services[name]["secrets"]} == files, name
        file_settings = (
            "SECRET_KEY_FILE", "SIGNALBOX_ENCRYPTION_KEY_FILE", "SIGNALBOX_ADMIN_PASSWORD_FILE"
        )
        named = {env[key]["value"] for key in file_settings if key in env}
        assert named == files, name
        assert secret_volume["secretName"] == "signalbox"
        assert mounts["secrets"]["readOnly"] is True
        # readable by the pod's group only (the image's user is in it), writable by nobody
        assert secret_volume["defaultMode"] == 0o440
        assert pod_spec(workload)["securityContext"]["fsGroup"] == 999


def test_it_never_holds_a_secret(production: list[dict[str, Any]]) -> None:
    # nothing secret is templated: the chart only names Secrets that exist
    assert not by_kind(production, "Secret") and not by_kind(production, "ConfigMap")
    for workload in workloads(production).values():
        env = env_of(workload)
        for name in ("DATABASE_URL", "REDIS_URL", "EMAIL_HOST_PASSWORD"):
            assert "value" not in env[name] and "secretKeyRef" in env[name]["valueFrom"], name
        assert env["EMAIL_HOST_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
            "name": "signalbox-smtp", "key": "password"
        }  # fmt: skip
        assert env["LOG_LEVEL"]["value"] == "WARNING"


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        ("secrets.existingSecret", "secrets.existingSecret: name a Secret you created"),
        ("config.allowedHosts", "config.allowedHosts: list the host names"),
    ],
)
def test_it_refuses_to_render_without_required_values(missing: str, message: str) -> None:
    values = {"secrets.existingSecret": "signalbox", "config.allowedHosts[0]": "example.com"}
    values = {k: v for k, v in values.items() if not k.startswith(missing)}
    with pytest.raises(RenderError, match=re.escape(message)):
        render(**values)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"worker.concurrency": "0"}, "worker.concurrency: Must be greater than or equal to 1"),
        ({"config.csrfTrustedOrigins[0]": "example.com"}, "csrfTrustedOrigins.0: Does not match"),
        ({"ingress.nginx.bodySize": "8MB"}, "ingress.nginx.bodySize: Does not match"),
    ],
)
def test_it_refuses_values_of_the_wrong_shape(value: dict[str, str], message: str) -> None:
    # values.schema.json answers before anything is rendered, naming the value
    with pytest.raises(RenderError, match=re.escape(message)):
        render(COMPOSE_VALUES, **value)


def test_beat_runs_exactly_once(production: list[dict[str, Any]]) -> None:
    beat = component(production, "Deployment", "beat")
    # one replica, and never two at once during a rollout
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"] == {"type": "Recreate"}
    # nothing scales it or holds it against a drain
    assert "beat" not in {h["spec"]["scaleTargetRef"]["name"].rsplit("-", 1)[-1]
                          for h in by_kind(production, "HorizontalPodAutoscaler")}  # fmt: skip
    labels = beat["spec"]["template"]["metadata"]["labels"]
    for pdb in by_kind(production, "PodDisruptionBudget"):
        selector = pdb["spec"]["selector"]["matchLabels"]
        assert not selector.items() <= labels.items(), pdb["metadata"]["name"]
    # and asking for more fails the install, saying why
    with pytest.raises(RenderError, match="beat must run exactly once"):
        render(COMPOSE_VALUES, **{"beat.replicas": "2"})


def test_migrations_run_once_before_install_and_upgrade(composed: list[dict[str, Any]]) -> None:
    job = component(composed, "Job", "migrate")
    annotations = job["metadata"]["annotations"]
    assert set(annotations["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}
    assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
    assert pod_spec(job)["restartPolicy"] == "Never"
    assert job["spec"].get("parallelism", 1) == 1
    assert not by_kind(render(COMPOSE_VALUES, **{"migrate.enabled": "false"}), "Job")


def test_web_probes_use_healthz_and_readyz(production: list[dict[str, Any]]) -> None:
    web = container(component(production, "Deployment", "web"))
    assert web["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert web["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert web["startupProbe"]["httpGet"]["path"] == "/healthz"
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        headers = {h["name"]: h["value"] for h in web[probe]["httpGet"]["httpHeaders"]}
        # answered like a proxied request (test_helm_probes.py shows why, on a real server)
        assert headers == {"Host": "signalbox.example.com", "X-Forwarded-Proto": "https"}
        assert web[probe]["httpGet"]["port"] == "http"
    # /readyz gives each check 1 s: the probe must wait longer than that
    assert web["readinessProbe"]["timeoutSeconds"] > 1


def test_the_probe_host_is_one_django_accepts() -> None:
    objects = render(**{**PRODUCTION_VALUES, "config.allowedHosts[0]": ".example.com"})
    web = container(component(objects, "Deployment", "web"))
    headers = {h["name"]: h["value"] for h in web["readinessProbe"]["httpGet"]["httpHeaders"]}
    assert headers["Host"] == "example.com"  # ".example.com" matches it and its subdomains


def test_workers_have_no_liveness_probe_on_the_broker(production: list[dict[str, Any]]) -> None:
    # a Redis outage must not restart every worker and the beat (docs/operations.md)
    for name in ("worker", "beat"):
        assert "livenessProbe" not in container(component(production, "Deployment", name))


def test_ingress_keeps_websockets_and_long_polls_open(production: list[dict[str, Any]]) -> None:
    from django.conf import settings

    from debugging.delivery import MAX_WAIT_SECONDS

    ingresses = {
        i["spec"]["rules"][0]["http"]["paths"][0]["path"]: i for i in by_kind(production, "Ingress")
    }
    assert set(ingresses) == {"/", "/ws/", "/api/v1/config/"}
    timeout = "nginx.ingress.kubernetes.io/proxy-read-timeout"
    annotations = {path: i["metadata"]["annotations"] for path, i in ingresses.items()}
    # a page holds its websocket for as long as it is open, pinging every 25 s
    assert int(annotations["/ws/"][timeout]) >= 3600
    assert int(annotations["/ws/"]["nginx.ingress.kubernetes.io/proxy-send-timeout"]) >= 3600
    # the longest config long-poll is answered before nginx gives up on it
    assert int(annotations["/api/v1/config/"][timeout]) > MAX_WAIT_SECONDS
    # the largest OTLP batch we accept fits in a request nginx lets through
    body = annotations["/"]["nginx.ingress.kubernetes.io/proxy-body-size"]
    assert int(body.rstrip("m")) * 1024 * 1024 >= settings.SIGNALBOX_OTLP_MAX_BYTES
    for ingress in ingresses.values():
        backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
        assert backend == {"name": "signalbox-web", "port": {"name": "http"}}
        assert ingress["spec"]["tls"] == [
            {"secretName": "signalbox-tls", "hosts": ["signalbox.example.com"]}
        ]
    env = env_of(component(production, "Deployment", "web"))
    assert env["SIGNALBOX_BASE_URL"]["value"] == "https://signalbox.example.com"


def test_web_and_workers_autoscale_and_survive_drains(production: list[dict[str, Any]]) -> None:
    hpas = {
        h["spec"]["scaleTargetRef"]["name"]: h
        for h in by_kind(production, "HorizontalPodAutoscaler")
    }
    assert set(hpas) == {"signalbox-web", "signalbox-worker"}
    pdbs = by_kind(production, "PodDisruptionBudget")
    for name in ("web", "worker"):
        deployment = component(production, "Deployment", name)
        # the autoscaler owns the count: an upgrade must not reset it
        assert "replicas" not in deployment["spec"]
        assert hpas[deployment["metadata"]["name"]]["spec"]["minReplicas"] >= 2
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        (pdb,) = [p for p in pdbs if p["spec"]["selector"]["matchLabels"].items() <= labels.items()]
        assert pdb["spec"]["maxUnavailable"] == 1
    fixed = render(**{**PRODUCTION_VALUES, "worker.autoscaling.enabled": "false"})
    assert component(fixed, "Deployment", "worker")["spec"]["replicas"] == 2


def test_every_container_requests_what_the_benchmarks_measured(
    production: list[dict[str, Any]],
) -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    table = _sizing_table(ROOT / "docs" / "operations.md")
    for name, workload in workloads(production).items():
        resources = container(workload)["resources"]
        assert resources == values[name]["resources"], name
        assert {"cpu", "memory"} <= set(resources["requests"]), name
        assert "memory" in resources["limits"], name
        # docs/operations.md quotes the same requests and limits as values.yaml
        requests, limits = resources["requests"], resources["limits"]
        assert table[name] == (requests["cpu"], requests["memory"], limits["memory"]), name


def test_values_cite_a_measured_figure_for_every_request() -> None:
    # each request in values.yaml sits under comments naming the benchmark it comes from
    benchmarks = set(re.findall(r"^## (\w+)", (ROOT / "bench" / "RESULTS.md").read_text(), re.M))
    lines = (CHART / "values.yaml").read_text().splitlines()
    checked = 0
    for number, line in enumerate(lines):
        if line.strip() != "requests:":
            continue
        indent = len(line) - len(line.lstrip())
        comments: list[str] = []
        for entry in lines[number + 1:]:
            if len(entry) - len(entry.lstrip()) <= indent:
                break
            if entry.strip().startswith("#"):
                comments.append(entry)
                continue
            key = entry.strip().split(":")[0]
            cited = benchmarks & set(re.findall(r"\w+", " ".join(comments)))
            assert cited, f"values.yaml:{number + 1}: {key} cites no bench/RESULTS.md section"
            comments = []
            checked += 1
    assert checked == 8  # cpu and memory for web, worker, beat and migrate


def _sizing_table(path: Path) -> dict[str, tuple[str, str, str]]:
    """docs/operations.md's Kubernetes sizing table: process -> (cpu, memory, memory limit)."""
    rows: dict[str, tuple[str, str, str]] = {}
    for line in path.read_text().splitlines():
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        if len(cells) >= 4 and cells[0] in COMPOSE_PROCESSES and re.fullmatch(r"\d+m", cells[1]):
            rows[cells[0]] = (cells[1], cells[2], cells[3])
    assert set(rows) == set(COMPOSE_PROCESSES), "docs/operations.md: sizing table rows missing"
    return rows
