"""Silver: typed, validated, one row per business key.

Per batch: bronze rows are typed, checked against the table's named rules (conf/tables.yaml),
split into clean and quarantined rows, deduplicated by key (latest version wins, ties broken
deterministically) and MERGEd into silver.<table>; rows breaking a rule land in
silver.<table>_quarantine with the rules they broke. bronze rows = clean + quarantined, logged.
Deletions recorded in bronze.<table>_deletes are applied; attributes listed under `history`
are kept as type 2 history in silver.<table>_history.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from ecomlake.config import Config, TableSpec
from ecomlake.errors import DataQualityError
from ecomlake.io import delta
from ecomlake.quality import FAILED_RULES, split_valid, with_failed_rules

log = logging.getLogger(__name__)

# The first version of a record is valid since the beginning of time: history starts when the
# platform first saw the record, and facts older than that belong to that first version.
BEGINNING = "1900-01-01 00:00:00"


def typed_sales(df: DataFrame) -> DataFrame:
    return df.select(
        F.col("id").cast("bigint"),
        F.col("product_id").cast("int"),
        F.col("customer_id").cast("int"),
        F.col("price").cast("decimal(12,2)"),
        F.col("quantity").cast("int"),
        F.col("timestamp").cast("timestamp"),
        F.col("updated_at").cast("timestamp"),
        "_batch_id",
    )


def typed_customers(df: DataFrame) -> DataFrame:
    return df.select(
        F.col("customer_id").cast("int"),
        F.col("name").cast("string"),
        F.col("email").cast("string"),
        F.trim("country").alias("country"),
        F.col("created_at").cast("timestamp"),
        F.col("updated_at").cast("timestamp"),
        "_batch_id",
    )


def typed_inventory(df: DataFrame) -> DataFrame:
    return df.select(
        F.col("product_id").cast("int"),
        F.col("warehouse_id").cast("int"),
        F.col("quantity_on_hand").cast("int"),
        F.col("updated_at").cast("timestamp"),
        "_batch_id",
    )


def typed_electronics(df: DataFrame) -> DataFrame:
    """Catalog documents, typed. `price_raw` keeps the source text so a price that is not a
    number can be told from a missing one; `_duplicate_product` marks every document after the
    first (by updated_at, then _id) that claims an already-used product_id."""
    first = Window.partitionBy("product_id").orderBy(F.col("updated_at").asc_nulls_first(),
                                                     F.col("_id"))
    return (df.select(
        F.col("_id").cast("string"),
        F.col("product_id").cast("int"),
        F.trim("type").alias("type"),
        F.trim("model").alias("model"),
        F.col("screen_size").cast("double"),
        F.col("category").cast("string"),
        F.col("brand").cast("string"),
        F.col("price").alias("price_raw"),
        F.expr("try_cast(price AS DECIMAL(12,2))").alias("price"),
        F.col("attributes").cast("string"),
        F.col("_extra"),
        F.col("updated_at").cast("timestamp"),
        "_batch_id")
        .withColumn("_duplicate_product",
                    F.col("product_id").isNotNull() & (F.row_number().over(first) > 1)))


# Columns computed only for a rule to look at; quarantine keeps them, silver does not.
CHECK_ONLY_COLUMNS = {"_duplicate_product"}

TYPED = {"sales_data": typed_sales, "customers": typed_customers,
         "inventory": typed_inventory, "electronics": typed_electronics}
# Which version of a key wins when a batch holds several: the latest, then a total order on
# all columns so the choice never depends on partitioning.
LATEST_FIRST = {"sales_data": ["updated_at"], "customers": ["updated_at"],
                "inventory": ["updated_at"], "electronics": ["updated_at"]}


def silver_checks(spec: TableSpec) -> dict[str, str]:
    """Delta CHECK constraints of silver.<table>, the last guard behind the rules: every key
    column NOT NULL, and every rule that reads only columns silver keeps."""
    checks = {f"key_{k.strip('_')}_not_null": f"`{k}` IS NOT NULL" for k in spec.key}
    checks.update({name: sql for name, sql in spec.rules.items()
                   if not any(c in sql for c in CHECK_ONLY_COLUMNS)})
    return checks


def latest_per_key(keys: list[str], order_desc: list[str]):
    def transform(df: DataFrame) -> DataFrame:
        tiebreak = [c for c in df.columns if c not in keys and c not in order_desc
                    and dict(df.dtypes)[c].split("<")[0] not in ("map", "array", "struct")]
        order = [F.col(c).desc_nulls_last() for c in order_desc + tiebreak]
        w = Window.partitionBy(*keys).orderBy(*order)
        return df.withColumn("_rn", F.row_number().over(w)).filter("_rn = 1").drop("_rn")
    return transform


def history_changes(current_history: DataFrame | None, batch: DataFrame, keys: list[str],
                    tracked: list[str]) -> DataFrame:
    """Rows of `batch` that open a new type 2 version: keys never seen, and keys whose tracked
    attributes differ from their current version. A new key's first version is valid from the
    beginning of time; a change is valid from the source's updated_at. `_is_new` tells which."""
    versions = batch.select(*keys, *tracked, "updated_at")
    if current_history is None:
        return versions.select(*keys, *tracked, F.lit(BEGINNING).cast("timestamp").alias("valid_from"),
                               F.lit(True).alias("_is_new"))
    cur = current_history.filter("is_current").select(
        *keys, *[F.col(c).alias(f"_cur_{c}") for c in tracked], F.lit(False).alias("_is_new"))
    joined = versions.join(cur, on=keys, how="left").fillna({"_is_new": True})
    changed = F.lit(False)
    for c in tracked:
        changed = changed | ~F.col(c).eqNullSafe(F.col(f"_cur_{c}"))
    return (joined.filter(F.col("_is_new") | changed)
            .select(*keys, *tracked,
                    F.when(F.col("_is_new"), F.lit(BEGINNING).cast("timestamp"))
                    .otherwise(F.col("updated_at")).alias("valid_from"),
                    "_is_new"))


