"""Gold: business-level tables for BI, built from silver."""
from __future__ import annotations

import logging

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from ecomlake.config import Config
from ecomlake.io import delta

log = logging.getLogger(__name__)


def to_sales_by_product(sales: DataFrame) -> DataFrame:
    """One row per product: sale lines, units, revenue (price x quantity), first and last sale."""
    return (sales
            .groupBy("product_id")
            .agg(F.count(F.lit(1)).alias("sale_lines"),
                 F.sum("quantity").cast("bigint").alias("units"),
                 F.sum(F.col("price") * F.col("quantity")).cast("decimal(18,2)").alias("amount"),
                 F.min("timestamp").alias("first_sale_at"),
                 F.max("timestamp").alias("last_sale_at"))
            .select("product_id", "sale_lines", "units", "amount", "first_sale_at",
                    "last_sale_at"))


# gold table -> (builder, primary key). The publish stage reads this to know what to publish.
GOLD_TABLES = {
    "sales_by_product": (
        lambda spark, cfg: to_sales_by_product(delta.read(spark, cfg, "silver.sales_data")),
        ["product_id"]),
}


def build(spark, cfg: Config) -> dict[str, int]:
    counts = {}
    for name, (builder, _) in GOLD_TABLES.items():
        df = builder(spark, cfg)
        delta.overwrite(df, cfg, f"gold.{name}")
        counts[name] = delta.read(spark, cfg, f"gold.{name}").count()
        log.info("gold.%s: %d rows (Delta version %d)", name, counts[name],
                 delta.version(spark, cfg, f"gold.{name}"))
    return counts
