"""The map's layout: callers above callees, cycles drawn without looping forever, wrapping."""

from __future__ import annotations

from typing import Any

import pytest

from catalog.models import Service
from topology.graph import build_graph
from topology.layout import ROW_WIDTH, lay_out

pytestmark = pytest.mark.django_db


def rows_of(world: Any) -> dict[str, float]:
    return {p.node.slug: p.y for p in lay_out(build_graph()).nodes}


def test_callers_sit_above_what_they_call_and_entry_points_just_above(world: Any) -> None:
    # given web -> api -> db, and cron -> db (an entry point calling the bottom layer)
    web, api, db, cron = (
        Service.objects.create(slug=s, name=s, team=world.team)
        for s in ("web", "api", "db", "cron")
    )
    web.depends_on.add(api)
    api.depends_on.add(db)
    cron.depends_on.add(db)

    y = rows_of(world)

    assert y["web"] < y["api"] < y["db"]
    assert y["cron"] == y["api"]
    assert y["checkout"] > y["db"] and y["indexer"] == y["checkout"]  # unconnected: last


def test_a_cycle_is_laid_out_and_every_edge_gets_a_path(world: Any) -> None:
    a, b = world.service, world.other_service
    a.depends_on.add(b)
    b.depends_on.add(a)

    layout = lay_out(build_graph())

    assert len(layout.edges) == 2 and all(e.path.startswith("M") for e in layout.edges)
    assert len({p.y for p in layout.nodes}) == 2


def test_a_wide_layer_wraps_onto_more_rows(world: Any) -> None:
    hub = Service.objects.create(slug="hub", name="hub", team=world.team)
    for i in range(ROW_WIDTH + 3):
        Service.objects.create(slug=f"leaf-{i}", name=f"leaf {i}", team=world.team).depends_on.add(
            hub
        )

    y = rows_of(world)

    leaf_rows = {y[f"leaf-{i}"] for i in range(ROW_WIDTH + 3)}
    assert len(leaf_rows) == 2 and max(leaf_rows) < y["hub"]