def merge_history(spark, cfg: Config, table: str, batch: DataFrame, keys: list[str],
                  tracked: list[str]) -> int:
    """Append new versions to silver.<table>_history and close the versions they replace."""
    name = f"silver.{table}_history"
    exists = delta.exists(spark, cfg, name)
    current = delta.read(spark, cfg, name) if exists else None
    opened = history_changes(current, batch, keys, tracked).cache()
    try:
        n = opened.count()
        rows = opened.select("*", F.lit(None).cast("timestamp").alias("valid_to"),
                             F.lit(True).alias("is_current"))
        if not exists:
            delta.overwrite(rows.drop("_is_new"), cfg, name)
            return n
        if n == 0:
            return 0   # nothing changed: no MERGE, no empty commit
        delta.close_and_append_versions(spark, cfg, name, rows, keys)
        return n
    finally:
        opened.unpersist()


@dataclass
class SilverCounts:
    bronze: int
    clean: int
    quarantined: int
    duplicates: int
    inserted: int
    updated: int
    deleted: int
    versions: int = 0


def split_batch(checked: DataFrame, table: str, batch_id: str, spec: TableSpec):
    """(clean, bad, counts) of a checked batch; raise before any write if too much is bad."""
    clean, bad = split_valid(checked)
    n_bronze, n_bad = checked.count(), bad.count()
    if n_bronze and n_bad / n_bronze > spec.max_bad_fraction:
        by_rule = (bad.select(F.explode(FAILED_RULES).alias("rule")).groupBy("rule").count()
                   .orderBy("rule").collect())
        raise DataQualityError(
            f"silver.{table}: batch {batch_id} has {n_bad} of {n_bronze} rows breaking rules "
            f"({n_bad / n_bronze:.1%} > max_bad_fraction {spec.max_bad_fraction:.1%} in "
            f"conf/tables.yaml); nothing was written. Rules broken: "
            + ", ".join(f"{r['rule']}={r['count']}" for r in by_rule))
    return clean, bad, n_bronze, n_bad


def build_table(spark, cfg: Config, table: str, spec: TableSpec, batch_id: str, *,
                full_snapshot: bool) -> SilverCounts:
    batch = delta.read(spark, cfg, f"bronze.{table}").filter(F.col("_batch_id") == batch_id)
    checked = batch.transform(TYPED[table]).transform(with_failed_rules(spec.rules)).cache()
    try:
        clean, bad, n_bronze, n_bad = split_batch(checked, table, batch_id, spec)
        clean = clean.drop(*CHECK_ONLY_COLUMNS.intersection(clean.columns))
        deduped = clean.transform(latest_per_key(spec.key, LATEST_FIRST[table])).cache()
        n_clean = n_bronze - n_bad
        n_unique = deduped.count()
        quarantine = f"silver.{table}_quarantine"
        if n_bad or not delta.exists(spark, cfg, quarantine) or \
                delta.has_batch(spark, cfg, quarantine, batch_id, ("_batch_id", batch_id)):
            # a clean batch costs no commit, unless a rerun must clear this batch's old rows
            delta.replace_batch(bad, cfg, quarantine, batch_id, "_batch_id", batch_id)
        gone = None if full_snapshot or not spec.detect_deletes else deleted_keys(
            spark, cfg, table, spec, batch_id)
        merged = delta.merge(spark, cfg, f"silver.{table}", deduped, spec.key,
                             delete_missing=full_snapshot, deleted_keys=gone)
        delta.ensure_checks(spark, cfg, f"silver.{table}", silver_checks(spec))
        versions = merge_history(spark, cfg, table, deduped, spec.key, spec.history) \
            if spec.history else 0
        deduped.unpersist()
    finally:
        checked.unpersist()
    counts = SilverCounts(n_bronze, n_clean, n_bad, n_clean - n_unique, **merged,
                          versions=versions)
    log.info("silver.%s: batch %s: %d bronze rows = %d clean + %d quarantined; %d duplicate "
             "versions dropped; merge inserted %d, updated %d, deleted %d; %d history versions",
             table, batch_id, counts.bronze, counts.clean, counts.quarantined, counts.duplicates,
             counts.inserted, counts.updated, counts.deleted, counts.versions)
    return counts


def deleted_keys(spark, cfg: Config, table: str, spec: TableSpec, batch_id: str):
    """The keys bronze recorded as deleted in the source for this batch, or None."""
    name = f"bronze.{table}_deletes"
    if not delta.exists(spark, cfg, name):
        return None
    return delta.read(spark, cfg, name).filter(F.col("_batch_id") == batch_id).select(*spec.key)
