"""Who may make the changes an import plans: write access per team, admin for the rest."""

from __future__ import annotations

from collections.abc import Iterable

from catalog.catalog_yaml.kinds import Action
from catalog.catalog_yaml.plan import Change
from catalog.catalog_yaml.problems import CatalogForbidden
from catalog.choices import Scope
from catalog.permissions import Access


def authorize(changes: Iterable[Change], access: Access) -> None:
    """Raise CatalogForbidden naming every team (or admin-only change) the caller lacks."""
    refusals: dict[str, list[str]] = {}
    allowed: dict[tuple[int, int | None], bool] = {}
    for change in changes:
        if change.action == Action.UNCHANGED:
            continue
        if change.needs_admin and not access.is_admin:
            refusals.setdefault("only a platform admin may change", []).append(change.label)
        for team in change.teams:
            key = (team.pk, change.service.pk if change.service else None)
            if key not in allowed:
                allowed[key] = access.can(Scope.WRITE, team, change.service)
            if not allowed[key]:
                reason = access.why_not(Scope.WRITE, team, change.service)
                refusals.setdefault(f"team {team.slug} ({reason})", []).append(change.label)
    if refusals:
        raise CatalogForbidden(
            "this import needs write access you do not have: "
            + "; ".join(f"{who}: {', '.join(labels)}" for who, labels in refusals.items())
        )
