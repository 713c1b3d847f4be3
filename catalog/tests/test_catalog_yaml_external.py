"""Catalog files declare how an external dependency is watched; bad sources are refused with
the field and the reason, and nothing is written (docs/catalog.md, docs/external.md)."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest

from catalog.catalog_yaml import CatalogInvalid, Source, import_catalog
from catalog.catalog_yaml.export import export_documents
from catalog.models import ExternalDependency

pytestmark = pytest.mark.django_db

WATCHED = """
apiVersion: signalbox.dev/v1
kind: ExternalDependency
metadata: {name: stripe, title: Stripe}
spec:
  statusPage: https://status.stripe.com/
  statusSource: statuspage
  statusComponents: [API, Checkout]
  probeUrl: https://api.stripe.com/healthcheck
  statusInterval: 30
"""


def _problems(text: str) -> dict[str, list[str]]:
    with pytest.raises(CatalogInvalid) as caught:
        import_catalog([Source("x.yaml", textwrap.dedent(text))])
    return caught.value.as_fields()


def test_a_file_sets_the_status_source_and_exports_it_back(world: Any) -> None:
    import_catalog([Source("x.yaml", WATCHED)])
    stripe = ExternalDependency.objects.get(slug="stripe")
    assert (stripe.status_source, stripe.status_components) == ("statuspage", ["API", "Checkout"])
    assert (stripe.probe_url, stripe.status_interval_seconds) == (
        "https://api.stripe.com/healthcheck",
        30,
    )
    (exported,) = [d for d in export_documents() if d["kind"] == "ExternalDependency"]
    assert exported["spec"]["statusSource"] == "statuspage"
    assert exported["spec"]["statusComponents"] == ["API", "Checkout"]
    assert "probeExpectedStatus" not in exported["spec"]  # the default is left out


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        ("statusSource: statuspage", "statusSource: rss", "statusSource"),
        ("probeUrl: https://api.stripe.com/healthcheck", "probeUrl: http://169.254.169.254/x",
         "cloud metadata address"),
        ("statusInterval: 30", "statusInterval: 5", "statusInterval"),
        ("statusPage: https://status.stripe.com/", "", "needs the page's base URL"),
        ("statusSource: statuspage\n  statusComponents: [API, Checkout]\n"
         "  probeUrl: https://api.stripe.com/healthcheck", "statusSource: probe",
         "needs the URL to probe"),
    ],
)  # fmt: skip
def test_a_bad_source_is_refused_and_nothing_written(
    world: Any, old: str, new: str, reason: str
) -> None:
    text = WATCHED.replace(old, new)
    problems = _problems(text)
    assert any(reason in f or any(reason in m for m in ms) for f, ms in problems.items()), problems
    assert not ExternalDependency.objects.exists()
