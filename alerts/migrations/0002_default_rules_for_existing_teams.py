"""Give teams created before alerting existed the default rules (idempotent)."""

from __future__ import annotations

from typing import Any

from django.db import migrations


def give_default_rules(apps: Any, schema_editor: Any) -> None:
    from alerts.defaults import ensure_default_rules

    rule_model = apps.get_model("alerts", "Rule")
    for team in apps.get_model("catalog", "Team").objects.all():
        ensure_default_rules(team, rule_model)


class Migration(migrations.Migration):
    dependencies = [("alerts", "0001_initial")]

    operations = [migrations.RunPython(give_default_rules, migrations.RunPython.noop)]
