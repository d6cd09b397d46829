"""ecommerce_daily: one run per day (the data interval's `ds`), one spark-submit per stage.

    package_lib -> [bronze_mysql, bronze_mongo] -> silver -> gold
                -> [analytics, publish_postgres, publish_db2]

Each task runs a job of jobs/ with `--env <env> --run-date {{ ds }}`, exactly as
`./spark-submit.sh <job> --run-date <ds>` would; every job is idempotent for its run date, so a
retry or a cleared task simply redoes that date. The two publishes are independent: DB2 being
down does not hold back the PostgreSQL staging warehouse.
"""
from __future__ import annotations

from datetime import timedelta

# airflow's SparkSubmitOperator, with the passwords in a private file (see _common)
from _common import EcomlakeSubmitOperator as SparkSubmitOperator
from _common import ecomlake_dag, package_lib, submit_kwargs

with ecomlake_dag("ecommerce_daily", __doc__,
                  "MySQL + MongoDB -> bronze -> silver -> gold -> PostgreSQL and DB2",
                  timeout=timedelta(minutes=30)) as dag:
    bronze_mysql = SparkSubmitOperator(
        task_id="bronze_mysql", **submit_kwargs("bronze", "--source", "mysql", secrets=("mysql",)))
    bronze_mongo = SparkSubmitOperator(
        task_id="bronze_mongo", **submit_kwargs("bronze", "--source", "mongo"))
    silver = SparkSubmitOperator(task_id="silver", **submit_kwargs("silver"))
    gold = SparkSubmitOperator(task_id="gold", **submit_kwargs("gold"))
    analytics = SparkSubmitOperator(task_id="analytics", **submit_kwargs("analytics"))
    publish_postgres = SparkSubmitOperator(
        task_id="publish_postgres", execution_timeout=timedelta(minutes=20),
        **submit_kwargs("publish", "--target", "postgres", secrets=("postgres",)))
    publish_db2 = SparkSubmitOperator(
        task_id="publish_db2", execution_timeout=timedelta(minutes=20),
        **submit_kwargs("publish", "--target", "db2", secrets=("db2",)))

    package_lib() >> [bronze_mysql, bronze_mongo] >> silver
    silver >> gold >> [analytics, publish_postgres, publish_db2]
