"""Catalog as code over HTTP: import YAML (all or nothing), export it, and its JSON Schema."""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import BaseParser, JSONParser
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from catalog.api.schema import ErrorSerializer
from catalog.catalog_yaml import (
    Action,
    CatalogConflict,
    CatalogForbidden,
    CatalogInvalid,
    Source,
    export_catalog,
    import_catalog,
)
from catalog.catalog_yaml.schema import published_schema
from catalog.choices import Scope
from catalog.permissions import Access, ScopeRule
from controlplane.api import ConflictError, StrictSerializerMixin, refuse_unknown_parameters

DEFAULT_FILENAME = "request.yaml"
SCHEMA_MEDIA_TYPE = "application/schema+json"
# A catalog of thousands of services is well under 1 MB; beyond this, refuse before parsing.
MAX_YAML_BYTES = 8 * 2**20
EXAMPLE = """apiVersion: signalbox.dev/v1
kind: Service
metadata:
  name: checkout
  title: Checkout
spec:
  owner: payments
  tier: 1
  dependsOn: [service:inventory, external:stripe]
"""


class _YamlTextParser(BaseParser):
    """A YAML body, kept as text: the catalog reader parses it with its own strict loader."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        encoding = (parser_context or {}).get("encoding") or "utf-8"
        data = stream.read(MAX_YAML_BYTES + 1)
        if len(data) > MAX_YAML_BYTES:
            raise exceptions.ParseError(
                f"the YAML is over {MAX_YAML_BYTES // 2**20} MB; split it into several "
                "imports or use `manage.py catalog import`"
            )
        try:
            return {"yaml": data.decode(encoding)}
        except UnicodeDecodeError as exc:
            raise exceptions.ParseError(f"the body is not valid {encoding}: {exc}") from exc


class ApplicationYamlParser(_YamlTextParser):
    media_type = "application/yaml"


class TextYamlParser(_YamlTextParser):
    media_type = "text/yaml"


class LegacyYamlParser(_YamlTextParser):
    media_type = "application/x-yaml"


class AnyAccept(BaseContentNegotiation):
    """The export (YAML) and the schema answer their one type whatever the Accept header says;
    their errors answer JSON."""

    def select_parser(self, request: Request, parsers: Any) -> Any:
        return parsers[0]

    def select_renderer(self, request: Request, renderers: Any, format_suffix: Any = None) -> Any:
        return renderers[0], renderers[0].media_type


class ImportRequestSerializer(StrictSerializerMixin, serializers.Serializer[Any]):
    """The JSON form of an import: the YAML text and the name its errors are reported under."""

    yaml = serializers.CharField(trim_whitespace=False, help_text="Catalog YAML (multi-document).")
    filename = serializers.CharField(
        required=False,
        default=DEFAULT_FILENAME,
        max_length=200,
        help_text="Names the text in error keys (`catalog.yaml#2 Service/checkout: spec.owner`).",
    )


class ChangeSerializer(serializers.Serializer[Any]):
    kind = serializers.CharField()
    name = serializers.CharField()
    action = serializers.ChoiceField(choices=[str(a) for a in Action])
    # Named like Serializer.fields: DRF's metaclass moves it aside; mypy cannot tell.
    fields = serializers.ListField(  # type: ignore[assignment]
        child=serializers.CharField(), help_text="YAML paths changed."
    )


class ImportResultSerializer(serializers.Serializer[Any]):
    dry_run = serializers.BooleanField()
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    unchanged = serializers.IntegerField()
    deleted = serializers.IntegerField()
    changes = ChangeSerializer(many=True, help_text="Every entity created, updated or deleted.")
    warnings = serializers.ListField(
        child=serializers.CharField(), help_text="Accepted, but worth a look (dependency cycles)."
    )


def _flag(request: Request, name: str) -> bool:
    raw = request.query_params.get(name, "").strip().lower()
    if raw in {"", "0", "false", "no"}:
        return False
    if raw in {"1", "true", "yes"}:
        return True
    raise exceptions.ValidationError({name: ["use 1 or 0 (true or false)"]})


FLAGS = [
    OpenApiParameter(
        "dry_run",
        OpenApiTypes.BOOL,
        description="Check and report the changes, write nothing.",
    ),
    OpenApiParameter(
        "prune",
        OpenApiTypes.BOOL,
        description="Also delete catalog entities, check specs, heartbeats, maintenance and "
        "freeze windows the YAML does not declare (refused for services or environments with "
        "running instances).",
    ),
]


class CatalogImportView(APIView):
    """Import catalog YAML: an upsert of every document, all or nothing."""

    permission_classes = [ScopeRule]
    scopes = {"POST": Scope.WRITE}
    parser_classes = [JSONParser, ApplicationYamlParser, TextYamlParser, LegacyYamlParser]
    query_parameters = tuple(flag.name for flag in FLAGS)

    def team_for_create(self, request: Request) -> tuple[None, None]:
        # The teams an import touches are known only once the YAML is read; the import
        # checks `write` on each of them (and admin for platform-wide kinds) itself.
        return None, None

    @extend_schema(
        operation_id="catalog_import",
        summary="Import catalog YAML",
        description="Creates or updates every Team, Environment, ExternalDependency and Service "
        "the YAML declares, in one transaction: any problem and nothing is written. Changing a "
        "team's things needs `write` on that team; creating or deleting teams, and changing "
        "environments or external dependencies, needs a platform admin. Unchanged entities "
        "need nothing. See docs/catalog.md for the format.",
        parameters=FLAGS,
        request={
            "application/yaml": OpenApiTypes.STR,
            "text/yaml": OpenApiTypes.STR,
            "application/json": ImportRequestSerializer,
        },
        responses={
            200: ImportResultSerializer,
            400: OpenApiResponse(
                ErrorSerializer,
                description="The YAML has problems; nothing was written. `error.fields` has one "
                "key per problem: `FILE#DOCUMENT KIND/NAME: FIELD` (documents count from 1).",
                examples=[
                    OpenApiExample(
                        "unknown owner",
                        value={
                            "error": {
                                "status": 400,
                                "code": "invalid",
                                "message": "request.yaml#1 Service/checkout: spec.owner: ...",
                                "fields": {
                                    "request.yaml#1 Service/checkout: spec.owner": [
                                        "Team/payment is neither in the files nor in the catalog"
                                    ]
                                },
                            }
                        },
                    )
                ],
            ),
            403: OpenApiResponse(
                ErrorSerializer,
                description="The import changes a team you may not write to (the message names "
                "each team and entity), or an admin-only kind.",
            ),
            409: OpenApiResponse(
                ErrorSerializer,
                description="Someone changed the catalog through the API while the import ran; "
                "nothing was written. Send it again.",
            ),
        },
        examples=[OpenApiExample("a service", value=EXAMPLE, media_type="application/yaml")],
    )
    def post(self, request: Request) -> Response:
        # Before anything is read: a misspelt dry_run must not become a real import.
        refuse_unknown_parameters(request, self)
        body = ImportRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        dry_run, prune = _flag(request, "dry_run"), _flag(request, "prune")
        access = Access.of(request)
        source = Source(body.validated_data["filename"], body.validated_data["yaml"])
        try:
            result = import_catalog(
                [source], prune=prune, dry_run=dry_run, actor=access, access=access
            )
        except CatalogInvalid as exc:
            raise exceptions.ValidationError(exc.as_fields()) from exc
        except CatalogForbidden as exc:
            raise exceptions.PermissionDenied(str(exc)) from exc
        except CatalogConflict as exc:
            raise ConflictError(str(exc)) from exc
        return Response(result.as_dict())


class CatalogExportView(APIView):
    """The whole catalog as multi-document YAML, ready to edit and import again."""

    permission_classes = [ScopeRule]
    scopes = {"GET": Scope.READ}
    content_negotiation_class = AnyAccept

    @extend_schema(
        operation_id="catalog_export",
        summary="Export the catalog as YAML",
        responses={
            (200, "application/yaml"): OpenApiResponse(
                OpenApiTypes.STR,
                description="Teams, environments, external dependencies, then services, "
                "each sorted; the same catalog always exports to the same bytes.",
            ),
        },
    )
    def get(self, request: Request) -> HttpResponse:
        response = HttpResponse(export_catalog(), content_type="application/yaml; charset=utf-8")
        response["Content-Disposition"] = 'inline; filename="catalog.yaml"'
        return response


class AnyoneMayRead(BasePermission):
    """The catalog schema describes a file format and holds no data; editors that fetch it
    send no credentials. Nothing else is allowed through this rule."""

    def has_permission(self, request: Request, view: Any) -> bool:
        return True


class CatalogSchemaView(APIView):
    """The JSON Schema of catalog documents, which editors check and complete YAML files with."""

    permission_classes = [AnyoneMayRead]
    # No authentication: no session (so no CSRF) and no token lookup for a public file.
    authentication_classes: list[Any] = []
    content_negotiation_class = AnyAccept

    # A document about the format, like /api/schema/ itself, rather than an operation of
    # the API: left out of the OpenAPI, where every operation answers 401 and 403.
    @extend_schema(exclude=True)
    def get(self, request: Request) -> HttpResponse:
        schema = published_schema(request.build_absolute_uri(request.path))
        return HttpResponse(json.dumps(schema, indent=2) + "\n", content_type=SCHEMA_MEDIA_TYPE)
