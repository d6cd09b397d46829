"""Silver: typed, validated, one row per business key.

Per batch: bronze rows are typed, checked against the table's named rules (conf/tables.yaml),
split into clean and quarantined rows, deduplicated by key (latest version wins, ties broken
deterministically) and MERGEd into silver.<table>; rows breaking a rule land in
silver.<table>_quarantine with the rules they broke. bronze rows = clean + quarantined, logged.
Deletions recorded in bronze.<table>_deletes are applied; attributes listed under `history`
are kept as type 2 history in silver.<table>_history.
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from ecomlake.config import Config, TableSpec
from ecomlake.errors import DataQualityError
from ecomlake.io import delta
from ecomlake.quality import FAILED_RULES, is_bad, split_valid, with_failed_rules
from ecomlake import schemas

log = logging.getLogger(__name__)

# The first version of a record is valid since the beginning of time: history starts when the
# platform first saw the record, and facts older than that belong to that first version.
BEGINNING = "1900-01-01 00:00:00"


# Odd source values never fail a run: every column is typed with try_cast, so a value that does
# not fit (an unsigned BIGINT past Spark's bigint, a zero date read as NULL) becomes NULL and
# breaks a rule (its row goes to quarantine with the rule's name).
def typed_sales(df: DataFrame) -> DataFrame:
    return df.select(
        F.col("id").try_cast("bigint").alias("id"),
        F.col("product_id").try_cast("int").alias("product_id"),
        F.col("customer_id").try_cast("int").alias("customer_id"),
        F.col("price").try_cast("decimal(12,2)").alias("price"),
        F.col("quantity").try_cast("int").alias("quantity"),
        F.col("timestamp").try_cast("timestamp").alias("timestamp"),
        F.col("updated_at").try_cast("timestamp").alias("updated_at"),
        "_batch_id",
    )


def typed_customers(df: DataFrame) -> DataFrame:
    return df.select(
        F.col("customer_id").try_cast("int").alias("customer_id"),
        F.col("name").cast("string"),
        F.col("email").cast("string"),
        F.trim("country").alias("country"),
        F.col("created_at").try_cast("timestamp").alias("created_at"),
        F.col("updated_at").try_cast("timestamp").alias("updated_at"),
        "_batch_id",
    )


def typed_inventory(df: DataFrame) -> DataFrame:
    return df.select(
        F.col("product_id").try_cast("int").alias("product_id"),
        F.col("warehouse_id").try_cast("int").alias("warehouse_id"),
        F.col("quantity_on_hand").try_cast("int").alias("quantity_on_hand"),
        F.col("updated_at").try_cast("timestamp").alias("updated_at"),
        "_batch_id",
    )


# The BSON types a catalog field may have to be typed ($type names); any other type is a
# mismatch: the typed value is NULL and the field's `<field>_is_<kind>` rule sends the document
# to quarantine. Integral doubles are accepted as integers (JavaScript clients write doubles).
NUMBER_TYPES = ("int", "long", "double", "decimal")
SOURCE_TEXT = "_source_text"   # lake column -> the source's text, for the known fields it has


def bson_type_is(field: str, *types: str):
    """Whether the document's `field` (its source name) has one of the BSON `types`."""
    return F.col(schemas.BSON_TYPES)[field].isin(*types)


def integral(text):
    """The text of a number as an int when the number is whole and fits, else NULL."""
    d = text.try_cast("double")
    return F.when(d % 1 == 0, d.try_cast("int"))


def catalog_columns() -> dict:
    """Lake column -> its typed value, NULL where the source's BSON type does not fit."""
    def text(c):
        return F.when(bson_type_is(c, "string"), F.col(c))
    return {
        "product_id": F.when(bson_type_is("product_id", *NUMBER_TYPES),
                             integral(F.col("product_id"))),
        "type": F.trim(text("type")),
        "model": F.trim(text("model")),
        "screen_size": F.when(bson_type_is("screen size", *NUMBER_TYPES),
                              F.col("screen_size").try_cast("double")),
        "category": text("category"),
        "brand": text("brand"),
        "price": F.when(bson_type_is("price", *NUMBER_TYPES),
                        F.col("price").try_cast("decimal(12,2)")),
        "attributes": F.when(bson_type_is("attributes", "object"), F.col("attributes")),
        "updated_at": F.when(bson_type_is("updated_at", "date"),
                             F.col("updated_at").try_cast("timestamp")),
    }


