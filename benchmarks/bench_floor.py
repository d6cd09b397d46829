"""The floor of an incremental run on this machine (issue 15; on demand, never in CI).

    .venv/bin/python benchmarks/bench_floor.py --rows 1000000                   # scale 1
    .venv/bin/python benchmarks/bench_floor.py --rows 10000000 --full-run 351.4 # scale 10

The steps no design of a daily run can skip while silver is a merged Delta table and gold and
the warehouses reflect it, each timed alone on a throwaway lake (no servers needed):
  session     this process starting Spark with the project's configuration (the spark-submit
              JVM and its Python side; every job pays it once)
  first read  the JVM's first Delta read (class loading, the first plan; a job's first
              Delta read pays it, whatever it reads)
  tiny commit a 10-row table written again, warm (the median of 5): what every other Delta
              commit of a run costs at least (a run of the pipeline makes ~30: each table's
              batch, MERGE, quarantine and history, each gold table, analytics' outputs)
  merge       silver's upsert: ecomlake.io.delta.merge, called as silver calls it (newer
              rows only, deletions in the same MERGE), of a batch of 1 % of the rows spread
              over the whole key range like the change batches of bench_incremental
              (0.5 % new keys, 0.3 % updated, 0.2 % deleted)
  rewrite     the same table written again whole: the baseline, measured in the same run;
              gold's FactSales is rebuilt this way, and it is what one MERGE is compared with
  diff        the rows that differ between the table before and after the MERGE: what a
              changes-table publish must compute when gold is rebuilt rather than maintained
              from a change feed (exact: a full outer join comparing every column; and by a
              64-bit hash of each row). Its counts must equal the MERGE's.
The floor is session + first read + merge + rewrite + hash diff: one table's batch merged, its
fact table rebuilt, its changes found for the warehouse. Everything else a run does (reading
the batch, the reconciliation's MySQL figures, the other tables, the marts, the publish's
statements, analytics) comes on top. With --full-run (a full pipeline run's wall time at the
same scale, from bench_incremental.py), the floor is printed as a share of it beside issue 15's
target for that scale.
"""
import argparse
import shutil
import sys
import tempfile
import time

T0 = time.monotonic()

from pyspark.sql import functions as F  # noqa: E402

from ecomlake.config import load_config  # noqa: E402
from ecomlake.io import delta  # noqa: E402
from ecomlake.spark import session  # noqa: E402

TARGETS = {1_000_000: 0.25, 10_000_000: 0.15}   # issue 15: incremental / full, by sale lines


def sales(df, stamp: str):
    """Rows shaped like silver.sales_data, a pure function of `id`."""
    return df.select(
        "id", (F.col("id") % 10_000).cast("int").alias("product_id"),
        (F.col("id") % 100_000).cast("int").alias("customer_id"),
        (F.col("id") % 5 + 1).cast("int").alias("quantity"),
        ((F.col("id") % 997) / 3).cast("decimal(10,2)").alias("price"),
        F.timestamp_seconds(F.col("id") + 1_546_300_800).alias("timestamp"),
        F.lit(stamp).cast("timestamp").alias("updated_at"),
        F.lit("b1").alias("_batch_id"))


def timed(fn):
    t = time.monotonic()
    out = fn()
    return time.monotonic() - t, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000, help="rows of the merged table")
    ap.add_argument("--full-run", type=float, help="a full pipeline run's wall time (s) at "
                                                   "this scale, from bench_incremental.py")
    args = ap.parse_args()
    n = args.rows
    root = tempfile.mkdtemp(prefix="bench-floor-")
    try:
        cfg = load_config("local", overrides={"lake": {"root": root}})
        spark = session(cfg)
        t_session = time.monotonic() - T0
        spark.range(3).write.format("delta").save(delta.path(cfg, "bronze.tiny"))
        t_first, _ = timed(lambda: delta.read(spark, cfg, "bronze.tiny").count())
        tiny = spark.range(10).withColumn("x", F.col("id") * 2)
        t_commit = sorted(timed(lambda: delta.overwrite(tiny, cfg, "gold.tiny"))[0]
                          for _ in range(5))[2]

        sales(spark.range(1, n + 1), "2026-01-01").write.format("delta").save(
            delta.path(cfg, "silver.sales"))
        batch = (sales(spark.range(n + 1, n + n // 200 + 1), "2026-01-02")
                 .unionByName(sales(spark.range(1, n + 1).filter(F.col("id") % 333 == 5),
                                    "2026-01-02").withColumn("quantity", F.col("quantity") + 10)))
        gone = spark.range(1, n + 1).filter(F.col("id") % 500 == 7).select("id")
        batch, gone = batch.cache(), gone.cache()
        batch.count(), gone.count()   # the batch is in memory, as silver's is
        t_merge, merged = timed(lambda: delta.merge(spark, cfg, "silver.sales", batch, ["id"],
                                                    deleted_keys=gone, newer="updated_at"))
        t_rewrite, _ = timed(lambda: delta.overwrite(delta.read(spark, cfg, "silver.sales"),
                                                     cfg, "gold.rewrite"))

        path = delta.path(cfg, "silver.sales")
        old = spark.read.format("delta").option("versionAsOf", 0).load(path)
        new = spark.read.format("delta").option("versionAsOf", 1).load(path)
        same = " AND ".join(f"o.`{c}` <=> n.`{c}`" for c in new.columns)

        def exact():
            r = (old.alias("o").join(new.alias("n"), F.col("o.id") == F.col("n.id"), "full_outer")
                 .filter(~F.expr(same))
                 .agg(F.count(F.when(F.col("n.id").isNull(), 1)).alias("deleted"),
                      F.count("n.id").alias("upserted")).collect()[0])
            return int(r["deleted"]), int(r["upserted"])

        def hashed():
            h = [df.select("id", F.xxhash64(*new.columns).alias("h")) for df in (old, new)]
            return (h[0].alias("o").join(h[1].alias("n"), "id", "full_outer")
                    .filter(~F.col("o.h").eqNullSafe(F.col("n.h"))).count())

        t_exact, (deleted, upserted) = timed(exact)
        t_hash, differing = timed(hashed)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    changes = merged["inserted"] + merged["updated"] + merged["deleted"]
    if (deleted, upserted) != (merged["deleted"], merged["inserted"] + merged["updated"]) or \
            differing != changes:
        sys.exit(f"the diff disagrees with the MERGE: {deleted} deleted, {upserted} upserted, "
                 f"{differing} by hash; MERGE {merged}")
    print(f"{n} rows; batch: {merged['inserted']} inserted, {merged['updated']} updated, "
          f"{merged['deleted']} deleted ({changes / n:.1%} of the table)")
    rows = [("session", t_session), ("first read", t_first), ("tiny commit", t_commit),
            ("merge", t_merge),
            ("rewrite", t_rewrite), ("diff exact", t_exact), ("diff hash", t_hash)]
    for name, t in rows:
        print(f"{name:<12}{t:7.1f} s   {t / t_rewrite:5.2f}x rewrite")
    floor = t_session + t_first + t_merge + t_rewrite + t_hash
    print(f"floor        {floor:7.1f} s   (session + first read + merge + rewrite + diff hash)")
    if args.full_run:
        target = TARGETS.get(n)
        print(f"floor / full run = {floor / args.full_run:.2f}"
              + (f" (issue 15's incremental target: <= {target})" if target else ""))


if __name__ == "__main__":
    main()
