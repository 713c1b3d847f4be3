"""The permission matrix: which persona gets which status from every API endpoint.

Every app lists its endpoints in `<app>/tests/permission_matrix.py` as `PERMISSION_MATRIX`,
a list of `Row`s. catalog/tests/test_permission_matrix.py collects the rows of every
installed app, plays each row as every persona, and fails when an endpoint under /api/v1/
has no row, or when its view still uses the deny-by-default rule. See docs/api.md.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.apps import apps
from django.db import transaction
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from rest_framework.test import APIClient

from catalog.choices import Scope
from catalog.models import ApiToken
from catalog.permissions import DenyWithoutRule, ScopeRule

API_PREFIX = "api/v1/"

# People (the `world` fixture's users) and tokens. `token:<scope>` is a token of the
# world's team (payments) holding only that scope; `token:foreign` is a token of the
# other team (search) holding every scope.
PEOPLE = ("anonymous", "viewer", "deployer", "owner", "outsider", "admin")
TOKENS = ("token:read", "token:write", "token:deploy", "token:report", "token:foreign")
PERSONAS = PEOPLE + TOKENS
# Whoever may read anything: every signed-in person and every token holding `read`.
READERS = ("viewer", "deployer", "owner", "outsider", "admin", "token:read", "token:foreign")
SIGNED_IN_PEOPLE = ("viewer", "deployer", "owner", "outsider", "admin")


def allow(*personas: str, status: int = 200, **others: int) -> dict[str, int]:
    """`personas` get `status`; anonymous gets 401 and everyone else 403.

    Exceptions go in `others`, with `_` for `:` (`token_read=404`).
    """
    expect = {persona: 403 for persona in PERSONAS}
    expect["anonymous"] = 401
    for persona in personas:
        if persona not in expect:
            raise ValueError(f"unknown persona {persona!r}; use one of {', '.join(PERSONAS)}")
        expect[persona] = status
    for name, code in others.items():
        persona = name.replace("_", ":")
        if persona not in expect:
            raise ValueError(f"unknown persona {persona!r}; use one of {', '.join(PERSONAS)}")
        expect[persona] = code
    return expect


def read(status: int = 200) -> dict[str, int]:
    """The usual rule for reads: every reader gets `status`."""
    return allow(*READERS, status=status)


@dataclass
class Case:
    """What a row's functions see: the `world` fixture and whatever the row's setup made."""

    world: Any
    tokens: dict[str, ApiToken] = field(default_factory=dict)
    made: dict[str, Any] = field(default_factory=dict)


Build = Callable[[Case], Any]


def _no_kwargs(case: Case) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class Row:
    """One endpoint and method, and the status each persona must get.

    `route` is the URL name (as given to reverse()); `kwargs` builds its URL arguments and
    `body` the JSON request body from the Case; `setup` creates anything else the row needs
    (it runs once, before the personas; each persona's request is rolled back afterwards,
    so every persona meets the same state).
    """

    route: str
    method: str
    expect: Mapping[str, int]
    kwargs: Build = _no_kwargs
    body: Build | None = None
    query: str = ""
    setup: Callable[[Case], None] | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.route, self.method.upper())

    def __str__(self) -> str:
        return f"{self.method.upper()} {self.route}"


def collect_rows() -> list[Row]:
    """Every installed app's `<app>.tests.permission_matrix.PERMISSION_MATRIX`."""
    rows: list[Row] = []
    for config in apps.get_app_configs():
        module_name = f"{config.name}.tests.permission_matrix"
        try:
            spec = importlib.util.find_spec(module_name)
        except ModuleNotFoundError:  # the app has no tests package
            spec = None
        if spec is not None:
            rows.extend(importlib.import_module(module_name).PERMISSION_MATRIX)
    return rows


@dataclass(frozen=True)
class Endpoint:
    """One URL pattern under /api/v1/, the methods its view answers, and its rule."""

    route: str | None
    pattern: str
    methods: frozenset[str]
    problems: tuple[str, ...]


def api_endpoints() -> list[Endpoint]:
    """Walk the URL resolver for everything under /api/v1/, whichever app added it."""
    found: list[Endpoint] = []
    for pattern, entry in _walk(get_resolver().url_patterns, ""):
        if pattern.startswith(API_PREFIX):
            found.append(_describe(pattern, entry))
    return found


