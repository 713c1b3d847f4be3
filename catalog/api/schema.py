"""OpenAPI for every app's API: the one error shape, documented errors, how tokens authenticate."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers

from catalog.choices import Scope
from catalog.permissions import ADMIN


class ErrorBodySerializer(serializers.Serializer[Any]):
    """What went wrong, for people and for programs."""

    status = serializers.IntegerField(help_text="The HTTP status, repeated.")
    code = serializers.CharField(
        help_text="Machine-readable: invalid, not_authenticated, authentication_failed, "
        "permission_denied, not_found, method_not_allowed, conflict, ..."
    )
    message = serializers.CharField(help_text="One sentence for a person.")
    # DRF takes declared fields off the class, so this does not shadow Serializer.fields.
    fields = serializers.DictField(  # type: ignore[assignment]
        child=serializers.ListField(child=serializers.CharField()),
        help_text="Each bad field (dotted for nested ones) and its reasons; empty when the "
        "error is not about a field.",
    )


class ErrorSerializer(serializers.Serializer[Any]):
    """Every error answer: `{"error": {"status", "code", "message", "fields"}}`."""

    error = ErrorBodySerializer()


ERRORS = {
    "400": "Bad input: `error.fields` names each bad field and why. Unknown fields and "
    "unknown filter values are refused, never ignored.",
    "401": "No credentials, or a token that is unknown, revoked or expired.",
    "403": "Signed in, but your role or your token's scopes do not allow this; "
    "`error.message` says what is missing.",
    "404": "No such object (tokens of teams you do not own are not shown).",
    "409": "Valid, but clashes with the current state: a duplicate (`error.fields` names "
    "it) or an object still in use.",
}

WHO = {
    Scope.READ: "any signed-in person, or a token with the `read` scope",
    Scope.WRITE: "owners of the owning team and platform admins, or a token of that team "
    "with the `write` scope",
    Scope.DEPLOY: "deployers and owners of the owning team and platform admins, or a token "
    "of that team with the `deploy` scope",
    Scope.REPORT: "deployers and owners of the owning team and platform admins, or a token "
    "of that team with the `report` scope (a service-bound token: only for its service)",
    ADMIN: "platform admins only",
}

WRITES = {"POST", "PUT", "PATCH", "DELETE"}


class SignalboxAutoSchema(AutoSchema):
    """Adds the error answers and the permission rule to every operation, in every app."""

    def get_tags(self) -> list[str]:
        # Group operations by resource ("services", "instances"), not by the "v1" prefix.
        parts = [p for p in self.path.split("/") if p and not p.startswith("{")]
        if len(parts) >= 3 and parts[:2] == ["api", "v1"]:
            return [parts[2]]
        return super().get_tags()

    def get_operation(self, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        # Appended here, not in get_description(): @extend_schema(description=...) replaces that.
        operation: dict[str, Any] | None = super().get_operation(*args, **kwargs)
        rule = self._who_may_call()
        if operation is not None and rule:
            operation["description"] = f"{operation.get('description', '')}\n\n{rule}".strip()
        return operation

    def _who_may_call(self) -> str:
        scopes: dict[str, str] = getattr(self.view, "scopes", {}) or {}
        scope = scopes.get(self.method, scopes.get("*"))
        if scope is None:
            return ""
        rule = f"**Who may call it:** {WHO.get(scope, scope)}."
        if getattr(self.view, "people_only", False):
            rule += " API tokens are refused: sign in as a person."
        return rule

    def _get_response_bodies(self, direction: Any = "response") -> dict[str, Any]:
        responses: dict[str, Any] = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        for code in self._error_codes():
            if code not in responses:
                answer = OpenApiResponse(ErrorSerializer, description=ERRORS[code])
                responses[code] = self._response(answer, code)
        for code, answer in responses.items():
            # An error a view documents by description only still has the one shape.
            if str(code).startswith("4") and "content" not in answer:
                shaped = OpenApiResponse(ErrorSerializer, description=answer.get("description"))
                responses[code] = self._response(shaped, str(code))
        return responses

    def _response(self, answer: OpenApiResponse, code: str) -> dict[str, Any]:
        # drf-spectacular's own (untyped) helper, typed here once.
        built: dict[str, Any] = self._get_response_for_code(answer, code)  # type: ignore[no-untyped-call]
        return built

    def _error_codes(self) -> list[str]:
        codes = ["401", "403"]
        if self.method in WRITES or getattr(self.view, "filterset_class", None) is not None:
            codes.append("400")
        if "{" in self.path:
            codes.append("404")
        if self.method in WRITES:
            codes.append("409")
        return sorted(codes)


class TokenAuthenticationScheme(OpenApiAuthenticationExtension):
    """Documents `Authorization: Bearer sbx_...` team tokens."""

    target_class = "catalog.auth.TokenAuthentication"
    name = "teamToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "sbx_<key id>_<secret>",
            "description": "A team API token; its scopes (read, write, deploy, report) "
            "decide what it may do, and only for its own team.",
        }
