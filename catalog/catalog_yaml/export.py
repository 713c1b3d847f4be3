"""Exporting: the whole catalog as documents, and as stable multi-document YAML."""

from __future__ import annotations

from typing import Any

import yaml

from catalog.catalog_yaml.extensions import EXTRA_KINDS
from catalog.catalog_yaml.kinds import API_VERSION, ATTRS, EXTERNAL_REF, SERVICE_REF, Kind
from catalog.catalog_yaml.schema import schema_url
from catalog.catalog_yaml.snapshot import CatalogSnapshot


def export_header() -> str:
    """What an export starts with: the schema for editors, and how to import it again."""
    return (
        f"# yaml-language-server: $schema={schema_url()}\n"
        f"# Signalbox catalog ({API_VERSION}). Edit and re-import with:\n"
        "#   manage.py catalog import FILE   or   POST /api/v1/catalog/import\n"
    )


def export_documents() -> list[dict[str, Any]]:
    """The whole catalog as documents: teams, environments, external dependencies, services,
    then the kinds other apps register (such as RuntimeConfig)."""
    catalog = CatalogSnapshot.load(lock=False)
    documents: list[dict[str, Any]] = []
    for kind in Kind:
        for obj in catalog.existing(kind).values():
            documents.append(_document(kind, obj, catalog))
    for extra in EXTRA_KINDS.values():
        documents.extend(extra.exporter())
    return documents


def export_catalog() -> str:
    """The whole catalog as multi-document YAML, byte-for-byte stable for the same data."""
    body = yaml.safe_dump_all(
        export_documents(),
        explicit_start=True,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=100,
    )
    return export_header() + body


def _document(kind: Kind, obj: Any, catalog: CatalogSnapshot) -> dict[str, Any]:
    sections: dict[str, dict[str, Any]] = {"metadata": {"name": obj.slug}, "spec": {}}
    if kind == Kind.SERVICE:
        sections["spec"]["owner"] = obj.team.slug
    for attr in ATTRS[kind]:
        value = getattr(obj, attr.field)
        if not (attr.omit_when_default and value == attr.default):
            sections[attr.section][attr.key] = value
    if kind == Kind.TEAM and catalog.members.get(obj.pk):
        sections["spec"]["members"] = dict(sorted(catalog.members[obj.pk].items()))
    if kind == Kind.SERVICE:
        refs = [SERVICE_REF + s for s in sorted(catalog.service_deps.get(obj.pk, set()))]
        refs += [EXTERNAL_REF + s for s in sorted(catalog.external_deps.get(obj.pk, set()))]
        if refs:
            sections["spec"]["dependsOn"] = refs
    return {"apiVersion": API_VERSION, "kind": str(kind), **sections}