def _walk(patterns: list[Any], prefix: str) -> Iterator[tuple[str, URLPattern]]:
    for entry in patterns:
        text = prefix + str(entry.pattern).lstrip("^").rstrip("$")
        if isinstance(entry, URLResolver):
            yield from _walk(entry.url_patterns, text)
        elif isinstance(entry, URLPattern):
            yield text, entry


def _describe(pattern: str, entry: URLPattern) -> Endpoint:
    callback = entry.callback
    view_class = getattr(callback, "cls", None)
    if view_class is None:
        # Not a DRF view: its methods are unknown, so its rows say which ones it answers.
        return Endpoint(entry.name, pattern, frozenset(), ())
    initkwargs = getattr(callback, "initkwargs", {})
    allowed = {m.upper() for m in view_class.http_method_names} - {"OPTIONS", "HEAD"}
    actions = getattr(callback, "actions", None)
    if actions is not None:
        methods = {m.upper() for m in actions} & allowed
    else:
        methods = {m for m in allowed if hasattr(view_class, m.lower())}
    rules = initkwargs.get("permission_classes", view_class.permission_classes)
    problems: list[str] = []
    if not rules or DenyWithoutRule in rules:
        problems.append("its view has no permission rule (DenyWithoutRule answers nobody)")
    if ScopeRule in rules:
        scopes = initkwargs.get("scopes", getattr(view_class, "scopes", {})) or {}
        for method in sorted(methods):
            if method not in scopes and "*" not in scopes:
                problems.append(f"its ScopeRule view declares no scope for {method}")
    return Endpoint(entry.name, pattern, frozenset(methods), tuple(problems))


def clients_for(case: Case) -> dict[str, APIClient]:
    """An API client per persona; creates the persona tokens into `case.tokens`."""
    world = case.world
    clients: dict[str, APIClient] = {}
    for persona in PEOPLE:
        client = APIClient()
        if persona != "anonymous":
            client.force_authenticate(user=getattr(world, persona))
        clients[persona] = client
    grants: dict[str, tuple[Any, list[str]]] = {
        f"token:{scope}": (world.team, [scope]) for scope in Scope.values
    }
    grants["token:foreign"] = (world.other_team, list(Scope.values))
    for persona, (team, scopes) in grants.items():
        token, plain = ApiToken.issue(team=team, name=f"matrix {persona}", scopes=scopes)
        case.tokens[persona] = token
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {plain}")
        clients[persona] = client
    return clients


def play(row: Row, case: Case, clients: Mapping[str, APIClient]) -> dict[str, int]:
    """Send the row's request as each persona, each in a transaction rolled back after."""
    url = reverse(row.route, kwargs=row.kwargs(case))
    if row.query:
        url = f"{url}?{row.query}"
    got: dict[str, int] = {}
    for persona in PERSONAS:
        body = row.body(case) if row.body is not None else None
        with transaction.atomic():
            response = clients[persona].generic(
                row.method.upper(),
                url,
                data=json.dumps(body) if body is not None else "",
                content_type="application/json",
            )
            transaction.set_rollback(True)
        got[persona] = response.status_code
    return got


def gaps(rows: list[Row], endpoints: list[Endpoint]) -> list[str]:
    """Why the matrix is incomplete: endpoints without a rule or a row, stale or double rows."""
    problems: list[str] = []
    keys = [row.key for row in rows]
    covered = set(keys)
    for key in sorted({k for k in keys if keys.count(k) > 1}):
        problems.append(f"{key[1]} {key[0]} has more than one row")
    answered: set[tuple[str | None, str]] = set()
    for endpoint in endpoints:
        where = f"/{endpoint.pattern} ({endpoint.route or 'unnamed'})"
        if endpoint.route is None:
            problems.append(f"{where}: name the URL pattern so the matrix can refer to it")
            continue
        problems.extend(f"{where}: {problem}" for problem in endpoint.problems)
        methods = endpoint.methods or {m for r, m in covered if r == endpoint.route}
        if not methods:
            problems.append(f"{where}: not a DRF view; add a row for each method it answers")
        for method in sorted(methods):
            answered.add((endpoint.route, method))
            if (endpoint.route, method) not in covered:
                problems.append(f"{method} {where} has no row in any PERMISSION_MATRIX")
    for row in rows:
        if row.key not in answered:
            problems.append(f"row {row} names no endpoint under /{API_PREFIX}")
    return problems
