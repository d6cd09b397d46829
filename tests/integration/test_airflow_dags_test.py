"""ecommerce_daily under Airflow itself: `airflow dags test` (through stack/airflow/run.sh, in
Airflow's own virtualenv) runs every task for one date against the local stack.

One DAG run proves both what a first run and a second run used to prove, because it runs over
a copy of the course lake (tests/conftest.py), which already holds that date from
`./spark-submit.sh pipeline` over the same source rows: every task succeeds; this run publishes
the date's sales to PostgreSQL (a new publish_log entry, one row per product, every source sale
line); and running the date again changes nothing, in the lake (every layer) or in the
published table, which equals gold. So each stage job, run alone as Airflow runs it, computes
what the pipeline computed, and a retried or cleared task can redo its date.

Needs stack/airflow/install.sh (the Makefile's `airflow` target) and `ecomlake stack up`. It
does not skip without Airflow: CI installs it. Each test session gets its own AIRFLOW_HOME (a
fresh SQLite metadata DB) and its own copy of the lake, so runs are independent of .local/.
"""
from __future__ import annotations

import datetime
import os
import shutil
import sqlite3
import subprocess
import time

import pytest

from ecomlake.config import PROJECT_ROOT, load_config
from ecomlake.io import delta, mysql
from ecomlake.io.warehouse import PostgresWarehouse

from tests.conftest import COURSE_RUN_DATE as RUN_DATE, overrides_env, published

AIRFLOW_VENV = PROJECT_ROOT / ".local" / "airflow" / "venv"
RUN_SH = PROJECT_ROOT / "stack" / "airflow" / "run.sh"
TASKS = {"package_lib", "bronze_mysql", "bronze_mongo", "silver", "gold", "analytics",
         "publish_postgres", "publish_db2"}
# What a rerun of the date must leave as it was: both sources' tables in every layer, and gold.
LAKE_TABLES = ["bronze.sales_data", "bronze.electronics", "silver.sales_data",
               "silver.electronics", "gold.FactSales", "gold.sales_by_product",
               "gold.total_sales_per_country"]


@pytest.fixture(scope="module")
def lake(tmp_path_factory, course_lake):
    """A copy of the course lake, with the sources holding the rows it was built from."""
    course_lake.current()
    root = tmp_path_factory.mktemp("airflow-lake") / "lake"
    shutil.copytree(course_lake.root, root)
    return load_config("local", overrides={"lake": {"root": str(root)}})


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory, lake):
    assert (AIRFLOW_VENV / "bin" / "airflow").exists(), (
        f"no Airflow at {AIRFLOW_VENV}: run stack/airflow/install.sh (make airflow)")
    home = tmp_path_factory.mktemp("airflow-home")
    return {**os.environ,
            "AIRFLOW_HOME": str(home),
            "ECOMLAKE_DAG_RETRIES": "0",       # a failure shows at once, not after backoffs
            **overrides_env(lake={"root": lake.lake_root})}


def dags_test(env, run_date=RUN_DATE):
    """`airflow dags test ecommerce_daily <date>`; returns the process, seconds, task states."""
    t0 = time.monotonic()
    proc = subprocess.run([str(RUN_SH), "dags-test", run_date], env=env, capture_output=True,
                          text=True, timeout=1200)
    seconds = time.monotonic() - t0
    print(f"airflow dags test ecommerce_daily {run_date}: {seconds:.0f}s")
    db = sqlite3.connect(f"{env['AIRFLOW_HOME']}/airflow.db")
    try:
        run_id = db.execute(
            "SELECT run_id FROM dag_run WHERE dag_id = 'ecommerce_daily' "
            "AND date(logical_date) = ? ORDER BY id DESC LIMIT 1", (run_date,)).fetchone()[0]
        states = dict(db.execute(
            "SELECT task_id, state FROM task_instance WHERE dag_id = 'ecommerce_daily' "
            "AND run_id = ?", (run_id,)).fetchall())
    finally:
        db.close()
    return proc, seconds, states


def mysql_sale_lines(cfg):
    conn = mysql.connect(cfg)
    try:
        cur = conn.cursor()
        cur.execute("SELECT COUNT(*) FROM sales_data")
        return cur.fetchone()[0]
    finally:
        conn.close()


def last_publish(cfg):
    """When public.sales_by_product was last published (publish_log, PostgreSQL's clock)."""
    conn = PostgresWarehouse(cfg).connect()
    try:
        return conn.query("SELECT MAX(published_at) FROM public.publish_log "
                          "WHERE table_name = 'sales_by_product'")[0][0]
    finally:
        conn.close()


def snapshot(spark, cfg):
    return {t: sorted(map(tuple, delta.read(spark, cfg, t).drop("_ingested_at").collect()))
            for t in LAKE_TABLES}


@pytest.fixture(scope="module")
def dag_run(airflow_env, lake, spark, cfg):
    """The module's one `airflow dags test`, and the lake and the publish log before it."""
    before = {"lake": snapshot(spark, lake), "published_at": last_publish(cfg)}
    proc, seconds, states = dags_test(airflow_env)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return states, before


def test_airflow_dags_test_runs_every_task_green(dag_run):
    states, _ = dag_run
    assert states == {task: "success" for task in TASKS}


def test_airflow_dags_test_publishes_the_sales_to_postgres(dag_run, cfg):
    _, before = dag_run
    published_at = last_publish(cfg)
    assert published_at is not None and (before["published_at"] is None
                                         or published_at > before["published_at"]), (
        "the DAG run did not publish public.sales_by_product")
    rows = published(cfg)
    assert rows, "public.sales_by_product is empty after the DAG run"
    assert len({r[0] for r in rows}) == len(rows)                 # one row per product
    assert sum(r[1] for r in rows) == mysql_sale_lines(cfg)       # every source sale line


def test_airflow_dags_test_rerun_of_a_date_changes_nothing(dag_run, lake, spark, cfg):
    _, before = dag_run
    assert snapshot(spark, lake) == before["lake"]
    gold = delta.read(spark, lake, "gold.sales_by_product").orderBy("product_id").collect()
    assert [tuple(map(naive, r)) for r in published(cfg)] == [tuple(r) for r in gold]


def naive(value):
    """A timestamptz from PostgreSQL as Spark's collect() gives a timestamp: naive local time."""
    if isinstance(value, datetime.datetime) and value.tzinfo is not None:
        return value.astimezone().replace(tzinfo=None)
    return value
