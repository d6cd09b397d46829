"""End-to-end benchmark of change-driven runs (issue 15; on demand, never in CI).

    .venv/bin/python benchmarks/bench_incremental.py --scale 1      # also 0.1, 10

What a user feels: the wall time of `./spark-submit.sh pipeline --target postgres`, Spark's
start included, on generated sources at the scale, for
  full         the first run date into an empty lake,
  unchanged    the same date again, nothing changed in the sources (decided by the quick
               check before Spark starts; `full-check`: the same with --full-check, every
               stage skipping by its own records),
  incremental  the next date after one change batch (~1 % of the sales lines),
beside baselines measured in the same run on the same machine:
  dump|copy    `mysql --batch` of sales_data piped into `psql \\copy` (no rules, no history),
  row-by-row   the course's sync script's way: each of the batch's new sale lines read from
               MySQL and inserted into PostgreSQL with a commit per row,
and the ratios the issue sets (scale 1: incremental <= 0.25 and unchanged <= 0.15 of full;
scale 10: <= 0.15 and <= 0.10), plus the machine's peak memory in use during the runs.

Works on the stack's scratch databases (MySQL `sales_bench`, MongoDB `catalog_bench`), a
throwaway lake and the PostgreSQL schema `bench`, so the demo's and the tests' data stay as
they are. Needs the local stack (`ecomlake stack up`).
"""
import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time

from ecomlake.config import PROJECT_ROOT, load_config
from ecomlake.io import mysql
from ecomlake.ops.sources import changes, generator

SCRATCH = {"mysql": {"database": "sales_bench"}, "mongo": {"database": "catalog_bench"},
           "postgres": {"schema": "bench"}}
D1 = dt.date(2026, 1, 1)
TARGETS = {1.0: (0.25, 0.15), 10.0: (0.15, 0.10)}


class PeakMemory:
    """The machine's memory in use (MemTotal - MemAvailable), sampled every 0.5 s."""

    def __init__(self):
        self.peak, self._stop = 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            info = dict(line.split(":", 1) for line in open("/proc/meminfo"))
            used = int(info["MemTotal"].split()[0]) - int(info["MemAvailable"].split()[0])
            self.peak = max(self.peak, used * 1024)
            self._stop.wait(0.5)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def pipeline(lake: str, day: dt.date, log_dir: str, label: str, *flags: str) -> float:
    env = {**os.environ, "ECOMLAKE_OVERRIDES": json.dumps({**SCRATCH, "lake": {"root": lake}})}
    log_file = os.path.join(log_dir, f"{label}.log")
    t0 = time.monotonic()
    with open(log_file, "w") as out:
        proc = subprocess.run([str(PROJECT_ROOT / "spark-submit.sh"), "pipeline", "--run-date",
                               day.isoformat(), "--target", "postgres", *flags], stdout=out,
                              stderr=subprocess.STDOUT, env=env)
    seconds = time.monotonic() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{label}: pipeline failed (exit {proc.returncode}); see {log_file}")
    stages = [line.rsplit(": ", 1)[-1].strip() for line in open(log_file)
              if "ecomlake.pipeline: stage" in line and "done in" in line]
    print(f"{label:<12} {seconds:8.1f} s   ({'; '.join(stages)})", flush=True)
    return seconds


def pg_env(cfg) -> dict:
    p = cfg.postgres
    return {**os.environ, "PGHOST": p.host, "PGPORT": str(p.port), "PGUSER": p.user,
            "PGDATABASE": p.database, "PGPASSWORD": cfg.secret("postgres")}


def dump_copy(cfg) -> float:
    """mysql --batch of sales_data | psql \\copy into bench.sales_data_copy."""
    env = pg_env(cfg)
    subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", "-c",
                    "CREATE SCHEMA IF NOT EXISTS bench; DROP TABLE IF EXISTS bench.sales_data_copy; "
                    "CREATE TABLE bench.sales_data_copy (id bigint, product_id int, customer_id int,"
                    " price numeric(12,2), quantity int, \"timestamp\" timestamp, updated_at "
                    "timestamp)"], env=env, check=True)
    m = cfg.mysql
    t0 = time.monotonic()
    dump = subprocess.Popen(["mysql", "-h", m.host, "-P", str(m.port), "-u", m.user, "--batch",
                             "--skip-column-names", m.database, "-e",
                             "SELECT id, product_id, customer_id, price, quantity, `timestamp`, "
                             "updated_at FROM sales_data"], stdout=subprocess.PIPE,
                            env={**os.environ, "MYSQL_PWD": cfg.secret("mysql")})
    subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", "-c",
                    "\\copy bench.sales_data_copy FROM STDIN WITH (FORMAT text, NULL 'NULL')"],
                   stdin=dump.stdout, env=env, check=True)
    dump.wait()
    return time.monotonic() - t0


