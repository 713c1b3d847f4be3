"""The Django view behind the ASGI fast path answers the same (the test client, or a server
without controlplane.asgi's wrapper)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from debugging import config
from debugging.config import Item

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_django_view_answers_with_the_etag_and_304s(world: Any, report_token: str) -> None:
    config.change(
        world.service, world.production, set_items=[Item("flag", "a", True)], actor="test"
    )
    client = Client(HTTP_AUTHORIZATION=f"Bearer {report_token}")
    first = client.get("/api/v1/config/checkout/production")
    assert first.status_code == 200 and first["ETag"] == '"1"'
    assert first.json()["flags"] == {"a": True}
    held = client.get(
        "/api/v1/config/checkout/production", {"wait": "100ms"}, HTTP_IF_NONE_MATCH='"1"'
    )
    assert held.status_code == 304
    assert client.post("/api/v1/config/checkout/production").status_code == 405
