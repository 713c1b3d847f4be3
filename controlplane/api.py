"""API conventions shared by every app: pagination, the one error shape, strict input."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404
from django.urls import Resolver404, resolve, reverse
from django_filters import rest_framework as filters
from rest_framework import exceptions, serializers, status
from rest_framework.authentication import BaseAuthentication
from rest_framework.filters import BaseFilterBackend
from rest_framework.pagination import PageNumberPagination
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler

from controlplane.changes import Conflict


class Pagination(PageNumberPagination):
    """`?page=N&page_size=M` (at most 500); answers count, next, previous and results."""

    page_size_query_param = "page_size"
    max_page_size = 500


class ConflictError(exceptions.APIException):
    """409: the request is valid but clashes with the current state."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "the request conflicts with the current state"
    default_code = "conflict"


_CODES = {
    400: "invalid",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    415: "unsupported_media_type",
    429: "throttled",
}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Every error answers `{"error": {"status", "code", "message", "fields"}}`.

    `fields` maps each bad field (dotted for nested ones) to its reasons; it is empty
    for errors that are not about one field.
    """
    if isinstance(exc, Conflict):
        exc = ConflictError(str(exc))
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    fields: dict[str, list[str]] = {}
    if isinstance(exc, exceptions.ValidationError):
        _flatten(exc.detail, "", fields)
        message = "; ".join(f"{k}: {' '.join(v)}" for k, v in fields.items()) or "invalid input"
    else:
        detail = getattr(exc, "detail", "")
        message = str(detail)
    code = _CODES.get(response.status_code, "error")
    if isinstance(exc, exceptions.APIException) and exc.default_code not in {"error", "invalid"}:
        code = str(exc.default_code)
    response.data = {
        "error": {
            "status": response.status_code,
            "code": code,
            "message": message,
            "fields": fields,
        }
    }
    return response


def _flatten(detail: Any, prefix: str, out: dict[str, list[str]]) -> None:
    if isinstance(detail, dict):
        for key, value in detail.items():
            _flatten(value, f"{prefix}.{key}" if prefix else str(key), out)
    elif isinstance(detail, list):
        if all(not isinstance(item, (dict, list)) for item in detail):
            out.setdefault(prefix or "non_field_errors", []).extend(str(item) for item in detail)
        else:
            for index, item in enumerate(detail):
                _flatten(item, f"{prefix}.{index}" if prefix else str(index), out)
    else:
        out.setdefault(prefix or "non_field_errors", []).append(str(detail))


def slug_filter(queryset: QuerySet[Any], field: str, help_text: str) -> filters.ModelChoiceFilter:
    """A query parameter naming a catalog object by slug; an unknown slug answers 400, never []."""
    return filters.ModelChoiceFilter(
        field_name=field, to_field_name="slug", queryset=queryset, help_text=help_text
    )


class KnownQueryParameters(BaseFilterBackend):
    """The first of every view's filter backends: a query parameter the view does not read
    answers 400 naming it, so a typo (`?stat=down`) never returns the unfiltered list."""

    def filter_queryset(
        self, request: Request, queryset: QuerySet[Any], view: APIView
    ) -> QuerySet[Any]:
        refuse_unknown_parameters(request, view, queryset)
        return queryset


def refuse_unknown_parameters(
    request: Request, view: APIView, queryset: QuerySet[Any] | None = None
) -> None:
    """400 naming each query parameter `view` does not read, with those it does.

    Views whose own code reads the query string, outside any filter backend, call this
    themselves; they name those parameters in `query_parameters`."""
    allowed = query_parameters_of(view, queryset)
    unknown = sorted(set(request.query_params) - allowed)
    if unknown:
        reason = "unknown parameter; the allowed parameters are: " + ", ".join(sorted(allowed))
        raise exceptions.ValidationError({name: [reason] for name in unknown})


def query_parameters_of(view: APIView, queryset: QuerySet[Any] | None) -> set[str]:
    """What a view reads from the query string: its FilterSet's filters and its other filter
    backends' parameters (`search`, `ordering`), its paginator's (`page`, `page_size`),
    `format`, and what it names in `query_parameters` (a class attribute, or an @action's)."""
    allowed = set(getattr(view, "query_parameters", ()))
    if api_settings.URL_FORMAT_OVERRIDE:
        allowed.add(api_settings.URL_FORMAT_OVERRIDE)
    for backend_class in getattr(view, "filter_backends", ()):
        backend = backend_class()
        if isinstance(backend, filters.DjangoFilterBackend):
            filterset = backend.get_filterset_class(view, queryset)
            allowed.update(filterset.base_filters if filterset is not None else ())
        else:
            allowed.update(p["name"] for p in backend.get_schema_operation_parameters(view))
    paginator = getattr(view, "paginator", None)
    if paginator is not None:
        allowed.update(p["name"] for p in paginator.get_schema_operation_parameters(view))
    return allowed


class StrictSerializerMixin:
    """Refuse fields the serializer does not know, instead of silently ignoring them."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            known = set(self.fields)  # type: ignore[attr-defined]
            unknown = sorted(set(data) - known)
            if unknown:
                raise serializers.ValidationError(
                    {
                        name: ["unknown field; the allowed fields are: " + ", ".join(sorted(known))]
                        for name in unknown
                    }
                )
        return super().to_internal_value(data)  # type: ignore[misc]


class NoSuchEndpoint(APIView):
    """Every path under /api/ that names no endpoint: 404 in the one error shape, in JSON
    whatever the Accept header and DEBUG say (Django's own 404 is an HTML page).

    A trailing slash is not redirected: one URL per endpoint, and a client that does not
    follow redirects (curl without -L, httpx) would take a 308 for an answer and, for a
    heartbeat ping, lose the ping without a word. The message names the path to use."""

    # Nothing is behind it to protect, so nobody is asked who they are first.
    authentication_classes: list[type[BaseAuthentication]] = []
    permission_classes = [AllowAny]
    renderer_classes = [JSONRenderer]
    schema = None  # not an operation of the OpenAPI document

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        raise exceptions.NotFound(self._message(request))

    @staticmethod
    def _message(request: Request) -> str:
        path, where = request.path, request.path_info
        if where.endswith("/") and _is_endpoint(where[:-1], request):
            return (
                f"no endpoint at {path}: the API's paths have no trailing slash; use {path[:-1]}"
            )
        if _is_endpoint(where + "/", request):
            return f"no endpoint at {path}; use {path}/"
        return f"no endpoint at {path}; the endpoints are listed at {reverse('api-docs')}"


def _is_endpoint(path_info: str, request: Request) -> bool:
    try:
        match = resolve(path_info, getattr(request, "urlconf", None))
    except Resolver404:
        return False
    return getattr(match.func, "cls", None) is not NoSuchEndpoint