def typed_electronics(df: DataFrame) -> DataFrame:
    """Catalog documents, typed from bronze's text with try_cast, each field only from the BSON
    types that fit it (a string "15" is not a screen size; 15 is). `_id` stays the source's
    text (an ObjectId's hex) so a quarantined document keeps its key. `price_raw` keeps the
    price's text, `_source_text` every known field's, so a value that did not type can be told
    from a missing one. `_duplicate_product` marks every document after the first (well-typed
    ones first, then by updated_at, then _id) that claims an already-used product_id."""
    t = catalog_columns()
    source_text = F.map_filter(
        F.create_map(*[x for c in ["_id", *t] for x in (F.lit(c), F.col(c))]),
        lambda k, v: v.isNotNull())
    mismatch = ~F.coalesce(bson_type_is("_id", "objectId", "string"), F.lit(False))
    for c in t:
        mismatch = mismatch | (F.col(c).isNull() & F.col(SOURCE_TEXT)[c].isNotNull())
    first = Window.partitionBy("product_id").orderBy(
        F.col("_mismatch").asc(), F.col("updated_at").asc_nulls_first(), F.col("_id"))
    return (df.select(
        "_id",
        *[t[c].alias(c) for c in ("product_id", "type", "model", "screen_size", "category",
                                  "brand")],
        F.col("price").alias("price_raw"),
        t["price"].alias("price"),
        t["attributes"].alias("attributes"),
        "_extra",
        t["updated_at"].alias("updated_at"),
        "_batch_id",
        source_text.alias(SOURCE_TEXT),
        schemas.BSON_TYPES)
        .withColumn("_mismatch", mismatch)
        .withColumn("_duplicate_product",
                    F.col("product_id").isNotNull() & (F.row_number().over(first) > 1))
        .drop("_mismatch"))


# Columns computed only for a rule to look at; quarantine keeps them, silver does not.
CHECK_ONLY_COLUMNS = {"_duplicate_product", SOURCE_TEXT, schemas.BSON_TYPES}

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
                  tracked: list[str], gone: DataFrame | None, closed_at: dt.datetime) -> int:
    """Append new versions to silver.<table>_history and close the versions they replace; the
    current versions of deleted keys are closed at `closed_at`."""
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
        if n:   # nothing changed: no MERGE, no empty commit
            delta.close_and_append_versions(spark, cfg, name, rows, keys)
        if gone is not None and not gone.isEmpty():
            closed = delta.close_versions(spark, cfg, name, gone, keys, closed_at)
            log.info("%s: closed the current version of %d deleted keys at %s", name, closed,
                     closed_at)
        return n
    finally:
        opened.unpersist()


def without_stale(current: DataFrame | None, keys: list[str], order: str = "updated_at"):
    """Drop the rows older (by `order`) than the version silver already holds: a late or
    re-read older version never rewinds a newer one."""
    def transform(df: DataFrame) -> DataFrame:
        if current is None:
            return df
        cur = current.select(*keys, F.col(order).alias("_current_order"))
        return (df.join(cur, on=keys, how="left")
                .filter(F.coalesce(F.col(order) >= F.col("_current_order"), F.lit(True)))
                .drop("_current_order"))
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
    versions: int = 0
    stale: int = 0


