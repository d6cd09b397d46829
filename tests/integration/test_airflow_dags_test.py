"""ecommerce_daily under Airflow itself: `airflow dags test` (through stack/airflow/run.sh, in
Airflow's own virtualenv) runs every task for one date against the local stack, and the
PostgreSQL warehouse then holds the date's sales; a second run of the same date leaves the
published table exactly as it was.

Needs stack/airflow/install.sh (the Makefile's `airflow` target) and `ecomlake stack up`. It
does not skip without Airflow: CI installs it. Each test session gets its own AIRFLOW_HOME (a
fresh SQLite metadata DB) and its own throwaway lake, so runs are independent of .local/.
"""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import time

import pytest

from ecomlake.config import PROJECT_ROOT
from ecomlake.io import mysql
from ecomlake.sources import capstone

from tests.conftest import published

AIRFLOW_VENV = PROJECT_ROOT / ".local" / "airflow" / "venv"
RUN_SH = PROJECT_ROOT / "stack" / "airflow" / "run.sh"
RUN_DATE = "2026-11-25"
TASKS = {"package_lib", "bronze_mysql", "bronze_mongo", "silver", "gold", "analytics",
         "publish_postgres", "publish_db2"}


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory):
    assert (AIRFLOW_VENV / "bin" / "airflow").exists(), (
        f"no Airflow at {AIRFLOW_VENV}: run stack/airflow/install.sh (make airflow)")
    home = tmp_path_factory.mktemp("airflow-home")
    lake = tmp_path_factory.mktemp("airflow-lake") / "lake"
    return {**os.environ,
            "AIRFLOW_HOME": str(home),
            "ECOMLAKE_DAG_RETRIES": "0",       # a failure shows at once, not after backoffs
            "ECOMLAKE_OVERRIDES": json.dumps({"lake": {"root": str(lake)}})}


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


@pytest.fixture(scope="module")
def first_run(airflow_env, cfg):
    capstone.load(cfg)        # the course data, as every full-flow test starts from it
    proc, seconds, states = dags_test(airflow_env)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return states


def test_airflow_dags_test_runs_every_task_green(first_run):
    assert first_run == {task: "success" for task in TASKS}


def test_airflow_dags_test_publishes_the_sales_to_postgres(first_run, cfg):
    rows = published(cfg)
    assert rows, "public.sales_by_product is empty after the DAG run"
    assert len({r[0] for r in rows}) == len(rows)                 # one row per product
    assert sum(r[1] for r in rows) == mysql_sale_lines(cfg)       # every source sale line


def test_airflow_dags_test_same_date_twice_leaves_postgres_identical(first_run, airflow_env, cfg):
    before = published(cfg)
    proc, _, states = dags_test(airflow_env)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert states == {task: "success" for task in TASKS}
    assert published(cfg) == before
