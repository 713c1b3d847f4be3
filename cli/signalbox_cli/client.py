"""A small JSON client for the Signalbox API (urllib only), with errors a person can read.

Reads can be made patient (`patiently`): a dropped connection, a timeout, a 5xx or a 429 is
retried with exponential backoff and full jitter until a deadline, which is what `--wait`
and `--watch` need to ride out a deploy of Signalbox itself or a flaky network.
"""

from __future__ import annotations

import json
import random
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit

from . import __version__

T = TypeVar("T")

# What a list asks for per request unless --chunk-size says otherwise: the API's maximum.
CHUNK_SIZE = 500


def with_query(path: str, **params: str | int | None) -> str:
    """`path?a=1&b=2` with the parameters that have a value (none: the bare path)."""
    query = urlencode({key: value for key, value in params.items() if value not in (None, "")})
    return f"{path}?{query}" if query else path


class ApiError(Exception):
    """The API answered with an error: its status, code and message (and field reasons)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        fields: dict[str, Any],
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields
        self.retry_after = retry_after

    def __str__(self) -> str:
        text = f"{self.status} {self.code}: {self.message}"
        if self.fields and self.message in ("", "invalid input"):
            text += " (" + "; ".join(f"{k}: {' '.join(v)}" for k, v in self.fields.items()) + ")"
        return text


class Unreachable(Exception):
    """Signalbox could not be reached, or failed on its side (5xx)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class Backoff:
    """Exponential backoff with full jitter (AWS's "Exponential Backoff And Jitter"): the
    n-th wait is uniform in [0, min(cap, base * 2**n)], so many waiting CI jobs do not come
    back at the same instant after an outage."""

    def __init__(
        self, base: float = 0.5, cap: float = 10.0, rng: random.Random | None = None
    ) -> None:
        self.base = base
        self.cap = cap
        self.rng = rng or random.Random()
        self.attempt = 0

    def next(self) -> float:
        ceiling = min(self.cap, self.base * 2**self.attempt)
        self.attempt += 1
        return self.rng.uniform(0, ceiling)

    def reset(self) -> None:
        self.attempt = 0


class GaveUp(Unreachable):
    """Patient retries ran into the deadline without an answer."""


def retryable(exc: Exception) -> bool:
    """Worth another try: the network, a timeout, a 5xx, or 429 Too Many Requests."""
    return isinstance(exc, Unreachable) or (isinstance(exc, ApiError) and exc.status == 429)


def patiently(
    call: Callable[[], T],
    *,
    deadline: float,
    say: Callable[[str], None] | None = None,
    backoff: Backoff | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """`call()`, retried while it fails in a retryable way and the deadline (a `clock()`
    value) is ahead; raises GaveUp (an Unreachable) with the last reason once it is not.
    `say` hears each failure and the wait before the next try."""
    backoff = backoff or Backoff()
    down_since: float | None = None
    while True:
        try:
            result = call()
        except (Unreachable, ApiError) as exc:
            if not retryable(exc):
                raise
            now = clock()
            down_since = now if down_since is None else down_since
            left = deadline - now
            if left <= 0:
                raise GaveUp(
                    f"{exc} (still failing after {now - down_since:.0f}s of retries; "
                    "gave up at the deadline)",
                    getattr(exc, "status", None),
                ) from None
            wait = backoff.next()
            if isinstance(exc, ApiError) and exc.retry_after is not None:
                wait = max(wait, exc.retry_after)
            wait = min(wait, left)
            if say is not None:
                say(f"{exc}; retrying in {wait:.1f}s")
            sleep(wait)
            continue
        if down_since is not None and say is not None:
            say(f"back in contact after {clock() - down_since:.1f}s")
        return result


class Client:
    def __init__(self, base_url: str, token: str, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def get(self, path: str, timeout: float | None = None) -> Any:
        return self.request("GET", path, timeout=timeout)

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self.request("POST", path, body)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)

    def text(self, path: str) -> str:
        """A GET whose answer is text (the catalog export's YAML), not JSON."""
        return str(self.request("GET", path, raw=True))

    def pages(self, path: str, chunk_size: int = CHUNK_SIZE) -> Iterator[dict[str, Any]]:
        """Every item of a paginated list, following the API's `next` links to the end."""
        separator = "&" if "?" in path else "?"
        current: str | None = f"{path}{separator}page_size={chunk_size}"
        while current is not None:
            page = self.get(current)
            yield from page["results"]
            current = self._relative(page["next"]) if page.get("next") else None

    def _relative(self, link: str) -> str:
        """The API path of a `next` link, so it is fetched from the URL we were given (the
        server may name itself differently behind a proxy), and the token never goes to a
        host we were not pointed at."""
        parts = urlsplit(link)
        prefix = urlsplit(self.base_url).path.rstrip("/") + "/api/v1/"
        if not parts.path.startswith(prefix):
            raise Unreachable(f"the API's next link {link!r} is not under {prefix}")
        return parts.path[len(prefix) :] + (f"?{parts.query}" if parts.query else "")

    def request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        data: bytes | None = None,
        content_type: str = "application/json",
        timeout: float | None = None,
        raw: bool = False,
    ) -> Any:
        url = f"{self.base_url}/api/v1/{path.lstrip('/')}"
        if body is not None:
            data = json.dumps(body).encode()
        if not url.startswith(("http://", "https://")):
            raise Unreachable(f"{self.base_url} is not an http(s) URL")
        request = urllib.request.Request(url, data=data, method=method)  # noqa: S310
        request.add_header("Authorization", f"Bearer {self.token}")
        request.add_header("Accept", "*/*" if raw else "application/json")
        request.add_header("User-Agent", f"signalbox-cli/{__version__}")
        if data is not None:
            request.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(  # noqa: S310
                request, timeout=timeout or self.timeout
            ) as response:
                answer = response.read()
                return answer.decode("utf-8") if raw else json.loads(answer or b"null")
        except urllib.error.HTTPError as exc:
            raise _api_error(exc) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            raise Unreachable(f"cannot reach Signalbox at {self.base_url}: {reason}") from None
        except (OSError, ValueError) as exc:  # a reset mid-body, a truncated or non-JSON answer
            raise Unreachable(
                f"lost the answer from Signalbox at {self.base_url}: {exc or type(exc).__name__}"
            ) from None


def _api_error(exc: urllib.error.HTTPError) -> Exception:
    try:
        raw = exc.read()
    except OSError:
        raw = b""
    if exc.code >= 500:
        return Unreachable(
            f"Signalbox failed on its side ({exc.code}); try again or ask its operators",
            exc.code,
        )
    retry_after = None
    if exc.code == 429:
        try:
            retry_after = float(exc.headers.get("Retry-After", ""))
        except ValueError:
            retry_after = None
    try:
        error = json.loads(raw)["error"]
        return ApiError(
            exc.code,
            error.get("code", ""),
            error.get("message", ""),
            error.get("fields", {}),
            retry_after,
        )
    except (ValueError, KeyError, TypeError):
        text = raw.decode(errors="replace")[:300] or str(exc.reason)
        return ApiError(exc.code, "error", text, {}, retry_after)
