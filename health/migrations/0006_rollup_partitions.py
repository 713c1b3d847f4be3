"""Rollups move from one table (minutes and hours, a resolution column, a surrogate id) to a
minute table range-partitioned by hour and an hour table, both keyed by
(service, environment, bucket), plus the watermark up to which minutes are folded into hours.

Histograms are stored without their trailing zero buckets (a 24-bucket int array of a service
answering in under 100 ms keeps 12 of them): health_hist_add/health_hist_sum add such arrays.
The existing rows move over (minutes into the DEFAULT partition, which ensure_partitions then
splits into hourly ones); the watermark starts at the oldest remaining minute, so the minutes
still kept are folded on top of the hours already made (no minutes: from 1970, nothing
before it). Irreversible: the old table is dropped.
"""

from django.contrib.postgres.fields import ArrayField
from django.db import migrations, models
from django.db.models import deletion

FUNCTIONS = """
CREATE FUNCTION health_hist_add(a integer[], b integer[]) RETURNS integer[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT coalesce(array_agg(coalesce(x, 0) + coalesce(y, 0) ORDER BY i), '{}')
  FROM unnest(a, b) WITH ORDINALITY AS t(x, y, i)
$$;
CREATE AGGREGATE health_hist_sum(integer[]) (
  SFUNC = health_hist_add, STYPE = integer[], INITCOND = '{}', PARALLEL = SAFE
);
CREATE FUNCTION health_hist_trim(a integer[]) RETURNS integer[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT a[1:coalesce((SELECT max(i) FROM unnest(a) WITH ORDINALITY AS t(x, i) WHERE x <> 0), 0)]
$$;
"""

# Columns widest first so nothing is padded: 5 x 8 B, 3 x 4 B, then the short histogram.
COLUMNS = """
  service_id bigint NOT NULL REFERENCES catalog_service (id) DEFERRABLE INITIALLY DEFERRED,
  environment_id bigint NOT NULL REFERENCES catalog_environment (id) DEFERRABLE INITIALLY DEFERRED,
  bucket timestamptz NOT NULL,
  latency_sum_ms double precision NOT NULL DEFAULT 0,
  latency_max_ms double precision NOT NULL DEFAULT 0,
  count integer NOT NULL DEFAULT 0 CHECK (count >= 0),
  failures integer NOT NULL DEFAULT 0 CHECK (failures >= 0),
  warnings integer NOT NULL DEFAULT 0 CHECK (warnings >= 0),
  histogram integer[] NOT NULL DEFAULT '{}',
  PRIMARY KEY (service_id, environment_id, bucket)
"""

TABLES = f"""
CREATE TABLE health_rollup_minute ({COLUMNS}) PARTITION BY RANGE (bucket);
CREATE TABLE health_rollup_minute_default PARTITION OF health_rollup_minute DEFAULT
  WITH (fillfactor = 50);
CREATE TABLE health_rollup_hour ({COLUMNS}) WITH (fillfactor = 90);
CREATE TABLE health_rollup_watermark (
  id smallint PRIMARY KEY CHECK (id = 1),
  folded_until timestamptz NOT NULL
);
"""

MOVE = """
INSERT INTO health_rollup_minute (service_id, environment_id, bucket, latency_sum_ms,
  latency_max_ms, count, failures, warnings, histogram)
SELECT service_id, environment_id, bucket, latency_sum_ms, latency_max_ms, count, failures,
  warnings, health_hist_trim(histogram)
FROM health_rollup WHERE resolution = 'minute';
INSERT INTO health_rollup_hour (service_id, environment_id, bucket, latency_sum_ms,
  latency_max_ms, count, failures, warnings, histogram)
SELECT service_id, environment_id, bucket, latency_sum_ms, latency_max_ms, count, failures,
  warnings, health_hist_trim(histogram)
FROM health_rollup WHERE resolution = 'hour';
INSERT INTO health_rollup_watermark (id, folded_until)
SELECT 1, coalesce((SELECT min(bucket) FROM health_rollup WHERE resolution = 'minute'),
                   '1970-01-01 00:00+00');
DROP TABLE health_rollup;
"""


def split_default(apps, schema_editor) -> None:  # noqa: ANN001 (migration signature)
    from health.rollups import ensure_partitions

    ensure_partitions(hours_back=25, using=schema_editor.connection.alias)


def fields() -> list:
    return [
        ("pk", models.CompositePrimaryKey("service", "environment", "bucket", blank=True, editable=False, primary_key=True, serialize=False)),
        ("service", models.ForeignKey(db_index=False, on_delete=deletion.CASCADE, related_name="+", to="catalog.service")),
        ("environment", models.ForeignKey(db_index=False, on_delete=deletion.CASCADE, related_name="+", to="catalog.environment")),
        ("bucket", models.DateTimeField()),
        ("count", models.PositiveIntegerField(default=0)),
        ("failures", models.PositiveIntegerField(default=0)),
        ("warnings", models.PositiveIntegerField(default=0)),
        ("latency_sum_ms", models.FloatField(default=0)),
        ("latency_max_ms", models.FloatField(default=0)),
        ("histogram", ArrayField(base_field=models.IntegerField(), default=list, size=24)),
    ]  # fmt: skip


class Migration(migrations.Migration):
    atomic = True
    dependencies = [("health", "0005_heartbeat_ping_log"), ("catalog", "0001_initial")]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(FUNCTIONS + TABLES + MOVE),
                migrations.RunPython(split_default),
            ],
            state_operations=[
                migrations.DeleteModel("Rollup"),
                migrations.CreateModel(
                    name="MinuteRollup",
                    fields=fields(),
                    options={"db_table": "health_rollup_minute", "ordering": ["bucket"]},
                ),
                migrations.CreateModel(
                    name="HourRollup",
                    fields=fields(),
                    options={"db_table": "health_rollup_hour", "ordering": ["bucket"]},
                ),
                migrations.CreateModel(
                    name="RollupWatermark",
                    fields=[
                        ("id", models.SmallIntegerField(primary_key=True, serialize=False)),
                        ("folded_until", models.DateTimeField()),
                    ],
                    options={"db_table": "health_rollup_watermark"},
                ),
            ],
        )
    ]
