"""The fleet's one error shape, the same as the control plane's API:
`{"error": {"status", "code", "message", "fields"}}`."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

_CODES = {400: "invalid", 404: "not_found", 405: "method_not_allowed", 409: "conflict"}


class FleetError(Exception):
    """A request the fleet cannot honour; `status` is the HTTP status to answer with."""

    def __init__(
        self, status: int, message: str, fields: dict[str, list[str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.fields = fields or {}


def error_response(exc: FleetError) -> web.Response:
    return web.json_response(
        {"error": {
            "status": exc.status,
            "code": _CODES.get(exc.status, "error"),
            "message": str(exc),
            "fields": exc.fields,
        }},
        status=exc.status,
    )


async def read_json(request: web.Request) -> Any:
    """The request's JSON body; an empty body reads as {}."""
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise FleetError(400, f"the body is not JSON: {exc}") from None
