"""Catalog API routes under /api/v1/."""

from __future__ import annotations

from rest_framework.routers import SimpleRouter

router = SimpleRouter(trailing_slash=False)
urlpatterns = router.urls
