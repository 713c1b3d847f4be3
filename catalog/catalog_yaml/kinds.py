"""The vocabulary of catalog files: the kinds of document, and how their fields map onto models."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from django.db import models

from catalog.choices import Tier
from catalog.models import Environment, ExternalDependency, Service, Team

API_VERSION = "signalbox.dev/v1"
SERVICE_REF = "service:"
EXTERNAL_REF = "external:"


class Kind(enum.StrEnum):
    """The kinds of document a catalog file may hold, in the order they are applied."""

    TEAM = "Team"
    ENVIRONMENT = "Environment"
    EXTERNAL = "ExternalDependency"
    SERVICE = "Service"


class Action(enum.StrEnum):
    """What an import does (or would do) to one entity."""

    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    DELETED = "deleted"


MODEL_OF: dict[Kind, type[models.Model]] = {
    Kind.TEAM: Team,
    Kind.ENVIRONMENT: Environment,
    Kind.EXTERNAL: ExternalDependency,
    Kind.SERVICE: Service,
}


@dataclass(frozen=True)
class Attr:
    """One plain column of a kind: where it sits in YAML, its model field and its default."""

    path: str  # "metadata.title", "spec.tier"
    field: str  # the model field
    default: Any = ""
    omit_when_default: bool = True  # on export

    @property
    def section(self) -> str:
        return self.path.split(".", 1)[0]

    @property
    def key(self) -> str:
        return self.path.split(".", 1)[1]


TITLE = Attr("metadata.title", "name", default=None, omit_when_default=False)
DESCRIPTION = Attr("metadata.description", "description")
ATTRS: dict[Kind, tuple[Attr, ...]] = {
    Kind.TEAM: (TITLE, DESCRIPTION, Attr("spec.slackChannel", "slack_channel")),
    Kind.ENVIRONMENT: (
        TITLE,
        Attr("spec.order", "order", default=0, omit_when_default=False),
        Attr("spec.production", "is_production", default=False, omit_when_default=False),
    ),
    Kind.EXTERNAL: (
        TITLE,
        DESCRIPTION,
        Attr("spec.statusPage", "status_page_url"),
        Attr("spec.statusSource", "status_source", default="none"),
        Attr("spec.statusComponents", "status_components", default=[]),
        Attr("spec.probeUrl", "probe_url"),
        Attr("spec.probeExpectedStatus", "probe_expected_status", default=200),
        Attr("spec.statusInterval", "status_interval_seconds", default=60),
    ),
    Kind.SERVICE: (
        TITLE,
        DESCRIPTION,
        Attr("spec.tier", "tier", default=int(Tier.STANDARD), omit_when_default=False),
        Attr("spec.repository", "repository_url"),
        Attr("spec.runbook", "runbook_url"),
        Attr("spec.logLinkTemplate", "log_link_template"),
        Attr("spec.traceLinkTemplate", "trace_link_template"),
    ),
}
