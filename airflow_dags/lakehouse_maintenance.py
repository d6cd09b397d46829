"""lakehouse_maintenance: weekly OPTIMIZE and VACUUM of every Delta table.

    package_lib -> maintenance

The retention VACUUM keeps is lake.vacuum_retention_hours in conf/<env>.yaml (a week by default,
so time travel and a rerun of last week's dates still work).
"""
from __future__ import annotations

from datetime import timedelta

# airflow's SparkSubmitOperator, with the passwords in a private file (see _common)
from _common import EcomlakeSubmitOperator as SparkSubmitOperator
from _common import ecomlake_dag, package_lib, submit_kwargs

with ecomlake_dag("lakehouse_maintenance", __doc__,
                  "OPTIMIZE + VACUUM the bronze, silver and gold Delta tables",
                  schedule="@weekly",
                  catchup=False,   # maintenance of the lake as it is now; old weeks add nothing
                  timeout=timedelta(hours=2), retry_delay=timedelta(minutes=5),
                  tags=("maintenance",)) as dag:
    package_lib() >> SparkSubmitOperator(task_id="maintenance", **submit_kwargs("maintenance"))