def row_by_row(cfg, batch: int) -> tuple[float, int]:
    """The course's sync: the batch's new sale lines, each read and inserted with a commit."""
    import psycopg2

    conn = mysql.connect(cfg, loader=True)
    cur = conn.cursor()
    cur.execute("SELECT record_key FROM change_manifest WHERE batch = %s AND "
                "entity = 'sales_data' AND kind = 'insert'", (batch,))
    ids = [int(r[0]) for r in cur.fetchall()]
    p = cfg.postgres
    pg = psycopg2.connect(host=p.host, port=p.port, user=p.user, dbname=p.database,
                          password=cfg.secret("postgres"))
    pcur = pg.cursor()
    pcur.execute("DROP TABLE IF EXISTS bench.sales_data_sync; CREATE TABLE bench.sales_data_sync "
                 "(id bigint, product_id int, customer_id int, price numeric(12,2), quantity int)")
    pg.commit()
    t0 = time.monotonic()
    for i in ids:
        cur.execute("SELECT id, product_id, customer_id, price, quantity FROM sales_data "
                    "WHERE id = %s", (i,))
        row = cur.fetchone()
        if row:
            pcur.execute("INSERT INTO bench.sales_data_sync VALUES (%s, %s, %s, %s, %s)", row)
            pg.commit()
    seconds = time.monotonic() - t0
    pg.close()
    conn.close()
    return seconds, len(ids)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()
    src = load_config("local", overrides=SCRATCH)
    t0 = time.monotonic()
    counts = generator.generate(src, args.scale, seed=args.seed)
    print(f"generated scale {args.scale} in {time.monotonic() - t0:.1f} s: {counts}", flush=True)
    subprocess.run(["psql", "-q", "-c", "CREATE SCHEMA IF NOT EXISTS bench"], env=pg_env(src),
                   check=True)
    lake = tempfile.mkdtemp(prefix="bench-incremental-")
    logs = tempfile.mkdtemp(prefix="bench-incremental-logs-")
    try:
        with PeakMemory() as mem:
            full = pipeline(lake, D1, logs, "full")
            unchanged = pipeline(lake, D1, logs, "unchanged")
            # the same rerun the long way: every stage, each skipping by its own records
            full_check = pipeline(lake, D1, logs, "full-check", "--full-check")
            applied = changes.apply_batch(src, 1)
            print(f"change batch 1: {applied}", flush=True)
            incremental = pipeline(lake, D1 + dt.timedelta(days=1), logs, "incremental")
        copy = dump_copy(src)
        sync, n_new = row_by_row(src, 1)
    finally:
        shutil.rmtree(lake, ignore_errors=True)
    print(f"{'dump|copy':<12} {copy:8.1f} s   (sales_data, {counts.get('sales_data', '?')} rows)")
    print(f"{'row-by-row':<12} {sync:8.1f} s   ({n_new} new sale lines of batch 1, a commit each)")
    inc_target, rerun_target = TARGETS.get(args.scale, (None, None))
    print(f"incremental / full = {incremental / full:.2f}"
          + (f" (target <= {inc_target})" if inc_target else ""))
    print(f"unchanged / full   = {unchanged / full:.2f}"
          + (f" (target <= {rerun_target})" if rerun_target else "")
          + f"; with --full-check {full_check / full:.2f}")
    print(f"incremental / row-by-row = {incremental / sync:.1f}x; full / dump|copy = "
          f"{full / copy:.1f}x")
    print(f"peak memory in use on the machine: {mem.peak / 2**30:.1f} GiB "
          f"of {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f}")
    print(f"job logs: {logs}")


if __name__ == "__main__":
    main()
