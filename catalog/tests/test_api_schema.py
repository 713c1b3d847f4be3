"""The OpenAPI document at /api/schema/ is valid OpenAPI 3 and documents every error."""

from __future__ import annotations

from typing import Any

import pytest
from openapi_spec_validator import validate
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

ERROR_REF = "#/components/schemas/Error"
WRITES = {"post", "put", "patch", "delete"}


@pytest.fixture(scope="module")
def schema(django_db_blocker: Any) -> dict[str, Any]:
    # Generated once for the module: building it walks every view of every app.
    with django_db_blocker.unblock():
        response = APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return dict(response.json())


def operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in schema["paths"].items()
        if path.startswith("/api/v1/")
        for method, operation in item.items()
        if method in WRITES | {"get"}
    ]


def test_it_is_valid_openapi_3(schema: dict[str, Any]) -> None:
    assert schema["openapi"].startswith("3.")
    validate(schema)  # raises on any violation of the OpenAPI 3 specification


def test_the_error_shape_is_one_component(schema: dict[str, Any]) -> None:
    components = schema["components"]["schemas"]
    assert set(components["ErrorBody"]["properties"]) == {"status", "code", "message", "fields"}
    assert components["Error"]["properties"] == {
        "error": {"$ref": "#/components/schemas/ErrorBody"}
    }


def test_every_operation_documents_its_errors(schema: dict[str, Any]) -> None:
    missing = []
    for path, method, operation in operations(schema):
        expected = {"401", "403"}
        if "{" in path:
            expected.add("404")
        if method in WRITES:
            expected |= {"400", "409"}
        for code in sorted(expected):
            answer = operation["responses"].get(code)
            refs = [c["schema"].get("$ref") for c in (answer or {}).get("content", {}).values()]
            if not answer or ERROR_REF not in refs or not answer.get("description"):
                missing.append(f"{method.upper()} {path}: {code}")
    assert not missing, "undocumented errors:\n" + "\n".join(missing)


def test_every_catalog_operation_says_who_may_call_it(schema: dict[str, Any]) -> None:
    catalog = [
        (path, method, operation)
        for path, method, operation in operations(schema)
        if path.split("/")[3]
        in {
            "teams",
            "memberships",
            "environments",
            "external-dependencies",
            "services",
            "instances",
            "tokens",
        }
    ]
    # 37 of the catalog's own, and scaling's 5 of the handshake under instances/<id>/
    assert len(catalog) == 42
    silent = [
        f"{m} {p}"
        for p, m, op in catalog
        if "**Who may call it:**" not in op.get("description", "")
    ]
    assert not silent
    register = schema["paths"]["/api/v1/instances/register"]["post"]
    assert {"200", "201"} <= set(register["responses"])
    assert "`report` scope" in register["description"]


def test_tokens_are_documented_as_bearer_auth(schema: dict[str, Any]) -> None:
    scheme = schema["components"]["securitySchemes"]["teamToken"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")


def test_the_interactive_docs_page_loads(client: Any) -> None:
    assert client.get("/api/docs/").status_code == 200
