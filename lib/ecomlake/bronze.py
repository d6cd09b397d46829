"""Bronze: the sources as they were, plus `_ingested_at`, `_batch_id`, `_source` and the
partition column `_ingest_date`. Append-only: a batch is written once; rerunning the same batch
replaces exactly that batch, so a retried run never duplicates rows."""
from __future__ import annotations

import datetime as dt
import logging

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ecomlake.config import Config
from ecomlake.io import delta, mongo, mysql
from ecomlake.sources import schemas

log = logging.getLogger(__name__)

AUDIT_COLUMNS = ["_ingested_at", "_batch_id", "_source", "_ingest_date"]


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


def ingest_mysql(spark, cfg: Config, table: str, key: str, batch_id: str, run_date: dt.date,
                 ingested_at: dt.datetime) -> int:
    rows = mysql.read_table(spark, cfg, table, key=key)
    source = f"mysql:{cfg.mysql.database}.{table}"
    out = rows.transform(with_audit_columns(source, batch_id, run_date, ingested_at))
    delta.replace_batch(out, cfg, f"bronze.{table}", batch_id, "_ingest_date")
    n = delta.read(spark, cfg, f"bronze.{table}").filter(F.col("_batch_id") == batch_id).count()
    log.info("bronze.%s: batch %s has %d rows (Delta version %d)", table, batch_id, n,
             delta.version(spark, cfg, f"bronze.{table}"))
    return n


def ingest_mongo(spark, cfg: Config, collection: str, batch_id: str, run_date: dt.date,
                 ingested_at: dt.datetime) -> int:
    docs = mongo.read_collection(spark, cfg, collection, schemas.ELECTRONICS)
    source = f"mongodb:{cfg.mongo.database}.{collection}"
    out = (docs.transform(with_delta_safe_names(schemas.DELTA_NAMES))
           .transform(with_audit_columns(source, batch_id, run_date, ingested_at)))
    delta.replace_batch(out, cfg, f"bronze.{collection}", batch_id, "_ingest_date")
    n = delta.read(spark, cfg, f"bronze.{collection}").filter(F.col("_batch_id") == batch_id).count()
    log.info("bronze.%s: batch %s has %d documents (Delta version %d)", collection, batch_id, n,
             delta.version(spark, cfg, f"bronze.{collection}"))
    return n
