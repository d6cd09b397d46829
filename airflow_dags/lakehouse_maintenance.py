"""lakehouse_maintenance: weekly OPTIMIZE and VACUUM of every Delta table.

    package_lib -> maintenance

The retention VACUUM keeps is lake.vacuum_retention_hours in conf/<env>.yaml (a week by default,
so time travel and a rerun of last week's dates still work).
"""
from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import DAG, task

from _common import build_lib_zip, default_args, submit_kwargs

with DAG(
    dag_id="lakehouse_maintenance",
    description="OPTIMIZE + VACUUM the bronze, silver and gold Delta tables",
    schedule="@weekly",
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,              # maintenance of the lake as it is now; old weeks add nothing
    max_active_runs=1,
    default_args=default_args(timedelta(hours=2), retry_delay=timedelta(minutes=5)),
    tags=["ecomlake", "spark", "maintenance"],
    doc_md=__doc__,
) as dag:

    @task(execution_timeout=timedelta(minutes=2))
    def package_lib() -> str:
        return build_lib_zip()

    package_lib() >> SparkSubmitOperator(task_id="maintenance", **submit_kwargs("maintenance"))
