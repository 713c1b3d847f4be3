"""Template context every page gets."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest


def signalbox(request: HttpRequest) -> dict[str, Any]:
    return {"SIGNALBOX_ENV": settings.SIGNALBOX_ENV}
