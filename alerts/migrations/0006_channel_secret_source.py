from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("alerts", "0005_apprise_channels_and_rollout_subscriptions"),
    ]

    operations = [
        migrations.AddField(
            model_name="channel",
            name="secret_source",
            field=models.JSONField(blank=True, default=dict),
        ),
    ]
