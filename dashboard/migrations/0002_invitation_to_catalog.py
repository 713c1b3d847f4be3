"""Invitations now belong to the catalog (catalog 0005): the dashboard forgets the model,
state only; the table and its rows stay."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("dashboard", "0001_team_invitations"),
        ("catalog", "0005_invitation_from_dashboard"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="Invitation")],
            database_operations=[],
        ),
    ]
