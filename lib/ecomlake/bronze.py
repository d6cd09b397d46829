"""Bronze: the sources as they were, plus `_ingested_at`, `_batch_id`, `_source` and the
partition column `_ingest_date`. Append-only: a batch is written once; rerunning the same batch
replaces exactly that batch, so a retried run never duplicates rows.

MySQL tables with a `watermark` are read incrementally: rows whose watermark is after the
largest one already in bronze from earlier batches, so the watermark lives in the same Delta
commit as the rows it covers — a run that fails re-reads the same window, never skips one.
"""
from __future__ import annotations

import datetime as dt
import logging

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from ecomlake.config import Config, TableSpec
from ecomlake.io import delta, mongo, mysql
from ecomlake.sources import schemas

log = logging.getLogger(__name__)

AUDIT_COLUMNS = ["_ingested_at", "_batch_id", "_source", "_ingest_date"]
EXTRA = "_extra"   # MongoDB fields the explicit schema does not know: name -> JSON value


def with_audit_columns(source: str, batch_id: str, run_date: dt.date,
                       ingested_at: dt.datetime):
    def transform(df: DataFrame) -> DataFrame:
        return df.select(
            "*",
            F.lit(ingested_at).cast("timestamp").alias("_ingested_at"),
            F.lit(batch_id).alias("_batch_id"),
            F.lit(source).alias("_source"),
            F.lit(run_date).cast("date").alias("_ingest_date"),
        )
    return transform


def with_delta_safe_names(mapping: dict[str, str]):
    """Rename the source fields Delta rejects, explicitly (no silent mangling)."""
    def transform(df: DataFrame) -> DataFrame:
        return df.select([F.col(f"`{c}`").alias(mapping.get(c, c)) for c in df.columns])
    return transform


def with_extra_fields(extra: list[str]):
    """Pack the fields outside the explicit schema into one map column, so that a new field in
    the source is kept (as JSON text) without changing the bronze table's schema."""
    def transform(df: DataFrame) -> DataFrame:
        pairs = [x for name in extra for x in (F.lit(name), F.col(f"`{name}`"))]
        packed = F.map_filter(F.create_map(*pairs), lambda k, v: v.isNotNull()) if pairs \
            else F.create_map().cast("map<string,string>")
        return df.select(*[F.col(f"`{c}`") for c in df.columns if c not in extra],
                         packed.alias(EXTRA))
    return transform


def backfill_window(spec: TableSpec, start: dt.date, end: dt.date) -> str:
    """Rows changed on the days start..end (inclusive), by the watermark column."""
    return (f"`{spec.watermark}` >= '{start:%Y-%m-%d} 00:00:00' AND "
            f"`{spec.watermark}` < '{end + dt.timedelta(days=1):%Y-%m-%d} 00:00:00'")


def watermark_window(spark, cfg: Config, table: str, spec: TableSpec, batch_id: str,
                     full_refresh: bool, backfill: tuple[dt.date, dt.date] | None = None) -> str:
    """The SQL predicate selecting the rows this batch covers."""
    name = f"bronze.{table}"
    if backfill and spec.incremental and not full_refresh:
        return backfill_window(spec, *backfill)
    if full_refresh or not spec.incremental or not delta.exists(spark, cfg, name):
        return "1=1"
    lower = (delta.read(spark, cfg, name).filter(F.col("_batch_id") < batch_id)
             .agg(F.max(spec.watermark)).collect()[0][0])
    if lower is None:
        return "1=1"
    # Strictly after: a bulk load stamps all its rows with one timestamp, and `>=` re-read every
    # one of them on every run (183k sales rows per run at scale 1). Either way a transaction
    # that commits after the read with an older updated_at is only seen by a --backfill.
    return f"`{spec.watermark}` > '{lower:%Y-%m-%d %H:%M:%S.%f}'"


def replace_batch(spark, cfg: Config, name: str, df: DataFrame, batch_id: str,
                  run_date: dt.date) -> int:
    delta.replace_batch(df, cfg, name, batch_id, "_ingest_date", run_date)
    version, n = delta.written(spark, cfg, name)
    log.info("%s: batch %s has %d rows (Delta version %d)", name, batch_id, n, version)
    return n


def ingest_mysql(spark, cfg: Config, table: str, spec: TableSpec, batch_id: str,
                 run_date: dt.date, ingested_at: dt.datetime, *, full_refresh: bool = False,
                 backfill: tuple[dt.date, dt.date] | None = None) -> int:
    where = watermark_window(spark, cfg, table, spec, batch_id, full_refresh, backfill)
    log.info("bronze.%s: reading rows where %s", table, where)
    rows = mysql.read_table(spark, cfg, table, key=spec.split_column,
                            where=where)
    source = f"mysql:{cfg.mysql.database}.{table}"
    out = rows.transform(with_audit_columns(source, batch_id, run_date, ingested_at))
    return replace_batch(spark, cfg, f"bronze.{table}", out, batch_id, run_date)


def ingest_mongo(spark, cfg: Config, collection: str, batch_id: str, run_date: dt.date,
                 ingested_at: dt.datetime) -> int:
    schema = schemas.MONGO[collection]
    known = set(schema.fieldNames())
    extra = sorted(set(mongo.top_level_fields(cfg, collection)) - known)
    if extra:
        log.info("bronze.%s: fields outside the schema, kept in %s: %s", collection, EXTRA,
                 ", ".join(extra))
    read_schema = T.StructType(schema.fields + [T.StructField(f, T.StringType()) for f in extra])
    docs = mongo.read_collection(spark, cfg, collection, read_schema)
    source = f"mongodb:{cfg.mongo.database}.{collection}"
    out = (docs.transform(with_extra_fields(extra))
           .transform(with_delta_safe_names(schemas.DELTA_NAMES))
           .transform(with_audit_columns(source, batch_id, run_date, ingested_at)))
    return replace_batch(spark, cfg, f"bronze.{collection}", out, batch_id, run_date)


def record_deletes(spark, cfg: Config, table: str, spec: TableSpec, batch_id: str,
                   run_date: dt.date, ingested_at: dt.datetime, source_keys: DataFrame) -> int:
    """Keys present in silver but gone from the source: record them in bronze.<table>_deletes."""
    if not delta.exists(spark, cfg, f"silver.{table}"):
        return 0
    current = delta.read(spark, cfg, f"silver.{table}").select(*spec.key)
    gone = current.join(source_keys.select(*spec.key), on=spec.key, how="left_anti").cache()
    try:
        name = f"bronze.{table}_deletes"
        if gone.isEmpty() and not delta.has_batch(spark, cfg, name, batch_id,
                                                  ("_ingest_date", run_date)):
            log.info("%s: no keys deleted in the source (no commit)", name)
            return 0
        out = gone.transform(with_audit_columns(f"keys:{table}", batch_id, run_date, ingested_at))
        return replace_batch(spark, cfg, name, out, batch_id, run_date)
    finally:
        gone.unpersist()
