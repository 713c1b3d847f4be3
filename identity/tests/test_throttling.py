"""API throttling per token: a token past its rate gets 429 with Retry-After, others do not."""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured

from catalog.choices import Scope
from controlplane import redis
from identity import throttling
from identity.throttling import cache_key, parse_rate

pytestmark = pytest.mark.django_db


@pytest.fixture
def rates(settings: Any, world: Any) -> Any:
    """rates(token=..., user=...) sets the API rates for this test; the personas' counts
    start from zero (their ids repeat from one test database to the next)."""
    now = time.time()
    redis.client().delete(
        *[
            cache_key("user", str(person.pk), int(now // period) + step)
            for person in (world.owner, world.deployer, world.viewer, world.outsider)
            for period in (1, 60, 3600, 86400)
            for step in (0, 1)
        ]
    )

    def set_rates(**rates: str) -> None:
        configured: dict[str, Any] = django_settings.REST_FRAMEWORK
        settings.REST_FRAMEWORK = {
            **configured,
            "DEFAULT_THROTTLE_RATES": {**throttling.rates(), **rates},
        }

    return set_rates


def test_a_token_past_its_rate_gets_429_with_retry_after(
    world: Any, token_client: Any, rates: Any
) -> None:
    # given a rate of 3 calls a minute and two tokens of the same team
    rates(token="3/min")
    busy, _ = token_client(world.team, [Scope.READ])
    other, _ = token_client(world.team, [Scope.READ])
    # when the first token calls four times, from four addresses
    answers = [
        busy.get("/api/v1/teams", REMOTE_ADDR=f"10.0.0.{n}").status_code for n in range(3)
    ]
    refused = busy.get("/api/v1/teams", REMOTE_ADDR="10.0.0.9")
    # then the fourth is refused, in the API's error shape, saying when to come back
    assert answers == [200, 200, 200]
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert refused.json()["error"]["status"] == 429
    assert refused.json()["error"]["code"] == "throttled"
    # and the other token, from the same address, still works
    assert other.get("/api/v1/teams", REMOTE_ADDR="10.0.0.9").status_code == 200


def test_a_signed_in_person_has_a_budget_of_their_own(
    world: Any, api_as: Any, token_client: Any, rates: Any
) -> None:
    # given
    rates(user="2/min", token="100/min")
    person = api_as("viewer")
    token, _ = token_client(world.team, [Scope.READ])
    # when
    statuses = [person.get("/api/v1/teams").status_code for _ in range(3)]
    # then
    assert statuses == [200, 200, 429]
    assert api_as("owner").get("/api/v1/teams").status_code == 200
    assert token.get("/api/v1/teams").status_code == 200


def test_off_turns_throttling_off(world: Any, token_client: Any, rates: Any) -> None:
    rates(token="off")
    client, _ = token_client(world.team, [Scope.READ])
    assert {client.get("/api/v1/teams").status_code for _ in range(5)} == {200}


@pytest.mark.parametrize("rate", ["many", "10/fortnight", "0/min", "-1/s", "10"])
def test_a_bad_rate_is_refused_naming_the_setting(rate: str) -> None:
    with pytest.raises(ImproperlyConfigured, match="SIGNALBOX_API_TOKEN_RATE"):
        parse_rate("SIGNALBOX_API_TOKEN_RATE", rate)


def test_rates_read_as_operators_write_them() -> None:
    assert parse_rate("x", "600/min") == (600, 60)
    assert parse_rate("x", "20/s") == (20, 1)
    assert parse_rate("x", "10000/hour") == (10000, 3600)
    assert parse_rate("x", "OFF") is None


def test_the_api_keeps_answering_when_redis_is_away(
    world: Any, token_client: Any, rates: Any, settings: Any
) -> None:
    # given a Redis nobody listens on, and a rate the calls would exceed
    rates(token="1/min")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    settings.REDIS_URL = f"redis://127.0.0.1:{closed}/0"
    client, _ = token_client(world.team, [Scope.READ])
    # when / then: unthrottled rather than down
    assert [client.get("/api/v1/teams").status_code for _ in range(3)] == [200, 200, 200]
