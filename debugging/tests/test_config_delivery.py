"""The instance-facing long-poll against a real uvicorn: ETag, held until a change, 304 on
timeout, 400 on a bad wait, secrets only for the service's report tokens, 500 watchers."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from debugging import config
from debugging.config import Item

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

WATCH = "/api/v1/config/checkout/production"


def _change(world: Any, *items: Item) -> None:
    config.change(world.service, world.production, set_items=items, actor="test")


def test_it_answers_at_once_with_the_version_as_etag(
    asgi_server: Any, world: Any, report_token: str
) -> None:
    # given
    _change(world, Item("secret", "db_password", "s3cret-value"), Item("flag", "beta", True))
    # when
    answer = httpx.get(asgi_server.url + WATCH, headers={"Authorization": f"Bearer {report_token}"})
    # then
    assert answer.status_code == 200
    assert answer.headers["ETag"] == '"1"'
    body = answer.json()
    assert body["version"] == 1
    assert body["flags"] == {"beta": True}
    assert body["secrets"] == {"db_password": "s3cret-value"}  # delivered to the instance


def test_it_holds_until_the_wait_then_answers_304(
    asgi_server: Any, world: Any, report_token: str
) -> None:
    _change(world, Item("flag", "beta", True))
    started = time.monotonic()
    answer = httpx.get(
        asgi_server.url + WATCH,
        params={"wait": "1s"},
        timeout=10,
        headers={"Authorization": f"Bearer {report_token}", "If-None-Match": '"1"'},
    )
    held = time.monotonic() - started
    assert answer.status_code == 304
    assert answer.headers["ETag"] == '"1"'
    assert 1.0 <= held < 1.0 + 1 / 16 + 1.0  # the wait, its jitter, and some slack


@pytest.mark.parametrize("wait", ["301", "6m", "soon", "-1s"])
def test_a_wait_over_the_maximum_or_malformed_is_400(
    asgi_server: Any, world: Any, report_token: str, wait: str
) -> None:
    answer = httpx.get(
        asgi_server.url + WATCH,
        params={"wait": wait},
        headers={"Authorization": f"Bearer {report_token}"},
    )
    assert answer.status_code == 400
    assert "wait" in answer.json()["error"]["fields"]


def test_only_report_tokens_of_the_services_team_get_it(
    asgi_server: Any, world: Any, token_client: Any
) -> None:
    from catalog.models import ApiToken

    _, other = ApiToken.issue(team=world.other_team, name="x", scopes=["report"])
    _, reader = ApiToken.issue(team=world.team, name="r", scopes=["read"])
    for plain, expected in [(other, 403), (reader, 403), ("sbx_nope_nope", 401)]:
        answer = httpx.get(asgi_server.url + WATCH, headers={"Authorization": f"Bearer {plain}"})
        assert answer.status_code == expected, plain
    assert httpx.get(asgi_server.url + WATCH).status_code == 401


def test_500_watchers_all_get_a_change(asgi_server: Any, world: Any, report_token: str) -> None:
    # given: v1, and 500 watchers holding on it
    _change(world, Item("log_level", "payments.client", "INFO"))
    headers = {"Authorization": f"Bearer {report_token}", "If-None-Match": '"1"'}

    async def watchers() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=600, max_keepalive_connections=600)
        async with httpx.AsyncClient(base_url=asgi_server.url, timeout=60, limits=limits) as c:
            tasks = [
                asyncio.create_task(c.get(WATCH, params={"wait": "40s"}, headers=headers))
                for _ in range(500)
            ]
            await asyncio.sleep(0)
            # Wait until the server holds them all (none has answered yet), then change.
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not await asyncio.to_thread(
                _held, asgi_server, 500
            ):
                await asyncio.sleep(0.2)
            assert not any(t.done() for t in tasks)
            await asyncio.to_thread(_change, world, Item("log_level", "payments.client", "DEBUG"))
            return await asyncio.gather(*tasks)

    # when
    started = time.monotonic()
    answers = asyncio.run(watchers())
    # then
    assert time.monotonic() - started < 40  # answered by the change, not by the wait
    assert [a.status_code for a in answers] == [200] * 500
    assert {a.headers["ETag"] for a in answers} == {'"2"'}
    assert all(a.json()["log_levels"] == {"payments.client": "DEBUG"} for a in answers)


def _held(server: Any, count: int) -> bool:
    """Does the server report `count` config watchers parked (its /metrics gauge)?"""
    text = httpx.get(server.url + "/metrics", timeout=30).text
    for line in text.splitlines():
        if line.startswith("signalbox_config_watchers "):
            return float(line.split()[1]) >= count
    return False


def test_static_files_are_still_served_by_the_async_middleware(asgi_server: Any) -> None:
    # StaticFilesMiddleware replaced WhiteNoise's sync-only one so long-polls stay async.
    answer = httpx.get(asgi_server.url + "/static/css/dashboard.css")
    assert answer.status_code == 200
    assert "text/css" in answer.headers["content-type"]
