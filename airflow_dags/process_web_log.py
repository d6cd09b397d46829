"""process_web_log: the course's daily web-log job, as Spark.

    package_lib -> weblog

jobs/weblog.py parses the day's access log, extracts the client IPs, drops the configured
address (weblog.drop_ip, 198.46.149.143 by default), archives the day's IPs and rebuilds
gold.hits_per_ip_day. Idempotent for its run date: a retry replaces that date's batch.
"""
from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import DAG, task

from _common import build_lib_zip, default_args, submit_kwargs

with DAG(
    dag_id="process_web_log",
    description="access log -> client IPs without the dropped address -> archive + hits per IP",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=True,
    max_active_runs=1,
    default_args=default_args(timedelta(minutes=20)),
    tags=["ecomlake", "spark", "weblog"],
    doc_md=__doc__,
) as dag:

    @task(execution_timeout=timedelta(minutes=2))
    def package_lib() -> str:
        return build_lib_zip()

    package_lib() >> SparkSubmitOperator(task_id="weblog", **submit_kwargs("weblog"))
