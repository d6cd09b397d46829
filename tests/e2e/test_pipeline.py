"""The whole walking skeleton, as a person runs it: the course data in MySQL and MongoDB,
`./spark-submit.sh pipeline`, then the warehouses are queried and compared with numbers
computed independently from the course files with plain Python."""
import collections
import csv
import json
import os
import subprocess
import time
from decimal import Decimal
from pathlib import Path

import pytest

from ecomlake.config import PROJECT_ROOT
from ecomlake.io import delta
from ecomlake.io.warehouse import DB2Warehouse, PostgresWarehouse

from tests.conftest import CAPSTONE, COURSE_RUN_DATE as RUN_DATE, overrides_env, published


def submit(job, *args, env=None, timeout=600):
    t0 = time.monotonic()
    proc = subprocess.run([str(PROJECT_ROOT / "spark-submit.sh"), job, *args],
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
    return proc, time.monotonic() - t0


def expected_by_product():
    """product_id -> (sale lines, units, amount) straight from oltpdata.csv."""
    out = collections.defaultdict(lambda: [0, 0, Decimal(0)])
    with open(CAPSTONE / "oltpdata.csv", newline="") as f:
        for product, _customer, price, qty, _ts in (r for r in csv.reader(f) if r):
            agg = out[int(product)]
            agg[0] += 1
            agg[1] += int(qty)
            agg[2] += Decimal(price) * int(qty)
    return {k: tuple(v) for k, v in out.items()}


@pytest.fixture(scope="module")
def first_run(course_lake, spark):
    """The session's run of the course data (tests/conftest.py: `./spark-submit.sh pipeline`
    into a throwaway lake), with the sources holding what it read, and its gold published
    again to both warehouses: other tests publish generated data to the same ones."""
    course_lake.current()
    course_lake.publish(spark, "postgres", "db2")
    return course_lake


def warehouse_rows(conn, table):
    return conn.query(f"SELECT product_id, sale_lines, units, amount FROM {table} "
                      "ORDER BY product_id")


def test_pipeline_publishes_course_sales_to_postgres(first_run, cfg):
    conn = PostgresWarehouse(cfg).connect()
    rows = warehouse_rows(conn, "public.sales_by_product")
    conn.close()
    expected = expected_by_product()
    assert {r[0]: (r[1], r[2], r[3]) for r in rows} == expected
    assert sum(r[3] for r in rows) == sum(v[2] for v in expected.values())


def test_pipeline_publishes_course_sales_to_db2_path(first_run, cfg, spark):
    conn = DB2Warehouse(cfg).connect(spark)
    rows = warehouse_rows(conn, "APP.SALES_BY_PRODUCT")
    conn.close()
    assert {r[0]: (r[1], r[2], r[3]) for r in rows} == expected_by_product()


def test_pipeline_keeps_catalog_names_and_counts_in_silver(first_run, spark):
    cfg = first_run.cfg
    docs = [json.loads(l) for l in (CAPSTONE / "catalog.json").read_text().splitlines() if l.strip()]
    silver = delta.read(spark, cfg, "silver.electronics")
    assert silver.count() == len(docs)
    phones = silver.filter("type = 'smart phone'").agg({"screen_size": "avg"}).collect()[0][0]
    sizes = [d["screen size"] for d in docs if d.get("type") == "smart phone"]
    assert phones == pytest.approx(sum(sizes) / len(sizes))
    bronze = delta.read(spark, cfg, "bronze.sales_data")
    assert {"_ingested_at", "_batch_id", "_source", "_ingest_date"} <= set(bronze.columns)


def snapshot(spark, cfg, tables):
    return {t: sorted(map(tuple, delta.read(spark, cfg, t).drop("_ingested_at").collect()))
            for t in tables}


def delta_versions(lake_root) -> dict[str, int]:
    """Every Delta table under the lake -> its latest version, from the file names in its
    _delta_log (plain file system, not Delta's reader)."""
    out = {}
    for log_dir in Path(lake_root).rglob("_delta_log"):
        commits = [int(f.name[:-5]) for f in log_dir.glob("*.json") if f.name[:-5].isdigit()]
        out[str(log_dir.parent.relative_to(lake_root))] = max(commits)
    return out


def publish_logs(cfg, spark):
    """Both warehouses' publish_log rows, as they are."""
    out = {}
    for wh in (PostgresWarehouse(cfg), DB2Warehouse(cfg)):
        conn = wh.connect(spark)
        try:
            out[type(wh).__name__] = sorted(map(tuple, conn.query(
                f"SELECT * FROM {wh.qualified(wh.PUBLISH_LOG)}")), key=repr)
        finally:
            conn.close()
    return out


@pytest.mark.parametrize("full_check", [False, True], ids=["quick-check", "full-check"])
def test_pipeline_rerun_same_date_changes_nothing(first_run, spark, cfg, full_check):
    """A retried run of a date whose sources did not change makes no Delta commit in any table
    of the lake and writes nothing to either warehouse; the log says what it skipped. The quick
    check decides so before Spark starts; with --full-check every stage runs and skips by its
    own records."""
    lake_cfg = first_run.cfg
    tables = ["bronze.sales_data", "bronze.electronics", "silver.sales_data",
              "silver.electronics", "gold.sales_by_product"]
    before = snapshot(spark, lake_cfg, tables)
    versions = delta_versions(lake_cfg.lake_root)
    assert {"bronze/sales_data", "silver/sales_data", "gold/FactSales", "bronze/_batches",
            "gold/sales_forecast"} <= set(versions)
    logs = publish_logs(cfg, spark)
    pg_before = published(cfg)
    proc, _ = submit("pipeline", "--run-date", RUN_DATE,
                     *(["--full-check"] if full_check else []), env=first_run.env)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert delta_versions(lake_cfg.lake_root) == versions
    assert publish_logs(cfg, spark) == logs
    assert snapshot(spark, lake_cfg, tables) == before
    assert published(cfg) == pg_before
    quick = f"pipeline: nothing changed since the last complete run of {RUN_DATE}: no stage runs"
    if not full_check:
        assert quick in proc.stdout, proc.stdout[-3000:]
        assert "stage bronze: starting" not in proc.stdout
        return
    assert quick not in proc.stdout
    for skipped in ("silver.sales_data: skipped, unchanged", "silver.electronics: skipped",
                    "gold: skipped, unchanged", "analytics: skipped, unchanged",
                    f"bronze.sales_data: batch {RUN_DATE} is there from an earlier attempt and "
                    "the source changed nothing in its window",
                    f"bronze.electronics: batch {RUN_DATE} is there from an earlier attempt with "
                    "exactly these", "skipped: gold.FactSales version"):
        assert skipped in proc.stdout, skipped


def test_pipeline_with_mysql_down_stops_fast_and_writes_nothing(first_run, spark):
    lake_cfg = first_run.cfg
    version = delta.version(spark, lake_cfg, "bronze.sales_data")
    env = overrides_env(lake={"root": lake_cfg.lake_root}, mysql={"port": 1})
    proc, seconds = submit("pipeline", "--run-date", "2026-11-26", env=env)
    assert proc.returncode == 2
    assert "MySQL (OLTP source) at 127.0.0.1:1 is not answering" in proc.stdout
    assert "ecomlake stack up" in proc.stdout
    assert seconds < 30
    assert delta.version(spark, lake_cfg, "bronze.sales_data") == version


def test_pipeline_with_wrong_password_never_prints_it(first_run, cfg):
    secret = "n0t-the-Passw0rd-4711"
    env = {**first_run.env, cfg.postgres.password_env: secret}
    proc, _ = submit("pipeline", "--run-date", "2026-11-26", env=env)
    assert proc.returncode == 2
    assert "PostgreSQL at 127.0.0.1:15432 refused the login of user 'ecomlake'" in proc.stdout
    assert secret not in proc.stdout + proc.stderr


def test_spark_submit_rejects_unknown_job_and_env():
    proc, _ = submit("nosuchjob")
    assert proc.returncode == 2 and "Valid jobs:" in proc.stderr and "pipeline" in proc.stderr
    proc, _ = submit("pipeline", "--env", "prod")
    assert proc.returncode == 2 and "Valid envs: local" in proc.stderr
