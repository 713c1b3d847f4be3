"""Spring Boot Actuator's loggers endpoints, as Spring Boot answers them, per instance:
GET /actuator/loggers, GET and POST /actuator/loggers/{name}. A debug window opened in
Signalbox for an actuator service changes these for real, and reads them back."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from aiohttp import web

from fleet.errors import FleetError, error_response, read_json
from fleet.instance import Instance

# Spring Boot's LogLevel, most verbose first, as GET /actuator/loggers lists them (reversed).
LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL", "OFF")
ROOT = "ROOT"
ROOT_LEVEL = "INFO"
# Loggers a Spring service has from the start (configuredLevel null: they inherit).
KNOWN = ("payments", "payments.client", "org.springframework.web")


class Loggers:
    """One instance's logger levels: only configured ones are stored; the rest inherit."""

    def __init__(self) -> None:
        self.configured: dict[str, str] = {ROOT: ROOT_LEVEL}
        self.known: set[str] = {ROOT, *KNOWN}

    def effective(self, name: str) -> str:
        while True:
            if name in self.configured:
                return self.configured[name]
            if "." not in name:
                return self.configured[ROOT]
            name = name.rsplit(".", 1)[0]

    def describe(self, name: str) -> dict[str, Any]:
        return {
            "configuredLevel": self.configured.get(name),
            "effectiveLevel": self.effective(name),
        }

    def set(self, name: str, level: str | None) -> None:
        self.known.add(name)
        if level is None:
            if name == ROOT:
                self.configured[ROOT] = ROOT_LEVEL  # the root always has a level
            else:
                self.configured.pop(name, None)
        else:
            self.configured[name] = level


_loggers: weakref.WeakKeyDictionary[Instance, Loggers] = weakref.WeakKeyDictionary()


def loggers_of(instance: Instance) -> Loggers:
    found = _loggers.get(instance)
    if found is None:
        found = _loggers[instance] = Loggers()
    return found


def add_routes(app: web.Application, instance_of: Callable[[web.Request], Instance]) -> None:
    """The hook fleet/server.py calls; `instance_of` says which instance a request is for."""

    async def all_loggers(request: web.Request) -> web.Response:
        found = loggers_of(instance_of(request))
        return web.json_response(
            {
                "levels": list(reversed(LEVELS)),
                "loggers": {name: found.describe(name) for name in sorted(found.known)},
                "groups": {},
            }
        )

    async def one_logger(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        return web.json_response(loggers_of(instance_of(request)).describe(name))

    async def set_logger(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        try:
            body = await read_json(request)
            if not isinstance(body, dict) or "configuredLevel" not in body:
                raise FleetError(
                    400,
                    'send {"configuredLevel": LEVEL or null}',
                    {"configuredLevel": ["required"]},
                )
            level = body["configuredLevel"]
            if level is not None:
                level = str(level).upper()
                if level not in LEVELS:
                    raise FleetError(
                        400,
                        f"No enum constant for level {body['configuredLevel']!r}",
                        {"configuredLevel": [f"one of {', '.join(LEVELS)}"]},
                    )
        except FleetError as exc:
            return error_response(exc)
        loggers_of(instance_of(request)).set(name, level)
        return web.Response(status=204)

    app.router.add_get("/actuator/loggers", all_loggers)
    app.router.add_get("/actuator/loggers/{name}", one_logger)
    app.router.add_post("/actuator/loggers/{name}", set_logger)
