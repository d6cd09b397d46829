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
from ecomlake.io import delta, mysql

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
    # an empty quarantine (most tables, most days) costs a listing, not a join of three tables
    if not delta.exists(spark, cfg, q) or delta.holds_no_rows(spark, cfg, q):
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


def _tagged(df: DataFrame, keys: list[str], name: str, names: list[str]) -> DataFrame:
    """The keys of `df` with a boolean column per part name: True for `name` only."""
    return df.select(*keys, *[F.lit(n == name).alias(n) for n in names])


def _where_keys_are(keys: list[str], parts: dict[str, DataFrame | None],
                    names: list[str] | None = None, tagged: list[DataFrame] = ()) -> DataFrame:
    """One row per key of any of `parts` (name -> its keys, or None when that part does not
    exist yet) or of the already `tagged` frames, with a boolean column per part: whether it
    holds the key."""
    names = names or list(parts)
    frames = [*tagged, *[_tagged(df, keys, name, names) for name, df in parts.items()
                         if df is not None]]
    union = frames[0]
    for t in frames[1:]:
        union = union.unionByName(t)
    return union.groupBy(*keys).agg(*[F.max(n).alias(n) for n in names])


# The reconciliation of a MySQL table compares per-key-range figures first (computed inside
# MySQL, and over the lake's keys in Spark) and reads the source's keys only for the ranges
# that differ: a rerun or a daily batch that lost nothing reads no keys at all, and a few
# deletions scattered over a large table cost the keys of the ranges they fall in.
KEYS_PER_RANGE = 64
MAX_RANGES = 65_536
MAX_DIFFERING_SHARE = 0.5   # past this share of differing ranges, every key is read


def key_range(column: str, width: int):
    """Spark's twin of mysql.key_range: the range of `width` values an integer key is in."""
    return F.expr(f"CAST(`{column}` AS BIGINT) div {int(width)}")


