"""The one way the client talks to Signalbox: small JSON requests with a timeout, stdlib only."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

USER_AGENT = "signalbox-client/0.1"


@dataclass(frozen=True)
class Answer:
    """What came back: the status, the parsed body (if JSON), and the headers we use."""

    status: int
    body: Any
    etag: str | None = None


class Unreachable(Exception):
    """The control plane did not answer (down, slow, refused, DNS): try again later."""


class Transport:
    """Bearer-authenticated JSON over HTTP(S) to one control plane."""

    def __init__(self, base_url: str, token: str, *, timeout: float = 2.0) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"the Signalbox URL must start with http:// or https://: {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        """Send one request; HTTP errors are answers, not exceptions; no answer is Unreachable."""
        data = json.dumps(body, separators=(",", ":")).encode() if body is not None else None
        sent = {
            "Authorization": f"Bearer {self.token}",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
            **(headers or {}),
        }
        if data is not None:
            sent["Content-Type"] = "application/json"
        # The scheme was checked in __init__: only http(s) is ever opened.
        request = urllib.request.Request(  # noqa: S310
            self.base_url + path, data=data, method=method, headers=sent
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                return Answer(response.status, _json(response.read()), response.headers.get("ETag"))
        except urllib.error.HTTPError as error:
            with error:
                return Answer(error.code, _json(error.read()), error.headers.get("ETag"))
        except (OSError, ValueError) as error:  # URLError, timeouts, resets, bad URLs
            raise Unreachable(f"{method} {path}: {error}") from None


def error_message(answer: Answer) -> str:
    """The message of the API's error shape (`{"error": {"message": ...}}`), if it has one."""
    body = answer.body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return str(body["error"].get("message", ""))
    return ""


def _json(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None
