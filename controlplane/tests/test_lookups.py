"""`field__any`: the same rows as `field__in`, bound as one array parameter."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from catalog.models import Instance, Service


@pytest.fixture
def instances(world: Any) -> list[Instance]:
    return [
        Instance.objects.create(
            service=world.service if n % 2 else world.other_service,
            environment=world.production,
            host=f"10.0.0.{n}",
            port=8000 + n,
            version=f"1.{n % 3}",
        )
        for n in range(12)
    ]


def test_any_finds_what_in_finds_for_keys_foreign_keys_and_text(
    world: Any, instances: list[Instance]
) -> None:
    ids = [i.pk for i in instances[::3]]
    assert set(Instance.objects.filter(pk__any=ids)) == set(Instance.objects.filter(pk__in=ids))
    assert set(Instance.objects.filter(service_id__any=[world.service.pk])) == set(
        Instance.objects.filter(service=world.service)
    )
    assert set(Instance.objects.filter(service__any=[world.other_service.pk])) == set(
        Instance.objects.filter(service=world.other_service)
    )
    assert Instance.objects.filter(version__any=["1.0", "1.2"]).count() == 8
    assert Service.objects.filter(slug__any=["checkout", "nope"]).get() == world.service


def test_an_empty_list_matches_nothing_and_a_string_is_refused(
    world: Any, instances: list[Instance]
) -> None:
    assert not Instance.objects.filter(pk__any=[]).exists()
    with pytest.raises(TypeError, match="list of values"):
        Instance.objects.filter(version__any="1.0").count()


def test_thousands_of_ids_are_one_parameter(world: Any, instances: list[Instance]) -> None:
    ids = [i.pk for i in instances] + list(range(10**6, 10**6 + 3000))
    with CaptureQueriesContext(connection) as queries:
        assert Instance.objects.filter(pk__any=ids).count() == len(instances)
    sql = queries.captured_queries[0]["sql"]
    assert "= ANY(" in sql and "::bigint[]" in sql
    assert sql.count(",") < 3000 + 20  # one array literal, not 3,012 placeholders' params
    sql, params = Instance.objects.filter(pk__any=[1, 2]).query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN " + sql, params)
        plan = " ".join(row[0] for row in cursor.fetchall())
    # The cast keeps the key's own type, so the primary key's index serves the lookup.
    assert "Index" in plan, plan
