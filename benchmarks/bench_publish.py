"""Publish benchmark (run on demand, not in CI): FactSales-shaped rows to PostgreSQL.

    .venv/bin/python benchmarks/bench_publish.py --rows 1000000

Prints, measured in the same run on the same rows:
  - our publish (staging table + reconciliation + one swap transaction), rows moved by COPY
    (postgres.bulk_write: copy, the default) and by tuned JDBC batches (bulk_write: jdbc),
  - Spark's default JDBC write (mode overwrite, default batch size, no reWriteBatchedInserts),
  - `psql \\copy` of the same rows from a CSV (the baseline; target: ours <= 2x),
and the ratios. Needs the local stack (`ecomlake stack up`).
"""
import argparse
import glob
import os
import subprocess
import time

from pyspark.sql import functions as F

from ecomlake.config import load_config
from ecomlake.io.warehouse import PostgresWarehouse
from ecomlake.publish import publish_table
from ecomlake.spark import session


def fact_sales(spark, rows):
    return spark.range(1, rows + 1).select(
        F.col("id").alias("orderid"),
        (F.col("id") % 1096 + 1).cast("int").alias("dateid"),
        (F.col("id") % 56 + 1).cast("int").alias("countryid"),
        (F.col("id") % 5 + 1).cast("int").alias("categoryid"),
        (F.col("id") % 10000 + 1).cast("int").alias("itemid"),
        (F.col("id") % 100000 + 1).cast("int").alias("customerid"),
        (F.col("id") % 5 + 1).cast("int").alias("quantity"),
        ((F.col("id") % 90000) / 100 + 1).cast("decimal(12,2)").alias("price"),
        (((F.col("id") % 90000) / 100 + 1) * (F.col("id") % 5 + 1)).cast("decimal(18,2)").alias("amount"),
        F.timestamp_seconds(F.lit(1577836800) + F.col("id") * 60).alias("sold_at"))


def timed(label, fn):
    t0 = time.monotonic()
    fn()
    s = time.monotonic() - t0
    print(f"{label:<48} {s:8.1f} s")
    return s


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    args = ap.parse_args()
    cfg = load_config("local")
    spark = session(cfg, "bench-publish")
    wh = PostgresWarehouse(cfg)
    df = fact_sales(spark, args.rows).cache()
    df.count()
    print(f"rows: {args.rows:,}")

    # The pipeline publishes the dimensions before FactSales, so its Python workers (COPY runs
    # in them) are already up: warm them the same way, with a DimDate-sized table.
    cold = timed("warm-up: publish a 1,096-row table (first use)",
                 lambda: publish_table(spark, wh, "bench_warmup", df.limit(1096), ["orderid"]))
    ours = timed("ecomlake publish, COPY (staging, reconcile, swap)",
                 lambda: publish_table(spark, wh, "bench_factsales", df, ["orderid"]))
    # a second publish replaces an existing table (the daily case: drop + rename in the swap)
    again = timed("ecomlake publish again, replacing the table",
                  lambda: publish_table(spark, wh, "bench_factsales", df, ["orderid"]))
    jdbc_wh = PostgresWarehouse(load_config("local", overrides={"postgres": {"bulk_write": "jdbc"}}))
    ours_jdbc = timed("ecomlake publish, tuned JDBC batches",
                      lambda: publish_table(spark, jdbc_wh, "bench_factsales", df, ["orderid"]))

    p = cfg.postgres
    default_url = f"jdbc:postgresql://{p.host}:{p.port}/{p.database}"
    spark_default = timed("Spark default JDBC write (overwrite)", lambda: (
        df.write.format("jdbc").option("url", default_url).option("dbtable", "bench_factsales_default")
        .option("user", p.user).option("password", cfg.secret("postgres"))
        .option("driver", "org.postgresql.Driver").mode("overwrite").save()))

    csv_dir = cfg.path(".local/bench/factsales_csv")
    df.coalesce(1).write.mode("overwrite").option("header", False).csv(csv_dir)
    csv_file = glob.glob(f"{csv_dir}/part-*.csv")[0]
    conn = wh.connect()
    conn.execute("DROP TABLE IF EXISTS bench_factsales_copy")
    conn.execute("CREATE TABLE bench_factsales_copy (LIKE bench_factsales)")
    conn.commit()
    conn.close()
    env = {**os.environ, "PGPASSWORD": cfg.secret("postgres")}
    copy = timed("psql \\copy from CSV (baseline)", lambda: subprocess.run(
        ["psql", "-h", p.host, "-p", str(p.port), "-U", p.user, "-d", p.database, "-qc",
         f"\\copy bench_factsales_copy FROM '{csv_file}' WITH (FORMAT csv)"],
        check=True, env=env))
    print(f"rows/s ecomlake publish (COPY): {args.rows / ours:,.0f}")
    print(f"ratio ecomlake COPY / psql \\copy:              {ours / copy:.2f}x  (target <= 2x)")
    print(f"ratio ecomlake COPY replacing / psql \\copy:    {again / copy:.2f}x")
    print(f"ratio ecomlake JDBC batches / psql \\copy:      {ours_jdbc / copy:.2f}x")
    print(f"ratio ecomlake COPY / Spark default JDBC:       {ours / spark_default:.2f}x")
    conn = wh.connect()
    for t in ("bench_factsales", "bench_factsales_default", "bench_factsales_copy", "bench_warmup"):
        conn.execute(f"DELETE FROM publish_log WHERE table_name = '{t}'")
        conn.execute(f"DROP TABLE IF EXISTS {t}")
    conn.commit()
    conn.close()


if __name__ == "__main__":
    main()
