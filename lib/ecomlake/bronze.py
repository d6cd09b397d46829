"""Bronze: the sources as they were, plus `_ingested_at`, `_batch_id`, `_source` and the
partition column `_ingest_date`. Append-only: a batch is written once; rerunning the same batch
replaces exactly that batch, so a retried run never duplicates rows.

MySQL tables with a `watermark` are read incrementally, between two high-water marks: the mark
the earlier batches stored (bronze._batches) and a new one taken from the server before the
read, which no open transaction can fall behind (`mysql.high_water_mark`). Every parallel
partition of the read uses the same bounds, and the mark itself is stored, never the largest
value read (that loses the rows of a transaction that commits late). Rows at the stored mark are
read again; silver's MERGE absorbs repeats. Whatever still slips through is found and re-read
by the reconciliation (ecomlake.reconcile).
"""
from __future__ import annotations

import datetime as dt
import logging

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ecomlake.config import Config, TableSpec
from ecomlake import reconcile
from ecomlake.io import delta, mongo, mysql
from ecomlake import schemas

log = logging.getLogger(__name__)

AUDIT_COLUMNS = ["_ingested_at", "_batch_id", "_source", "_ingest_date"]
RECOVERED = " (recovered)"   # the end of `_source` for rows the reconciliation re-read
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


def watermark_window(spec: TableSpec, full_refresh: bool, lower, upper,
                     backfill: tuple[dt.date, dt.date] | None = None) -> str:
    """The SQL predicate selecting the rows this batch covers: (stored mark `lower`, new mark
    `upper`], with rows at the stored mark read again; without a stored mark, everything up to
    `upper`."""
    if backfill and spec.incremental and not full_refresh:
        return backfill_window(spec, *backfill)
    if full_refresh or not spec.incremental:
        return "1=1"
    col = f"`{spec.watermark}`"
    upto = f"{col} <= '{upper:%Y-%m-%d %H:%M:%S.%f}'"
    if lower is None:
        return upto
    return f"{col} >= '{lower:%Y-%m-%d %H:%M:%S.%f}' AND {upto}"


def batch_rows(spark, cfg: Config, table: str, batch_id: str, run_date: dt.date) -> tuple[int, int]:
    """(rows, rows read by the batch's incremental read: not recovered) of a bronze batch."""
    recovered = F.col("_source").endswith(RECOVERED)
    r = (delta.read(spark, cfg, f"bronze.{table}")
         .filter((F.col("_ingest_date") == F.lit(run_date)) & (F.col("_batch_id") == batch_id))
         .agg(F.count(F.lit(1)), F.count(F.when(~recovered, True))).collect()[0])
    return int(r[0]), int(r[1])


def unchanged_rerun(spark, cfg: Config, table: str, spec: TableSpec, batch_id: str,
                    run_date: dt.date, lower, batch_mark, upper) -> int | None:
    """A rerun of an incremental batch whose window the source left as it was: the rows of the
    earlier attempt's batch (kept as they are, no read, no commit), else None.

    The earlier attempt read the rows stamped in [lower, batch_mark]. The source still holds as
    many there, and none stamped after batch_mark up to the new mark: every UPDATE or INSERT
    stamps the server's clock (past batch_mark), and a DELETE lowers the count, so the read
    would bring exactly those rows again (a row stamped late is excluded by how the mark is
    taken; a key deleted elsewhere is found by the reconciliation). Two COUNTs on the server
    and one on the batch, against reading and comparing the whole window."""
    if batch_mark is None:
        return None
    in_window, later = mysql.window_counts(cfg, table, spec.watermark, lower, batch_mark, upper)
    if later:
        return None
    n, read = batch_rows(spark, cfg, table, batch_id, run_date)
    if read != in_window:
        return None
    log.info("bronze.%s: batch %s is there from an earlier attempt and the source changed "
             "nothing in its window (%d rows stamped up to its mark %s, none after): kept "
             "without reading (no commit)", table, batch_id, in_window, batch_mark)
    return n


def replace_batch(spark, cfg: Config, name: str, df: DataFrame, batch_id: str,
                  run_date: dt.date) -> tuple[int, bool]:
    """(rows of the batch, whether an earlier attempt's identical batch was kept uncommitted)."""
    before = delta.latest_version(spark, cfg, name)
    kept = delta.replace_batch(df, cfg, name, batch_id, "_ingest_date", run_date)
    if kept is not None:
        return kept, True
    version, n = delta.written(spark, cfg, name)
    if version == before:   # an empty batch made no commit: the last one is an earlier batch's
        n = 0
    log.info("%s: batch %s has %d rows (Delta version %d)", name, batch_id, n, version)
    return n, False


