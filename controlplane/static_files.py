"""WhiteNoise, async-capable: static files served as WhiteNoise does, every other request
passed on without leaving the event loop.

WhiteNoise's middleware is sync-only, and one sync middleware makes Django run the whole
chain of every request in its one thread-sensitive worker thread; a held long-poll
(`/api/v1/config/...`, docs/debugging.md) would then hold that thread and queue every other
request behind it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponseBase
from whitenoise.middleware import WhiteNoiseMiddleware


class StaticFilesMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.whitenoise = WhiteNoiseMiddleware(get_response)
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def _static(self, request: HttpRequest) -> Any:
        if self.whitenoise.autorefresh:
            return self.whitenoise.find_file(request.path_info)
        return self.whitenoise.files.get(request.path_info)

    def __call__(self, request: HttpRequest) -> HttpResponseBase | Awaitable[HttpResponseBase]:
        if self.is_async:
            return self._acall(request)
        found = self._static(request)
        if found is not None:
            served: HttpResponseBase = self.whitenoise.serve(found, request)
            return served
        response: HttpResponseBase = self.get_response(request)
        return response

    async def _acall(self, request: HttpRequest) -> HttpResponseBase:
        found = self._static(request)
        if found is not None:
            # Headers only; the file body streams from the response iterator.
            served: HttpResponseBase = self.whitenoise.serve(found, request)
            return served
        response: HttpResponseBase = await self.get_response(request)
        return response
