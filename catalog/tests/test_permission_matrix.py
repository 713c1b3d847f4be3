"""Every persona against every API endpoint, as rows each app declares; gaps fail the suite."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import path
from rest_framework.response import Response
from rest_framework.views import APIView

from catalog.permissions import ScopeRule
from catalog.tests.matrix import (
    PERSONAS,
    Case,
    Row,
    api_endpoints,
    clients_for,
    collect_rows,
    gaps,
    play,
)

ROWS = collect_rows()


def test_every_api_endpoint_has_a_permission_rule_and_a_row() -> None:
    # given every URL pattern under /api/v1/, whichever app added it
    endpoints = api_endpoints()
    # then each has a rule, each of its methods a row, and no row is stale
    assert endpoints
    problems = gaps(ROWS, endpoints)
    assert not problems, "the permission matrix is incomplete:\n" + "\n".join(problems)


@pytest.mark.django_db
@pytest.mark.parametrize("row", ROWS, ids=str)
def test_each_persona_gets_the_status_its_row_says(row: Row, world: Any) -> None:
    # given the personas and what the row needs
    case = Case(world=world)
    clients = clients_for(case)
    if row.setup is not None:
        row.setup(case)
    # when each persona sends the row's request
    got = play(row, case, clients)
    # then each gets exactly the status of the row
    wrong = [
        f"{persona}: expected {row.expect[persona]}, got {got[persona]}"
        for persona in PERSONAS
        if got[persona] != row.expect[persona]
    ]
    assert not wrong, f"{row}:\n" + "\n".join(wrong)


class Unruled(APIView):
    """A view that forgot its permission rule (it gets DenyWithoutRule by default)."""

    def get(self, request: Any) -> Response:
        return Response({})


class ScopedWithoutPost(APIView):
    permission_classes = [ScopeRule]
    scopes = {"GET": "read"}

    def get(self, request: Any) -> Response:
        return Response({})

    def post(self, request: Any) -> Response:
        return Response({})


# This module doubles as the URL conf of the test below (pytest.mark.urls).
urlpatterns = [
    path("api/v1/unruled", Unruled.as_view(), name="unruled"),
    path("api/v1/half-scoped", ScopedWithoutPost.as_view(), name="half-scoped"),
]


@pytest.mark.urls(__name__)
def test_it_fails_for_an_endpoint_without_a_row_or_a_rule() -> None:
    # given endpoints added without thought for permissions, and one row
    rows = [Row("half-scoped", "GET", {})]
    # when the matrix is checked
    problems = gaps(rows, api_endpoints())
    # then it says what is wrong with each
    assert any("unruled" in p and "DenyWithoutRule" in p for p in problems)
    assert any("GET /api/v1/unruled" in p and "no row" in p for p in problems)
    assert any("half-scoped" in p and "no scope for POST" in p for p in problems)
    assert any("POST /api/v1/half-scoped" in p and "no row" in p for p in problems)
    assert not any("GET /api/v1/half-scoped" in p for p in problems)