def ingest_mysql(spark, cfg: Config, table: str, spec: TableSpec, batch_id: str,
                 run_date: dt.date, ingested_at: dt.datetime, *, full_refresh: bool = False,
                 backfill: tuple[dt.date, dt.date] | None = None,
                 mark: dt.datetime | None = None) -> tuple[int, dt.datetime | None]:
    """Read this batch's rows into bronze.<table>; returns (rows, the high-water mark the batch
    read up to, or None when it is not an incremental read). `mark`: the high-water mark the
    stage took for all its tables (taken here when None)."""
    # The mark is taken before the read: rows stamped after it are the next batch's.
    upper = (mark or mysql.high_water_mark(cfg)) if spec.incremental else None
    lower, batch_mark = reconcile.marks(spark, cfg, table, batch_id) if upper else (None, None)
    if upper is not None and not full_refresh and not backfill:
        kept = unchanged_rerun(spark, cfg, table, spec, batch_id, run_date, lower, batch_mark,
                               upper)
        if kept is not None:
            return kept, batch_mark
    where = watermark_window(spec, full_refresh, lower, upper, backfill)
    log.info("bronze.%s: reading rows where %s", table, where)
    rows = mysql.read_table(spark, cfg, table, key=spec.split_column,
                            where=where)
    source = f"mysql:{cfg.mysql.database}.{table}"
    out = rows.transform(with_audit_columns(source, batch_id, run_date, ingested_at))
    n, kept = replace_batch(spark, cfg, f"bronze.{table}", out, batch_id, run_date)
    if backfill and not full_refresh:
        return n, None   # a backfill re-reads a date range; it does not move the mark
    if (kept or n == 0) and upper is not None:
        # A rerun that read exactly the rows of the earlier attempt (or none, as it did) found
        # nothing stamped between that attempt's mark and this one: the earlier mark stays (a
        # lower mark only reads more next time), so the batch's record needs no commit either.
        upper = batch_mark or upper
    return n, upper


def recover_mysql(spark, cfg: Config, table: str, spec: TableSpec, batch_id: str,
                  run_date: dt.date, ingested_at: dt.datetime):
    """The reconciliation's `recover`: re-read the current rows of the missing keys and append
    them to this batch (a rerun of the batch replaces them with the rest)."""
    def recover(missing: DataFrame) -> int:
        rows = mysql.read_rows_by_keys(spark, cfg, table, spec.key, spec.split_column, missing)
        source = f"mysql:{cfg.mysql.database}.{table}{RECOVERED}"
        out = rows.transform(with_audit_columns(source, batch_id, run_date, ingested_at)).cache()
        try:
            n = out.count()
            if n:
                delta.append(out, cfg, f"bronze.{table}", "_ingest_date")
            log.warning("bronze.%s: recovered %d rows missing from the lake into batch %s",
                        table, n, batch_id)
            return n
        finally:
            out.unpersist()
    return recover


def ingest_mongo(spark, cfg: Config, collection: str, batch_id: str, run_date: dt.date,
                 ingested_at: dt.datetime) -> tuple[int, str | None]:
    """The whole collection as it is: every top-level field as text (a known field in its own
    column, any other in `_extra`) and each field's BSON type in `_bson_types`, so no value of
    any type can fail the read; silver types the known fields and quarantines what does not
    fit. Returns (rows, the documents' fingerprint, or None when the collection changed while
    it was read): ecomlake.quickcheck compares a rerun's collection with it."""
    known = schemas.MONGO[collection]
    fields, before = mongo.scan(cfg, collection)
    extra = sorted(set(fields) - set(known))
    if extra:
        log.info("bronze.%s: fields outside the schema, kept in %s: %s", collection, EXTRA,
                 ", ".join(extra))
    docs = mongo.read_as_text(spark, cfg, collection, known + extra, schemas.BSON_TYPES)
    source = f"mongodb:{cfg.mongo.database}.{collection}"
    out = (docs.transform(with_extra_fields(extra))
           .transform(with_delta_safe_names(schemas.DELTA_NAMES))
           .transform(with_audit_columns(source, batch_id, run_date, ingested_at)))
    n = replace_batch(spark, cfg, f"bronze.{collection}", out, batch_id, run_date)[0]
    # The batch is what the collection held at some moment of the read: the same fingerprint
    # just before and just after it says which documents those were.
    after = mongo.scan(cfg, collection, fields=False)[1]
    if after != before:
        log.info("bronze.%s: the collection changed while it was read: no fingerprint kept "
                 "(a rerun takes the full check)", collection)
    return n, before if after == before else None


def record_deletes(spark, cfg: Config, table: str, batch_id: str, run_date: dt.date,
                   ingested_at: dt.datetime, gone: DataFrame, n_gone: int) -> int:
    """Record the `n_gone` keys deleted in the source (found by the reconciliation, which
    counted them) in bronze.<table>_deletes, for silver to apply. No commit for none, unless a
    rerun must clear the batch's earlier record."""
    name = f"bronze.{table}_deletes"
    if n_gone == 0 and not delta.has_batch(spark, cfg, name, batch_id,
                                           ("_ingest_date", run_date)):
        log.info("%s: no keys deleted in the source (no commit)", name)
        return 0
    out = gone.transform(with_audit_columns(f"keys:{table}", batch_id, run_date, ingested_at))
    return replace_batch(spark, cfg, name, out, batch_id, run_date)[0]
