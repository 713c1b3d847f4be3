"""Catalog-as-code routes under /api/v1/: YAML import and export, the documents' JSON Schema."""

from __future__ import annotations

from django.urls import path

from catalog.api.io_views import CatalogExportView, CatalogImportView, CatalogSchemaView
from catalog.catalog_yaml.schema import SCHEMA_URL_NAME

urlpatterns = [
    path("catalog/import", CatalogImportView.as_view(), name="catalog-import"),
    path("catalog/export", CatalogExportView.as_view(), name="catalog-export"),
    path("catalog/schema.json", CatalogSchemaView.as_view(), name=SCHEMA_URL_NAME),
]
