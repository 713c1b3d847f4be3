"""Rollup rows are updated in place every batch: leave room on each page for HOT updates."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("health", "0001_initial")]

    operations = [
        migrations.RunSQL(
            "ALTER TABLE health_rollup SET (fillfactor = 50)",
            "ALTER TABLE health_rollup RESET (fillfactor)",
        )
    ]