def range_width(lo: int, hi: int, n: int) -> int:
    """Values per key range so that the source's n keys in [lo, hi] make ranges of about
    KEYS_PER_RANGE keys (at most MAX_RANGES ranges)."""
    ranges = max(1, min(MAX_RANGES, n // KEYS_PER_RANGE))
    return max(1, -(-(hi - lo + 1) // ranges))


def range_figures(keys: list[str], column: str, width: int, flags: list[str]):
    """Aggregates of mysql.key_range_summary's figures over a DataFrame of keys (the text of a
    key is its columns joined by ','), plus a count per boolean flag column."""
    text = F.concat_ws(",", *[F.col(k).cast("string") for k in keys])
    md5_60 = F.conv(F.substring(F.md5(text), 1, 15), 16, 10).cast("bigint")
    return [F.count(F.lit(1)).alias("n"), F.sum(F.crc32(text)).alias("crc"),
            F.bit_xor(md5_60).alias("md5"),
            *[F.count(F.when(F.col(f), True)).alias(f) for f in flags]]


def lake_key_figures(spark, cfg: Config, table: str, spec: TableSpec) -> dict:
    """The lake's key set of `table` (silver's keys + the quarantine-only keys, typed as bronze
    holds them) as mysql.key_summary's figures over a whole table, and how many of the keys are
    silver's: a source whose key figures are these holds the same keys (ecomlake.quickcheck)."""
    keys = spec.key
    like = T.StructType([delta.read(spark, cfg, f"bronze.{table}").schema[k] for k in keys])
    silver = keys_as(delta.read(spark, cfg, f"silver.{table}"), keys, like)
    lake = silver.select("*", F.lit(True).alias("silver"))
    quarantined = quarantine_only_keys(spark, cfg, table, keys, silver)
    if quarantined is not None:
        lake = lake.unionByName(keys_as(quarantined, keys, like).select(
            "*", F.lit(False).alias("silver")))
    r = lake.agg(*range_figures(keys, None, None, ["silver"])).collect()[0]
    n = int(r["n"])
    return {"keys": [n, int(r["crc"] or 0), int(r["md5"] or 0)], "silver": int(r["silver"]),
            "quarantine_only": n - int(r["silver"])}


@dataclass
class MysqlKeys:
    """A MySQL table's key set, as the reconciliation asks for it."""
    spark: object
    cfg: Config
    table: str
    spec: TableSpec

    def bounds(self) -> tuple[int, int, int]:
        return mysql.key_bounds(self.cfg, self.table, self.spec.split_column)

    def figures(self, width: int) -> dict[int, tuple[int, int, int]]:
        return mysql.key_range_summary(self.cfg, self.table, self.spec.key,
                                       self.spec.split_column, width)

    def keys(self, width: int | None = None, ranges=None) -> DataFrame:
        """Every key, or the keys of the given ranges."""
        where = "1=1" if ranges is None else \
            mysql.in_key_ranges(self.spec.split_column, width, ranges)
        return mysql.read_keys(self.spark, self.cfg, self.table, self.spec.key,
                               self.spec.split_column, where)


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


LAKE = ["silver", "quarantine", "batch"]
WHERE = ["source", *LAKE]


def _lake_parts(spark, cfg: Config, table: str, keys: list[str], batch_id: str,
                like: T.StructType) -> dict[str, DataFrame | None]:
    """silver's keys, the quarantine-only keys and this batch's keys, typed like `like`."""
    silver = keys_as(delta.read(spark, cfg, f"silver.{table}"), keys, like) \
        if delta.exists(spark, cfg, f"silver.{table}") else None
    quarantined = quarantine_only_keys(spark, cfg, table, keys, silver)
    quarantined = keys_as(quarantined, keys, like) if quarantined is not None else None
    batch = keys_as(delta.read(spark, cfg, f"bronze.{table}")
                    .filter(F.col("_batch_id") == batch_id), keys, like)
    return {"silver": silver, "quarantine": quarantined, "batch": batch}


def _counts(where: DataFrame) -> dict[str, int]:
    """Every count of the reconciliation, in one aggregate over the flagged key set."""
    in_lake = F.col("silver") | F.col("quarantine") | F.col("batch")
    row = where.agg(*[F.count(F.when(c, True)).alias(name) for name, c in {
        "source": F.col("source"), "silver": F.col("silver"),
        "quarantine": F.col("quarantine"), "batch": F.col("batch"),
        "missing": F.col("source") & ~in_lake, "gone": ~F.col("source") & in_lake,
        "gone_from_silver": ~F.col("source") & F.col("silver")}.items()]).collect()[0]
    return row.asDict()


BIGINT_MAX = 2**63 - 1


def _by_ranges(spark, source: MysqlKeys, keys: list[str], lake: dict, like: T.StructType,
               cached: list, table: str) -> tuple[DataFrame, dict[str, int]] | None:
    """The flagged key set of the key ranges whose figures differ between the source and the
    lake (of every range when most differ), and the counts over every range; None when the
    source's keys do not fit the ranges (none at all, or past BIGINT: compare every key)."""
    lo, hi, n_source = source.bounds()
    if n_source == 0 or hi > BIGINT_MAX or lo < -BIGINT_MAX:
        return None
    width = range_width(lo, hi, n_source)
    column = source.spec.split_column
    flagged = _where_keys_are(keys, lake, LAKE).withColumn("_range", key_range(column, width))
    flagged = flagged.cache()
    cached.append(flagged)
    lake_figures = {r["_range"]: r for r in flagged.groupBy("_range").agg(
        *range_figures(keys, column, width, LAKE)).collect()}
    source_figures = source.figures(width)
    ranges = set(lake_figures) | set(source_figures)
    differ = {r for r in ranges if source_figures.get(r) != (
        tuple(lake_figures[r][f] for f in ("n", "crc", "md5")) if r in lake_figures else None)}
    every_key = len(differ) > MAX_DIFFERING_SHARE * len(ranges)
    log.info("reconciliation %s: %d key ranges of %d values, %d differ between the source and "
             "the lake%s", table, len(ranges), width, len(differ),
             ": reading every key instead" if every_key else "")
    totals = {f: sum(r[f] for r in lake_figures.values()) for f in LAKE}
    lake_part = flagged
    if every_key:
        src, same = source.keys(), 0
    else:
        same = sum(source_figures[r][0] for r in source_figures if r not in differ)
        lake_part = flagged.filter(F.col("_range").isin(sorted(differ)))
    lake_part = lake_part.select(*keys, F.lit(False).alias("source"), *LAKE)
    if not every_key:
        if not differ:
            counts = {"source": same, **totals, "missing": 0, "gone": 0, "gone_from_silver": 0}
            return lake_part, counts   # empty
        src = source.keys(width, differ)
    src = keys_as(src, keys, like).distinct()
    where = _where_keys_are(keys, {"source": src}, WHERE, tagged=[lake_part]).cache()
    cached.append(where)
    exact = _counts(where)
    counts = {**exact, **totals, "source": same + exact["source"]}
    return where, counts


def reconcile(spark, cfg: Config, table: str, spec: TableSpec, batch_id: str,
              source: DataFrame | MysqlKeys, *, recover=None, allow_mass_delete: bool = False):
    """Compare the source's key set with silver + quarantine-only + this batch (see the module
    doc). `source` is a DataFrame of every key (a MongoDB snapshot), or a MySQL table, whose
    keys are read only for the key ranges whose figures differ from the lake's.

    `recover(missing_keys) -> int` re-reads the missing keys' rows into this batch and returns
    how many it found (MySQL); without it (a MongoDB snapshot is the batch itself) nothing can
    be missing. Returns (Reconciliation, the keys to delete or None)."""
    keys = spec.key
    cached = []
    try:
        ranged = None
        if isinstance(source, MysqlKeys):
            # bronze holds the batch as the source's JDBC read typed it
            bronze_schema = delta.read(spark, cfg, f"bronze.{table}").schema
            like = T.StructType([bronze_schema[k] for k in keys])
            lake = _lake_parts(spark, cfg, table, keys, batch_id, like)
            ranged = _by_ranges(spark, source, keys, lake, like, cached, table)
            source_keys = source.keys() if ranged is None else None
        else:
            source_keys = source
        if ranged is None:
            # a key that does not even type (a MongoDB _id of an odd type) cannot be in silver:
            # its document is in quarantine under its rule, and counts as no key here
            src = keys_as(source_keys, keys, source_keys.schema).na.drop(subset=keys) \
                .distinct().cache()
            cached.append(src)
            like = src.schema
            lake = _lake_parts(spark, cfg, table, keys, batch_id, like)
            # One row per key the source or the lake knows, flagged with where it is: every
            # count is one aggregate over it (each Delta table is scanned once).
            where = _where_keys_are(keys, {"source": src, **lake}, WHERE).cache()
            cached.append(where)
            n = _counts(where)
        else:
            where, n = ranged
        in_lake = F.col("silver") | F.col("quarantine") | F.col("batch")
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
        if r.deleted:
            # materialised while `where` is still cached: recomputed later, it would scan the
            # lake and re-read a live source, and could differ from what was counted
            gone.count()
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


def marks(spark, cfg: Config, table: str, batch_id: str):
    """(the high-water mark up to which the batches before `batch_id` read `table`, the mark
    batch `batch_id` itself recorded); either None when there is none. One small read."""
    if not delta.exists(spark, cfg, BATCHES):
        return None, None
    rows = (delta.read(spark, cfg, BATCHES)
            .filter((F.col("table") == table) & (F.col("_batch_id") <= batch_id))
            .groupBy(F.col("_batch_id") == batch_id).agg(F.max("watermark")).collect())
    found = {bool(r[0]): r[1] for r in rows}
    return found.get(False), found.get(True)


def batch_records(spark, cfg: Config, batch_id: str) -> dict:
    """table -> bronze's record of batch `batch_id` in bronze._batches (one read for every
    table of a stage)."""
    if not delta.exists(spark, cfg, BATCHES):
        return {}
    return {r["table"]: r for r in delta.read(spark, cfg, BATCHES)
            .filter(F.col("_batch_id") == batch_id).collect()}


def verify_silver(spark, cfg: Config, table: str, spec: TableSpec, batch_id: str,
                  n_silver: int, records: dict) -> None:
    """After the MERGE: silver keys + quarantine-only keys must equal the source's keys as
    bronze's reconciliation read them (`records`: batch_records(), less those deleted while it
    re-read). Logged; a disagreement stops the run (exit 2)."""
    state = [records[table]] if table in records else []
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