def split_batch(checked: DataFrame, table: str, batch_id: str, spec: TableSpec):
    """(clean, bad, counts) of a checked batch; raise before any write if too much is bad."""
    clean, bad = split_valid(checked)
    n_bronze, n_bad = checked.agg(F.count(F.lit(1)),   # both counts in one pass
                                  F.count(F.when(is_bad(), True))).collect()[0]
    if n_bronze and n_bad / n_bronze > spec.max_bad_fraction:
        by_rule = (bad.select(F.explode(FAILED_RULES).alias("rule")).groupBy("rule").count()
                   .orderBy("rule").collect())
        raise DataQualityError(
            f"silver.{table}: batch {batch_id} has {n_bad} of {n_bronze} rows breaking rules "
            f"({n_bad / n_bronze:.1%} > max_bad_fraction {spec.max_bad_fraction:.1%} in "
            f"conf/tables.yaml); nothing was written. Rules broken: "
            + ", ".join(f"{r['rule']}={r['count']}" for r in by_rule))
    return clean, bad, n_bronze, n_bad


def build_table(spark, cfg: Config, table: str, spec: TableSpec, batch_id: str,
                run_date: dt.date) -> SilverCounts:
    """Merge bronze.<table>'s batch `batch_id` into silver: clean rows upserted (never over a
    newer version), rule breakers quarantined (silver keeps their last good version), the keys
    the reconciliation found deleted removed (their history closed)."""
    batch = delta.read(spark, cfg, f"bronze.{table}").filter(F.col("_batch_id") == batch_id)
    checked = batch.transform(TYPED[table]).transform(with_failed_rules(spec.rules)).cache()
    name = f"silver.{table}"
    current = delta.read(spark, cfg, name) if delta.exists(spark, cfg, name) else None
    try:
        clean, bad, n_bronze, n_bad = split_batch(checked, table, batch_id, spec)
        clean = clean.drop(*CHECK_ONLY_COLUMNS.intersection(clean.columns))
        deduped = clean.transform(latest_per_key(spec.key, LATEST_FIRST[table])).cache()
        fresh = deduped.transform(without_stale(current, spec.key, LATEST_FIRST[table][0])).cache()
        n_clean = n_bronze - n_bad
        n_unique, n_fresh = deduped.count(), fresh.count()
        quarantine = f"silver.{table}_quarantine"
        if n_bad or not delta.exists(spark, cfg, quarantine) or \
                delta.has_batch(spark, cfg, quarantine, batch_id, ("_batch_id", batch_id)):
            # a clean batch costs no commit, unless a rerun must clear this batch's old rows
            delta.replace_batch(bad, cfg, quarantine, batch_id, "_batch_id", batch_id)
        gone = deleted_keys(spark, cfg, table, spec, batch_id)
        merged = delta.merge(spark, cfg, name, fresh, spec.key, deleted_keys=gone,
                             newer=LATEST_FIRST[table][0], checks=silver_checks(spec))
        versions = merge_history(spark, cfg, table, fresh, spec.key, spec.history, gone,
                                 deletion_time(run_date)) if spec.history else 0
        deduped.unpersist()
        fresh.unpersist()
    finally:
        checked.unpersist()
    counts = SilverCounts(n_bronze, n_clean, n_bad, n_clean - n_unique, **merged,
                          versions=versions, stale=n_unique - n_fresh)
    log.info("silver.%s: batch %s: %d bronze rows = %d clean + %d quarantined; %d duplicate "
             "versions dropped; %d older than silver's version skipped; merge inserted %d, "
             "updated %d, deleted %d; %d history versions", table, batch_id, counts.bronze,
             counts.clean, counts.quarantined, counts.duplicates, counts.stale, counts.inserted,
             counts.updated, counts.deleted, counts.versions)
    return counts


def deletion_time(run_date: dt.date) -> dt.datetime:
    """When a deletion seen by a run is dated: the end of the run's data interval (the source
    does not say when a row was deleted; a run date's rerun gives the same answer)."""
    return dt.datetime.combine(run_date + dt.timedelta(days=1), dt.time())


def deleted_keys(spark, cfg: Config, table: str, spec: TableSpec, batch_id: str):
    """The keys bronze recorded as deleted in the source for this batch, or None."""
    name = f"bronze.{table}_deletes"
    if not delta.exists(spark, cfg, name):
        return None
    return delta.read(spark, cfg, name).filter(F.col("_batch_id") == batch_id).select(*spec.key)
