"""Pipeline benchmark (run on demand, not in CI).

    .venv/bin/python benchmarks/bench_pipeline.py --scale 1      # also 0.1, 10

Generates the sources at the scale, then prints per stage the time and rows per second of a
full run (one Spark session, start-up excluded), and two ratios measured in the same run:
  (a) bronze ingest of sales_data vs a plain `mysql --batch -e 'SELECT * ...' > file` dump of
      the same table (target <= 1.5x);
  (b) an incremental run after a ~1% change batch vs the full run (target <= 0.15).
Needs the local stack. It works on the stack's scratch databases (MySQL `sales_bench`, MongoDB
`catalog_bench`), so the demo's and the tests' data stay as they are.
"""
import argparse
import datetime as dt
import logging
import os
import subprocess
import tempfile
import time

from ecomlake import bronze, pipeline
from ecomlake.config import load_config, load_tables
from ecomlake.ops.sources import changes, generator
from ecomlake.spark import session


def run_stages(spark, cfg, day, stages):
    r = pipeline.Run(run_date=day, ingested_at=dt.datetime(2026, 1, 1))
    times = {}
    for stage in stages:
        t0 = time.monotonic()
        pipeline.STAGES[stage](spark, cfg, r)
        times[stage] = time.monotonic() - t0
    return times, r.summary


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--quiet", action="store_true", help="no per-table log lines")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("py4j").setLevel(logging.WARNING)
    scratch = {"mysql": {"database": "sales_bench"}, "mongo": {"database": "catalog_bench"}}
    src = load_config("local", overrides=scratch)
    t0 = time.monotonic()
    counts = generator.generate(src, args.scale, seed=args.seed)
    print(f"generated scale {args.scale} in {time.monotonic() - t0:.1f} s: {counts}")

    lake = tempfile.mkdtemp(prefix="bench-lake-")
    cfg = load_config("local", overrides={**scratch, "lake": {"root": lake}})
    spark = session(cfg, "bench-pipeline")
    stages = ["bronze", "silver", "gold"]
    full, summary = run_stages(spark, cfg, dt.date(2026, 1, 1), stages)
    sales_rows = summary.get("bronze.sales_data", 0)
    for s, t in full.items():
        print(f"full run   {s:<8} {t:8.1f} s   {sales_rows / t:12,.0f} sales rows/s")
    print(f"full run   total    {sum(full.values()):8.1f} s")

    # (a) bronze sales_data alone (into a lake of its own, so the pipeline's tables stay as
    # they are) vs a plain mysql dump of the same table
    spec = load_tables()["sales_data"]
    cfg_a = load_config("local", overrides={**scratch, "lake": {"root": os.path.join(lake, "a")}})
    t0 = time.monotonic()
    bronze.ingest_mysql(spark, cfg_a, "sales_data", spec, "2026-01-01", dt.date(2026, 1, 1),
                        dt.datetime(2026, 1, 1))
    ingest = time.monotonic() - t0
    m = src.mysql
    t0 = time.monotonic()
    with open(os.path.join(lake, "dump.tsv"), "w") as out:
        subprocess.run(["mysql", "-h", m.host, "-P", str(m.port), "-u", m.user, "--batch", m.database,
                        "-e", "SELECT * FROM sales_data"], stdout=out, check=True,
                       env={**os.environ, "MYSQL_PWD": src.secret("mysql")})
    dump = time.monotonic() - t0
    print(f"(a) bronze ingest {ingest:.1f} s vs mysql --batch dump {dump:.1f} s: "
          f"ratio {ingest / dump:.2f}x (target <= 1.5x)")

    # (b) incremental after a ~1 % change batch vs the full run
    changes.apply_batch(src, 1)
    inc, _ = run_stages(spark, cfg, dt.date(2026, 1, 2), stages)
    print(f"(b) incremental {sum(inc.values()):.1f} s vs full {sum(full.values()):.1f} s: "
          f"ratio {sum(inc.values()) / sum(full.values()):.2f} (target <= 0.15); per stage "
          + ", ".join(f"{s} {t:.1f}s" for s, t in inc.items()))


if __name__ == "__main__":
    main()
