"""Catalog as code: read, check, plan and apply `signalbox.dev/v1` YAML, and write it back out.

An import reads every document first and reports every problem at once (file, document,
entity and field); only a clean set of files is applied, in one transaction. See
docs/catalog.md for the format.
"""

from __future__ import annotations

from catalog.catalog_yaml.apply import ImportResult, import_catalog
from catalog.catalog_yaml.authorize import authorize
from catalog.catalog_yaml.export import export_catalog, export_documents
from catalog.catalog_yaml.extensions import export_notes
from catalog.catalog_yaml.kinds import API_VERSION, Action, Kind
from catalog.catalog_yaml.plan import Change
from catalog.catalog_yaml.problems import (
    CatalogConflict,
    CatalogForbidden,
    CatalogInvalid,
    Location,
    Problem,
)
from catalog.catalog_yaml.sources import Source, sources_from_paths

__all__ = [
    "API_VERSION",
    "Action",
    "CatalogConflict",
    "CatalogForbidden",
    "CatalogInvalid",
    "Change",
    "ImportResult",
    "Kind",
    "Location",
    "Problem",
    "Source",
    "authorize",
    "export_catalog",
    "export_documents",
    "export_notes",
    "import_catalog",
    "sources_from_paths",
]
