"""/api/docs/ works without the internet: Swagger UI comes from our own static files
(drf-spectacular-sidecar), not from a CDN."""

from __future__ import annotations

import re

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def test_the_api_docs_load_only_local_files_and_each_answers(client: Client) -> None:
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    referenced = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
    assert any(url.endswith("swagger-ui-bundle.js") for url in referenced), referenced
    assert not re.search(r"https?://|//cdn", html), "the docs page names an outside address"
    for url in referenced:
        assert url.startswith("/") and not url.startswith("//"), url
        fetched = client.get(url)
        assert fetched.status_code == 200, url
        fetched.close()  # a file response: its file is closed
    # and the schema the page draws from
    assert client.get("/api/schema/").status_code == 200
