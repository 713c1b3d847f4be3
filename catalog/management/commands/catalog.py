"""`manage.py catalog import PATH... | export`: the catalog as code, from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from catalog.catalog_yaml import (
    Action,
    CatalogConflict,
    CatalogInvalid,
    ImportResult,
    export_catalog,
    export_notes,
    import_catalog,
    sources_from_paths,
)

SIGNS = {Action.CREATED: "+", Action.UPDATED: "~", Action.DELETED: "-"}


class Command(BaseCommand):
    help = "Import catalog YAML files (all or nothing) or export the catalog as YAML."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="{import,export}")
        importer = actions.add_parser(
            "import",
            help="create or update the catalog from *.yaml/*.yml files or directories",
            description="Everything is checked first; any problem stops the whole import.",
        )
        importer.add_argument("paths", nargs="+", metavar="PATH")
        importer.add_argument(
            "--dry-run", action="store_true", help="check and show the changes; write nothing"
        )
        importer.add_argument(
            "--prune",
            action="store_true",
            help="also delete teams, environments, external dependencies, services, "
            "check specs, heartbeats, maintenance and freeze windows, alert channels, routes "
            "and rules that the files do not declare",
        )
        exporter = actions.add_parser("export", help="write the whole catalog as YAML")
        exporter.add_argument("--out", metavar="FILE", help="write here instead of stdout")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "import":
            self._import(options["paths"], dry_run=options["dry_run"], prune=options["prune"])
        else:
            self._export(options["out"])

    def _import(self, paths: list[str], *, dry_run: bool, prune: bool) -> None:
        try:
            sources = sources_from_paths(paths)
            readable = sum(1 for source in sources if not source.error)
            self.stdout.write(f"Reading {readable} file(s)" + (" (dry run)" if dry_run else ""))
            result = import_catalog(
                sources,
                prune=prune,
                dry_run=dry_run,
                actor="manage.py catalog import",
                resolve_secrets=True,
            )
        except CatalogInvalid as exc:
            for problem in exc.problems:
                self.stderr.write(f"error: {problem.located()}")
            raise CommandError(
                f"{len(exc.problems)} problem(s) found; nothing was imported. "
                "Fix them (each names the file#document, the entity and the field) and re-run."
            ) from exc
        except CatalogConflict as exc:
            raise CommandError(str(exc)) from exc
        self._report(result)

    def _report(self, result: ImportResult) -> None:
        for change in result.changed:
            fields = f" ({', '.join(change.fields)})" if change.fields else ""
            self.stdout.write(f"  {SIGNS[change.action]} {change.label}{fields}")
        for warning in result.warnings:
            self.stderr.write(f"warning: {warning.located()}")
        if result.dry_run:
            self.stdout.write(f"Dry run, nothing written. Would be: {result.summary()}.")
        else:
            self.stdout.write(self.style.SUCCESS(f"Imported: {result.summary()}."))

    def _export(self, out: str | None) -> None:
        text = export_catalog()
        for note in export_notes():
            self.stderr.write(f"note: {note}")
        if out is None:
            self.stdout.write(text, ending="")
            return
        try:
            Path(out).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"cannot write {out}: {exc}") from exc
        self.stdout.write(f"Exported the catalog to {out}")
