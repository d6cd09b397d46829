"""Fixtures shared by integration modules: the session's one `airflow dags test` of
ecommerce_daily over a copy of the course lake. test_airflow_dags_test.py checks what it did;
test_security.py scans its task logs for secrets. One DAG run serves both."""
from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import time
from dataclasses import dataclass

import pytest

from ecomlake import builds
from ecomlake.config import PROJECT_ROOT, load_config
from ecomlake.io import delta
from ecomlake.io.warehouse import PostgresWarehouse

from tests.conftest import COURSE_RUN_DATE as RUN_DATE, overrides_env

AIRFLOW_VENV = PROJECT_ROOT / ".local" / "airflow" / "venv"
RUN_SH = PROJECT_ROOT / "stack" / "airflow" / "run.sh"
# What a rerun of the date must leave as it was: both sources' tables in every layer, and gold.
LAKE_TABLES = ["bronze.sales_data", "bronze.electronics", "silver.sales_data",
               "silver.electronics", "gold.FactSales", "gold.sales_by_product",
               "gold.total_sales_per_country"]


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


@pytest.fixture(scope="session")
def lake(tmp_path_factory, course_lake):
    """A copy of the course lake, with the sources holding the rows it was built from."""
    course_lake.current()
    root = tmp_path_factory.mktemp("airflow-lake") / "lake"
    # Without the build records (ecomlake.builds), so that every stage job computes its tables
    # again under Airflow (a rerun with them would skip silver, gold and analytics), and the
    # comparison with the course lake proves each job alone computes what the pipeline did.
    shutil.copytree(course_lake.root, root, ignore=shutil.ignore_patterns(builds.STATE_DIR))
    return load_config("local", overrides={"lake": {"root": str(root)}})


@pytest.fixture(scope="session")
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


@dataclass
class DagRun:
    states: dict          # task_id -> state
    before: dict          # the lake's tables and the last publish time, before the run
    output: str           # what `airflow dags test` printed: every task's log


@pytest.fixture(scope="session")
def dag_run(airflow_env, lake, spark, cfg):
    """The session's one `airflow dags test`, and the lake and the publish log before it."""
    before = {"lake": snapshot(spark, lake), "published_at": last_publish(cfg)}
    proc, seconds, states = dags_test(airflow_env)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return DagRun(states, before, proc.stdout + proc.stderr)


