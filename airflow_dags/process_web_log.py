"""process_web_log: the course's daily web-log job, as Spark.

    package_lib -> weblog

jobs/weblog.py parses the day's access log, extracts the client IPs, drops the configured
address (weblog.drop_ip, 198.46.149.143 by default), archives the day's IPs and rebuilds
gold.hits_per_ip_day. Idempotent for its run date: a retry replaces that date's batch.
"""
from __future__ import annotations

from datetime import timedelta

# airflow's SparkSubmitOperator, with the passwords in a private file (see _common)
from _common import EcomlakeSubmitOperator as SparkSubmitOperator
from _common import ecomlake_dag, package_lib, submit_kwargs

with ecomlake_dag("process_web_log", __doc__,
                  "access log -> client IPs without the dropped address -> archive + hits per IP",
                  timeout=timedelta(minutes=20), tags=("weblog",)) as dag:
    package_lib() >> SparkSubmitOperator(task_id="weblog", **submit_kwargs("weblog"))
