"""Benchmark: generate and load the sources at a scale (default 1), and compare our MySQL load
with a plain `LOAD DATA LOCAL INFILE` of the same rows, measured in the same run.

    .venv/bin/python benchmarks/bench_source_load.py [--scale 1] [--seed 1] [--keep]

Prints the time to generate and load, rows per second, and the ratio
  our sales_data load / plain LOAD DATA LOCAL INFILE of the same rows into an identical table
twice: counting only our LOAD DATA LOCAL statements, and counting the whole sales phase
(generating + writing CSV + loading, overlapped). The plain baseline exports sales_data
through the client and loads it into `bench_sales_data` (CREATE TABLE ... LIKE), then drops it. Afterwards the course data is loaded back (as the tests expect) unless --keep.
Not a timed test: run it by hand; the issue notes keep the figures.
"""
from __future__ import annotations

import argparse
import csv
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

from ecomlake.config import load_config
from ecomlake.io import mysql
from ecomlake.ops.sources import capstone, generator

COLUMNS = "id, product_id, customer_id, price, quantity, `timestamp`"


def plain_load_seconds(cfg) -> tuple[int, float]:
    """(rows, seconds) of a plain LOAD DATA LOCAL INFILE of sales_data's rows into a copy. The
    rows are exported through the client (untimed): the loader account has no FILE privilege,
    so no server-side INTO OUTFILE / LOAD DATA INFILE (see README, "The local stack")."""
    folder = Path(tempfile.mkdtemp(prefix="ecomlake-bench-"))
    path = folder / "sales_data.csv"
    conn = mysql.connect(cfg, loader=True, allow_local_infile=True,
                         allow_local_infile_in_path=str(folder))
    try:
        cur = conn.cursor()
        cur.execute("DROP TABLE IF EXISTS bench_sales_data")
        cur.execute("CREATE TABLE bench_sales_data LIKE sales_data")
        cur.execute(f"SELECT {COLUMNS} FROM sales_data ORDER BY id")
        with open(path, "w", newline="") as out:
            csv.writer(out, lineterminator="\n").writerows(
                ["\\N" if v is None else v for v in row] for row in cur)
        t0 = time.monotonic()
        cur.execute(f"LOAD DATA LOCAL INFILE '{path}' INTO TABLE bench_sales_data "
                    f"FIELDS TERMINATED BY ',' LINES TERMINATED BY '\\n' ({COLUMNS})")
        conn.commit()
        seconds = time.monotonic() - t0
        rows = cur.rowcount
        cur.execute("DROP TABLE bench_sales_data")
        return rows, seconds
    finally:
        conn.close()
        shutil.rmtree(folder, ignore_errors=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--keep", action="store_true", help="leave the generated data in the servers")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    cfg = load_config()

    timings: dict = {}
    counts = generator.generate(cfg, args.scale, args.seed, timings=timings)
    sales = counts[f"mysql {cfg.mysql.database}.sales_data"]
    mysql_rows = sum(n for k, n in counts.items() if k.startswith("mysql"))
    docs = sum(n for k, n in counts.items() if k.startswith("mongodb"))
    plain_rows, plain = plain_load_seconds(cfg)
    assert plain_rows == sales, (plain_rows, sales)

    total = timings["total"]
    print(f"scale {args.scale:g}, seed {args.seed}")
    for where, n in counts.items():
        print(f"  {n:>10}  {where}")
    print(f"generate + load, total            {total:8.1f} s   "
          f"{(mysql_rows + docs) / total:>10,.0f} rows+docs/s")
    print(f"  MySQL LOAD DATA LOCAL (all)     {timings['mysql_load']:8.1f} s")
    print(f"  sales_data: LOAD DATA LOCAL     {timings['sales_load']:8.1f} s   "
          f"{sales / timings['sales_load']:>10,.0f} rows/s")
    print(f"  sales_data: generate+CSV+load   {timings['sales_wall']:8.1f} s   "
          f"{sales / timings['sales_wall']:>10,.0f} rows/s")
    print(f"  MongoDB insert_many             {timings['mongo_load']:8.1f} s   "
          f"{docs / timings['mongo_load']:>10,.0f} docs/s")
    print(f"plain LOAD DATA LOCAL, same rows {plain:8.1f} s   {sales / plain:>10,.0f} rows/s")
    print(f"ratio ours/plain: LOAD statements {timings['sales_load'] / plain:.2f}x, "
          f"whole sales phase {timings['sales_wall'] / plain:.2f}x")
    if not args.keep:
        capstone.load(cfg)
        print("course data loaded back (use --keep to leave the generated data)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
