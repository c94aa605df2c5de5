"""The outbox table (jobq.contrib.outbox.schema); made by ``makemigrations jobq`` (Django 5.2)."""

from django.db import migrations, models
from django.db.models.functions import Now


class Migration(migrations.Migration):

    initial = True

    dependencies: list[tuple[str, str]] = []

    operations = [
        migrations.CreateModel(
            name="OutboxJob",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("task", models.CharField(max_length=200)),
                ("payload", models.JSONField()),
                ("priority", models.SmallIntegerField(null=True)),
                ("delay_s", models.FloatField(db_default=0.0, default=0.0)),
                ("created_at", models.DateTimeField(db_default=Now())),
                ("error", models.TextField(null=True)),
            ],
            options={
                "verbose_name": "outbox job",
                "db_table": "jobq_outbox",
            },
        ),
    ]
