"""What a CI runner retrying on a timeout does: several concurrent POST /api/v1/rollouts with
one idempotency_key, from real HTTP clients against a real server and PostgreSQL."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import httpx
import pytest

from catalog.models import ApiToken, Instance
from deployments.models import Rollout
from deployments.tests.conftest import make_route

CLIENTS = 6


@pytest.fixture
def routed_live(world: Any, tmp_path: Any) -> Any:
    for port, version in ((9001, "1.0"), (9002, "1.0"), (9003, "2.0")):
        Instance.objects.create(
            service=world.service,
            environment=world.production,
            host="127.0.0.1",
            port=port,
            version=version,
        )
    return make_route(world, {"socket": str(tmp_path / "haproxy.sock")})


def post_at_once(url: str, token: str, body: dict[str, Any]) -> list[httpx.Response]:
    barrier = threading.Barrier(CLIENTS)
    answers: list[httpx.Response] = []
    lock = threading.Lock()

    def client() -> None:
        with httpx.Client(timeout=30) as http:
            barrier.wait()
            answer = http.post(url, json=body, headers={"Authorization": f"Bearer {token}"})
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return answers


@pytest.mark.django_db(transaction=True)
def test_concurrent_retries_with_one_key_all_get_the_one_rollout(
    world: Any, routed_live: Any, live_server: Any
) -> None:
    # given CI's deploy token and one idempotency key
    _, secret = ApiToken.issue(team=world.team, name="ci", scopes=["deploy"])
    body = {
        "service": "checkout",
        "environment": "production",
        "version": "2.0",
        "idempotency_key": "ci-run-4711",
    }
    # when six requests with it arrive at once
    answers = post_at_once(f"{live_server.url}/api/v1/rollouts", secret, body)
    # then one created the rollout and every other got that same rollout, never a conflict
    statuses = Counter(a.status_code for a in answers)
    assert statuses == {201: 1, 200: CLIENTS - 1}, [a.json() for a in answers]
    assert {a.json()["id"] for a in answers} == {Rollout.objects.get().pk}


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_without_a_key_get_one_rollout_and_conflicts_naming_it(
    world: Any, routed_live: Any, live_server: Any
) -> None:
    # given the same rollout asked for six times at once, with no key
    _, secret = ApiToken.issue(team=world.team, name="ci", scopes=["deploy"])
    body = {"service": "checkout", "environment": "production", "version": "2.0"}
    answers = post_at_once(f"{live_server.url}/api/v1/rollouts", secret, body)
    # then one wins and the others are told which rollout is active (they are different asks)
    created = [a for a in answers if a.status_code == 201]
    assert len(created) == 1
    rollout_id = created[0].json()["id"]
    for refused in (a for a in answers if a.status_code != 201):
        assert refused.status_code == 409
        assert refused.json()["error"]["code"] == "rollout_active"
        assert f"#{rollout_id}" in refused.json()["error"]["message"]
