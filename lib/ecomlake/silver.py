"""Silver: typed, validated, one row per business key.

Per batch: bronze rows are typed, checked against the table's named rules (conf/tables.yaml),
split into clean and quarantined rows, deduplicated by key (latest version wins, ties broken
deterministically) and MERGEd into silver.<table>; rows breaking a rule land in
silver.<table>_quarantine with the rules they broke. bronze rows = clean + quarantined, logged.
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


def typed_electronics(df: DataFrame) -> DataFrame:
    return df.select(
        F.col("_id").cast("string"),
        F.trim(F.col("type")).alias("type"),
        F.trim(F.col("model")).alias("model"),
        F.col("screen_size").cast("double"),
        "_batch_id",
    )


TYPED = {"sales_data": typed_sales, "electronics": typed_electronics}
# Which version of a key wins when a batch holds several: the latest, then a total order on
# all columns so the choice never depends on partitioning.
LATEST_FIRST = {"sales_data": ["updated_at"], "electronics": []}


def latest_per_key(keys: list[str], order_desc: list[str]):
    def transform(df: DataFrame) -> DataFrame:
        tiebreak = [c for c in df.columns if c not in keys and c not in order_desc]
        order = [F.col(c).desc_nulls_last() for c in order_desc + tiebreak]
        w = Window.partitionBy(*keys).orderBy(*order)
        return df.withColumn("_rn", F.row_number().over(w)).filter("_rn = 1").drop("_rn")
    return transform


@dataclass
class SilverCounts:
    bronze: int
    clean: int
    quarantined: int
    duplicates: int
    inserted: int
    updated: int
    deleted: int


def build_table(spark, cfg: Config, table: str, spec: TableSpec, batch_id: str, *,
                full_snapshot: bool) -> SilverCounts:
    batch = delta.read(spark, cfg, f"bronze.{table}").filter(F.col("_batch_id") == batch_id)
    checked = batch.transform(TYPED[table]).transform(with_failed_rules(spec.rules)).cache()
    try:
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
        deduped = clean.transform(latest_per_key(spec.key, LATEST_FIRST[table]))
        n_clean = n_bronze - n_bad
        n_unique = deduped.count()
        delta.replace_batch(bad, cfg, f"silver.{table}_quarantine", batch_id, "_batch_id")
        merged = delta.merge(spark, cfg, f"silver.{table}", deduped, spec.key,
                             delete_missing=full_snapshot)
    finally:
        checked.unpersist()
    counts = SilverCounts(n_bronze, n_clean, n_bad, n_clean - n_unique, **merged)
    log.info("silver.%s: batch %s: %d bronze rows = %d clean + %d quarantined; %d duplicate "
             "versions dropped; merge inserted %d, updated %d, deleted %d", table, batch_id,
             counts.bronze, counts.clean, counts.quarantined, counts.duplicates,
             counts.inserted, counts.updated, counts.deleted)
    return counts
