"""Reconciliation: every run proves that nothing was lost and nothing is counted twice.

The source's key set is compared both ways with what the lake holds for it — silver, plus the
keys that are only in quarantine (every version of them broke a rule), plus this batch:

- keys in the source and in none of those are *missing*: whatever lost them (a late commit, a
  bug, a restore), their current rows are re-read into this batch and logged as recovered, so
  any loss heals on the next run;
- keys in the lake but gone from the source are *deletions*, recorded in
  bronze.<table>_deletes for silver to apply — unless they would remove more than
  `max_delete_fraction` of silver, or the source is empty while silver is not: then the run
  stops (exit 2) before silver is touched (`--allow-mass-delete` lets one run through).

After silver has merged the batch, `verify_silver` checks the outcome: silver keys +
quarantine-only keys = the source's keys, else the run stops (exit 2). The counts of both steps
are logged per table and run, and kept in bronze._batches beside the batch's high-water mark.
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from ecomlake.config import Config, TableSpec
from ecomlake.errors import MassDeleteError, ReconciliationError
from ecomlake.io import delta

log = logging.getLogger(__name__)

# One row per source table and batch: the high-water mark the batch read up to (MySQL
# incremental tables) and the reconciliation's counts. Partitioned by table, so the MySQL and
# MongoDB ingestion tasks, which Airflow runs at the same time, never conflict.
BATCHES = "bronze._batches"
BATCHES_SCHEMA = T.StructType([
    T.StructField("table", T.StringType()),
    T.StructField("_batch_id", T.StringType()),
    T.StructField("watermark", T.TimestampType()),
    T.StructField("source_keys", T.LongType()),
    T.StructField("vanished", T.LongType()),
    T.StructField("recovered", T.LongType()),
    T.StructField("deleted", T.LongType()),
])


@dataclass
class Reconciliation:
    table: str
    batch_id: str
    source_keys: int
    silver_keys: int
    quarantine_only: int
    batch_keys: int
    missing: int = 0
    recovered: int = 0
    vanished: int = 0          # missing keys the source no longer had when re-read: deletions
    deleted: int = 0
    watermark: dt.datetime | None = None

    def row(self) -> tuple:
        return (self.table, self.batch_id, self.watermark, self.source_keys, self.vanished,
                self.recovered, self.deleted)


def keys_as(df: DataFrame, keys: list[str], like: T.StructType) -> DataFrame:
    """The key columns of `df`, cast to the types the source's key set has (silver's `id` is a
    bigint, the JDBC read of an unsigned BIGINT a decimal(20,0)), so set operations compare
    values, never representations."""
    return df.select(*[F.col(k).cast(like[k].dataType).alias(k) for k in keys])


def quarantine_only_keys(spark, cfg: Config, table: str, keys: list[str],
                         silver_keys: DataFrame | None) -> DataFrame | None:
    """Keys whose rows are in quarantine and not in silver, and which were not deleted in the
    source after their last quarantined version (the quarantine is an append-only record)."""
    q = f"silver.{table}_quarantine"
    if not delta.exists(spark, cfg, q):
        return None
    not_null = [F.col(k).isNotNull() for k in keys]
    cond = not_null[0]
    for c in not_null[1:]:
        cond = cond & c
    bad = (delta.read(spark, cfg, q).filter(cond).groupBy(*keys)
           .agg(F.max("_batch_id").alias("_last_bad")))
    d = f"bronze.{table}_deletes"
    if delta.exists(spark, cfg, d):
        gone = delta.read(spark, cfg, d).groupBy(*keys).agg(F.max("_batch_id").alias("_last_gone"))
        bad = (bad.join(gone, on=keys, how="left")
               .filter(F.col("_last_gone").isNull() | (F.col("_last_bad") > F.col("_last_gone"))))
    bad = bad.select(*keys)
    if silver_keys is not None:
        bad = bad.join(silver_keys, on=keys, how="left_anti")
    return bad


def _where_keys_are(keys: list[str], source: DataFrame,
                    lake: dict[str, DataFrame | None]) -> DataFrame:
    """One row per key of `source` or of any part of `lake` (name -> its keys, or None when
    that part does not exist yet), with a boolean column per part and `source`: whether it
    holds the key."""
    names = ["source", *lake]
    frames = [("source", source), *[(name, df) for name, df in lake.items() if df is not None]]
    tagged = None
    for name, df in frames:
        t = df.select(*keys, *[F.lit(n == name).alias(n) for n in names])
        tagged = t if tagged is None else tagged.unionByName(t)
    return tagged.groupBy(*keys).agg(*[F.max(n).alias(n) for n in names])


def mass_delete_guard(table: str, spec: TableSpec, n_source: int, n_silver: int,
                      n_deleted_from_silver: int, allow: bool) -> None:
    """Stop before anything is written when a run would delete too much of silver."""
    if allow or n_silver == 0:
        return
    if n_source == 0:
        why = f"the source has no keys at all while silver.{table} has {n_silver}"
    elif n_deleted_from_silver / n_silver > spec.max_delete_fraction:
        why = (f"{n_deleted_from_silver} of silver.{table}'s {n_silver} keys are gone from the "
               f"source ({n_deleted_from_silver / n_silver:.1%} > max_delete_fraction "
               f"{spec.max_delete_fraction:.1%} in conf/tables.yaml)")
    else:
        return
    raise MassDeleteError(
        f"{table}: {why}; nothing was written to silver. An empty or truncated source snapshot "
        "looks like this. If the deletions are real, rerun with --allow-mass-delete (or raise "
        f"`{table}.max_delete_fraction`).")


def reconcile(spark, cfg: Config, table: str, spec: TableSpec, batch_id: str,
              source_keys: DataFrame, *, recover=None, allow_mass_delete: bool = False):
    """Compare `source_keys` with silver + quarantine-only + this batch (see the module doc).

    `recover(missing_keys) -> int` re-reads the missing keys' rows into this batch and returns
    how many it found (MySQL); without it (a MongoDB snapshot is the batch itself) nothing can
    be missing. Returns (Reconciliation, the keys to delete or None)."""
    keys = spec.key
    # a key that does not even type (a MongoDB _id of an odd type) cannot be in silver: its
    # document is in quarantine under its rule, and counts as no key here
    src = keys_as(source_keys, keys, source_keys.schema).na.drop(subset=keys).distinct().cache()
    like = src.schema
    cached = [src]
    try:
        silver = keys_as(delta.read(spark, cfg, f"silver.{table}"), keys, like) \
            if delta.exists(spark, cfg, f"silver.{table}") else None
        quarantined = quarantine_only_keys(spark, cfg, table, keys, silver)
        quarantined = keys_as(quarantined, keys, like) if quarantined is not None else None
        batch = keys_as(delta.read(spark, cfg, f"bronze.{table}")
                        .filter(F.col("_batch_id") == batch_id), keys, like)
        # One row per key the source or the lake knows, flagged with where it is: every count
        # below is one aggregate over it (each Delta table is scanned once, not once a count).
        where = _where_keys_are(keys, src, {"silver": silver, "quarantine": quarantined,
                                            "batch": batch}).cache()
        cached.append(where)
        in_lake = F.col("silver") | F.col("quarantine") | F.col("batch")
        n = where.agg(*[F.count(F.when(c, True)).alias(name) for name, c in {
            "source": F.col("source"), "silver": F.col("silver"),
            "quarantine": F.col("quarantine"), "batch": F.col("batch"),
            "missing": F.col("source") & ~in_lake, "gone": ~F.col("source") & in_lake,
            "gone_from_silver": ~F.col("source") & F.col("silver")}.items()]).collect()[0]
        r = Reconciliation(table, batch_id, source_keys=n["source"], silver_keys=n["silver"],
                           quarantine_only=n["quarantine"], batch_keys=n["batch"],
                           missing=n["missing"])
        vanished = None
        if r.missing and recover is not None:
            missing = where.filter(F.col("source") & ~in_lake).select(*keys).cache()
            cached.append(missing)
            r.recovered = recover(missing)
            now_in_batch = keys_as(delta.read(spark, cfg, f"bronze.{table}")
                                   .filter(F.col("_batch_id") == batch_id), keys, like)
            vanished = missing.join(now_in_batch, on=keys, how="left_anti").cache()
            cached.append(vanished)
            r.vanished = vanished.count()
        elif r.missing:
            raise ReconciliationError(
                f"{table}: {r.missing} source keys are in neither silver, quarantine nor batch "
                f"{batch_id}, and this source cannot re-read them")
        # Deletions: keys the lake holds (or this batch brought) that the source no longer has.
        gone = where.filter(~F.col("source") & in_lake).select(*keys)
        if vanished is not None and r.vanished:
            gone = gone.unionByName(vanished)
        gone = gone.distinct().cache()
        r.deleted = n["gone"] + r.vanished
        from_silver = n["gone_from_silver"]
        if spec.detect_deletes:
            mass_delete_guard(table, spec, r.source_keys, r.silver_keys, from_silver,
                              allow_mass_delete)
        log.info("reconciliation %s, batch %s: source keys %d; lake before this batch: silver "
                 "%d + quarantine-only %d; batch %d keys; missing %d -> recovered %d (%d gone "
                 "from the source meanwhile); deletions %d (%d from silver)%s", table, batch_id,
                 r.source_keys, r.silver_keys, r.quarantine_only, r.batch_keys, r.missing,
                 r.recovered, r.vanished, r.deleted, from_silver,
                 "" if spec.detect_deletes else " NOT applied: detect_deletes is off")
        if not spec.detect_deletes:
            gone.unpersist()
            return r, None
        return r, gone   # cached: the caller unpersists it once the deletions are recorded
    finally:
        for df in cached:
            df.unpersist()


def record(spark, cfg: Config, results: list[Reconciliation]) -> None:
    """Keep the batches' marks and counts in bronze._batches (a rerun replaces its rows; one
    that found exactly what they say makes no commit)."""
    if not results:
        return
    df = spark.createDataFrame([r.row() for r in results], BATCHES_SCHEMA)
    tables = ", ".join(f"'{r.table}'" for r in results)
    batch_id = results[0].batch_id
    writer = df.write.format("delta").partitionBy("table")
    if delta.exists(spark, cfg, BATCHES):
        old = delta.read(spark, cfg, BATCHES).filter(
            F.col("table").isin([r.table for r in results]) & (F.col("_batch_id") == batch_id))
        if sorted(map(tuple, old.select(*BATCHES_SCHEMA.names).collect()), key=repr) == \
                sorted((r.row() for r in results), key=repr):
            log.info("%s: batch %s recorded as it was (no commit)", BATCHES, batch_id)
            return
        writer = writer.mode("overwrite").option(
            "replaceWhere", f"`table` IN ({tables}) AND _batch_id = '{batch_id}'")
    writer.save(delta.path(cfg, BATCHES))


def batch_watermark(spark, cfg: Config, table: str, batch_id: str):
    """The high-water mark batch `batch_id` itself recorded for `table`, or None."""
    if not delta.exists(spark, cfg, BATCHES):
        return None
    return (delta.read(spark, cfg, BATCHES)
            .filter((F.col("table") == table) & (F.col("_batch_id") == batch_id))
            .agg(F.max("watermark")).collect()[0][0])


def stored_watermark(spark, cfg: Config, table: str, batch_id: str):
    """The high-water mark up to which the batches before `batch_id` read `table`, or None."""
    if not delta.exists(spark, cfg, BATCHES):
        return None
    return (delta.read(spark, cfg, BATCHES)
            .filter((F.col("table") == table) & (F.col("_batch_id") < batch_id))
            .agg(F.max("watermark")).collect()[0][0])


def verify_silver(spark, cfg: Config, table: str, spec: TableSpec, batch_id: str,
                  n_silver: int) -> None:
    """After the MERGE: silver keys + quarantine-only keys must equal the source's keys as
    bronze's reconciliation read them (less those deleted while it re-read). Logged; a
    disagreement stops the run (exit 2)."""
    state = (delta.read(spark, cfg, BATCHES)
             .filter((F.col("table") == table) & (F.col("_batch_id") == batch_id)).collect()
             if delta.exists(spark, cfg, BATCHES) else [])
    if not state:
        log.warning("reconciliation silver.%s, batch %s: no source key count recorded by bronze "
                    "for this batch (bronze ran without reconciliation); not verified",
                    table, batch_id)
        return
    expected = state[0]["source_keys"] - state[0]["vanished"]
    silver_keys = delta.read(spark, cfg, f"silver.{table}").select(*spec.key)
    quarantined = quarantine_only_keys(spark, cfg, table, spec.key, silver_keys)
    n_quarantined = quarantined.count() if quarantined is not None else 0
    ok = n_silver + n_quarantined == expected
    log.log(logging.INFO if ok else logging.ERROR,
            "reconciliation silver.%s, batch %s: source keys %d %s silver %d + quarantine-only %d"
            " (recovered %d, deleted %d)", table, batch_id, expected, "=" if ok else "!=",
            n_silver, n_quarantined, state[0]["recovered"], state[0]["deleted"])
    if not ok:
        raise ReconciliationError(
            f"silver.{table}: after batch {batch_id} silver holds {n_silver} keys and quarantine "
            f"{n_quarantined} more, but the source had {expected}. Nothing was published; the "
            "next run re-reads missing keys and deletes extra ones. If it persists, compare "
            f"bronze.{table} and silver.{table} for batch {batch_id}.")
