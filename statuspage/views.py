"""The public surfaces: the status page, its Statuspage v2 JSON, and badges. No login,
no session, no forms: what they show is what the operator published (docs/status-page.md)."""

from __future__ import annotations

import hashlib
import json

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_safe

from health.maintenance import in_maintenance
from statuspage import badges, v2
from statuspage.models import Badge, StatusPage
from statuspage.summary import PageView, build, published_page

# Short enough that a state change shows within a minute behind any cache.
CACHE_CONTROL = "public, max-age=60"
JSON_CACHE_CONTROL = "public, max-age=30"


def _page_or_404(slug: str) -> StatusPage:
    page = published_page(slug)
    if page is None:
        raise Http404("no such status page")
    return page


def _page_url(request: HttpRequest, page: StatusPage) -> str:
    return request.build_absolute_uri(reverse("statuspage:page", args=[page.slug]))


@require_safe
def page_view(request: HttpRequest, slug: str) -> HttpResponse:
    view = build(_page_or_404(slug))
    response = render(request, "statuspage/page.html", {"view": view})
    response["Cache-Control"] = CACHE_CONTROL
    return response


def _json(request: HttpRequest, document: dict[str, object]) -> HttpResponse:
    """JSON with an ETag of its bytes: an unchanged page answers 304 to If-None-Match."""
    body = json.dumps(document, separators=(",", ":"), sort_keys=True).encode()
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    wanted = [t.strip() for t in request.headers.get("If-None-Match", "").split(",")]
    if etag in wanted or f"W/{etag}" in wanted:
        response = HttpResponse(status=304)
    else:
        response = HttpResponse(body, content_type="application/json")
    response["ETag"] = etag
    response["Cache-Control"] = JSON_CACHE_CONTROL
    response["Access-Control-Allow-Origin"] = "*"
    return response


def _view(slug: str) -> PageView:
    return build(_page_or_404(slug), bars=False)


@require_safe
def summary_json(request: HttpRequest, slug: str) -> HttpResponse:
    view = _view(slug)
    return _json(request, v2.summary(view, _page_url(request, view.page)))


@require_safe
def status_json(request: HttpRequest, slug: str) -> HttpResponse:
    view = _view(slug)
    return _json(request, v2.status(view, _page_url(request, view.page)))


@require_safe
def badge_svg(request: HttpRequest, token: str) -> HttpResponse:
    badge = Badge.objects.select_related("service").filter(token=token, enabled=True).first()
    if badge is None:
        raise Http404("no such badge")
    maintained = in_maintenance(badge.service_id, badge.environment_id)
    response = HttpResponse(
        badges.svg(badges.read(badge, maintained)), content_type="image/svg+xml"
    )
    response["Cache-Control"] = CACHE_CONTROL
    # An SVG opened directly is a document: it may run nothing and load nothing.
    response["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
    response["X-Content-Type-Options"] = "nosniff"
    return response
