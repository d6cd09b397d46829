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

from ecomlake.io import delta, mysql

from tests.conftest import published
from tests.integration.conftest import last_publish, snapshot

# The fixtures `lake`, `airflow_env` and `dag_run` are in tests/integration/conftest.py: the
# session's one DAG run, which test_security.py also reads (its task logs).
TASKS = {"package_lib", "bronze_mysql", "bronze_mongo", "silver", "gold", "analytics",
         "publish_postgres", "publish_db2"}


def mysql_sale_lines(cfg):
    conn = mysql.connect(cfg)
    try:
        cur = conn.cursor()
        cur.execute("SELECT COUNT(*) FROM sales_data")
        return cur.fetchone()[0]
    finally:
        conn.close()


def test_airflow_dags_test_runs_every_task_green(dag_run):
    assert dag_run.states == {task: "success" for task in TASKS}


def test_airflow_dags_test_publishes_the_sales_to_postgres(dag_run, cfg):
    before = dag_run.before
    published_at = last_publish(cfg)
    assert published_at is not None and (before["published_at"] is None
                                         or published_at > before["published_at"]), (
        "the DAG run did not publish public.sales_by_product")
    rows = published(cfg)
    assert rows, "public.sales_by_product is empty after the DAG run"
    assert len({r[0] for r in rows}) == len(rows)                 # one row per product
    assert sum(r[1] for r in rows) == mysql_sale_lines(cfg)       # every source sale line


def test_airflow_dags_test_rerun_of_a_date_changes_nothing(dag_run, lake, spark, cfg):
    assert snapshot(spark, lake) == dag_run.before["lake"]
    gold = delta.read(spark, lake, "gold.sales_by_product").orderBy("product_id").collect()
    assert [tuple(map(naive, r)) for r in published(cfg)] == [tuple(r) for r in gold]


def naive(value):
    """A timestamptz from PostgreSQL as Spark's collect() gives a timestamp: naive local time."""
    if isinstance(value, datetime.datetime) and value.tzinfo is not None:
        return value.astimezone().replace(tzinfo=None)
    return value
