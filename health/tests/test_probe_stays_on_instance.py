"""docs/health.md promises the probe never leaves the instance. A check spec's `path` is an
absolute path of the instance and nothing else: anything that could change the scheme, host
or port is refused when saved (400 naming `path`), and the probe requests only its instance."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yarl import URL

from health import services
from health.choices import CheckStatus
from health.probes.http import base_url
from health.specs import ProbeSpec, instance_url, path_problem
from health.tests.conftest import serve_in_thread
from health.tests.test_probes import probe

# Characters that matter to URL parsing, and a few that do not.
URL_PARTS = st.sampled_from(
    [
        "/",
        "//",
        "\\",
        ":",
        "@",
        "?",
        "#",
        "%",
        "%2F",
        "%2f",
        ".",
        "..",
        "http:",
        "https:",
        "169.254.169.254",
        "[::1]",
        "localhost",
        "80",
        "a",
        "é",
        " ",
        "\t",
        "\n",
        "\x00",
        ";",
        "&",
    ]
)
PATHS = st.one_of(
    st.lists(URL_PARTS, min_size=1, max_size=8).map("".join),
    st.text(max_size=40),
    st.builds(lambda rest: "/" + rest, st.text(max_size=40)),
)
ORIGINS = [
    base_url("http", "10.1.2.3", 8080),
    base_url("https", "::1", 443),
    base_url("http", "checkout-7.internal", 9000),
]


@given(path=PATHS)
@settings(max_examples=2000)
def test_a_path_that_passes_validation_stays_on_every_instance(path: str) -> None:
    if path_problem(path):
        return
    for origin in ORIGINS:
        url = instance_url(origin, path)
        assert url is not None, path
        assert (url.scheme, url.host, url.port) == (origin.scheme, origin.host, origin.port)


@given(path=PATHS)
@settings(max_examples=2000)
def test_whatever_is_stored_the_probe_builds_no_url_off_the_instance(path: str) -> None:
    # Specs saved before validation was strict still reach the probe: it refuses those.
    for origin in ORIGINS:
        url = instance_url(origin, path)
        assert url is None or (url.scheme, url.host, url.port) == (
            origin.scheme,
            origin.host,
            origin.port,
        )


@pytest.mark.parametrize(
    "path",
    [
        "//169.254.169.254/latest/meta-data/",
        "///169.254.169.254/latest",
        "/\\169.254.169.254/latest",
        "http://169.254.169.254/",
        "health",
        "/health\r\nHost: evil",
        "/ health",
        "/health#x",
    ],
)
@pytest.mark.django_db
def test_paths_that_could_leave_the_instance_are_refused_naming_path(
    api_as: Any, world: Any, path: str
) -> None:
    spec = services.spec_for_service(world.service)
    answer = api_as("owner").patch(f"/api/v1/health/checks/{spec.pk}", {"path": path})
    assert answer.status_code == 400
    assert list(answer.json()["error"]["fields"]) == ["path"]
    spec.refresh_from_db()
    assert spec.path != path


@pytest.mark.parametrize("path", ["/health", "/healthz?verbose=1", "/%2F%2Fx", "/a/../b", "/@x"])
@pytest.mark.django_db
def test_absolute_paths_of_the_instance_are_accepted(api_as: Any, world: Any, path: str) -> None:
    spec = services.spec_for_service(world.service)
    answer = api_as("owner").patch(f"/api/v1/health/checks/{spec.pk}", {"path": path})
    assert answer.status_code == 200, answer.json()
    assert answer.json()["path"] == path


class Recorder:
    """An instance that answers any path and remembers every request's Host and path."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append((request.host, request.raw_path))
        return web.json_response({"status": "pass"}, content_type="application/health+json")

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app


@pytest.fixture(scope="module")
def recorder() -> Iterator[tuple[Recorder, int]]:
    found = Recorder()
    port, stop = serve_in_thread(found.app)
    yield found, port
    stop()


@given(path=PATHS)
@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_the_real_probe_asks_only_its_instance(recorder: tuple[Recorder, int], path: str) -> None:
    # given any path the validation lets through
    if path_problem(path):
        return
    server, port = recorder
    before = len(server.seen)
    # when the instance is probed with it
    result = probe(ProbeSpec(path=path), port)
    # then exactly one request reached the instance, for that path, and nothing else was asked
    assert result.status == CheckStatus.PASS, (path, result.reason)
    assert len(server.seen) == before + 1
    host, asked = server.seen[-1]
    assert host == f"127.0.0.1:{port}"
    # (dot segments removed as RFC 3986 resolves a reference: "/." asks "/")
    resolved = URL("http://instance").join(URL(path))
    assert asked in (str(URL(path).raw_path_qs), str(resolved.raw_path_qs)) or asked.split(
        "?"
    )[0] in (URL(path).raw_path, resolved.raw_path)
