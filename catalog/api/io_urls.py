"""Catalog-as-code routes under /api/v1/: YAML import and export."""

from __future__ import annotations

from django.urls import path

from catalog.api.io_views import CatalogExportView, CatalogImportView

urlpatterns = [
    path("catalog/import", CatalogImportView.as_view(), name="catalog-import"),
    path("catalog/export", CatalogExportView.as_view(), name="catalog-export"),
]
