"""A small JSON client for the Signalbox API (urllib only), with errors a person can read."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlencode

from . import __version__


def with_query(path: str, **params: str | None) -> str:
    """`path?a=1&b=2` with the parameters that have a value (none: the bare path)."""
    query = urlencode({key: value for key, value in params.items() if value})
    return f"{path}?{query}" if query else path


class ApiError(Exception):
    """The API answered with an error: its status, code and message (and field reasons)."""

    def __init__(self, status: int, code: str, message: str, fields: dict[str, Any]) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields

    def __str__(self) -> str:
        text = f"{self.status} {self.code}: {self.message}"
        if self.fields and self.message in ("", "invalid input"):
            text += " (" + "; ".join(f"{k}: {' '.join(v)}" for k, v in self.fields.items()) + ")"
        return text


class Unreachable(Exception):
    """Signalbox could not be reached, or failed on its side (5xx)."""


class Client:
    def __init__(self, base_url: str, token: str, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self.request("POST", path, body)

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        url = f"{self.base_url}/api/v1/{path.lstrip('/')}"
        data = json.dumps(body).encode() if body is not None else None
        if not url.startswith(("http://", "https://")):
            raise Unreachable(f"{self.base_url} is not an http(s) URL")
        request = urllib.request.Request(url, data=data, method=method)  # noqa: S310
        request.add_header("Authorization", f"Bearer {self.token}")
        request.add_header("Accept", "application/json")
        request.add_header("User-Agent", f"signalbox-cli/{__version__}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise _api_error(exc) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            raise Unreachable(f"cannot reach Signalbox at {self.base_url}: {reason}") from None


def _api_error(exc: urllib.error.HTTPError) -> Exception:
    raw = exc.read()
    if exc.code >= 500:
        return Unreachable(
            f"Signalbox failed on its side ({exc.code}); try again or ask its operators"
        )
    try:
        error = json.loads(raw)["error"]
        return ApiError(
            exc.code, error.get("code", ""), error.get("message", ""), error.get("fields", {})
        )
    except (ValueError, KeyError, TypeError):
        return ApiError(exc.code, "error", raw.decode(errors="replace")[:300] or exc.reason, {})
