"""What the ecomlake DAGs share: where the project is, and how to spark-submit one of its jobs
exactly as ./spark-submit.sh does (same spark-submit, jars, Spark conf and environment).

Cheap to import, as DAG files must be: no Spark, no network, no connection lookups. The Spark
settings come from the project's own single source (`ecomlake.spark.spark_conf`, which reads
conf/<env>.yaml and lists .local/jars/spark); lib/ is on the Airflow virtualenv's path through
the .pth file that stack/airflow/install.sh writes, and that module needs only PyYAML.

Passwords never appear in a task's arguments, its rendered fields, the Spark conf or the
environment Airflow turns into `spark.yarn.appMasterEnv.*` on YARN. EcomlakeSubmitOperator
reads the ones a job needs from Airflow connections when the task runs, writes them to a
mode-600 file that lives only as long as the spark-submit (shipped with `--files` on YARN) and
names it in $ECOMLAKE_SECRETS_FILE, where the job's config loader finds them. Define the
connections in the metadata DB or as AIRFLOW_CONN_ECOMLAKE_* environment variables
(stack/airflow/run.sh does the latter).
"""
from __future__ import annotations

import os
import tempfile
from datetime import timedelta
from pathlib import Path

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

from ecomlake.config import PROJECT_ROOT, SECRETS_FILE_VAR, load_config
from ecomlake.spark import spark_conf

ENV = os.environ.get("ECOMLAKE_ENV", "local")
PROJECT_PYTHON = str(PROJECT_ROOT / ".venv" / "bin" / "python")
# The project's pyspark (4.2.0, with Delta and the project's jars), not anything from Airflow's
# virtualenv. The provider accepts a path only as the operator's `spark_binary`; the
# connection's `spark-binary` extra is limited to bare names looked up on PATH.
SPARK_SUBMIT = str(PROJECT_ROOT / ".venv" / "bin" / "spark-submit")
JOBS = PROJECT_ROOT / "jobs"
LIB_ZIP = PROJECT_ROOT / ".local" / "dist" / "ecomlake.zip"

# Retries per task (exponential backoff from 1 minute). Tests set 0 to see a failure at once.
RETRIES = int(os.environ.get("ECOMLAKE_DAG_RETRIES", "2"))

def default_args(timeout: timedelta, retry_delay: timedelta = timedelta(minutes=1)) -> dict:
    """Every task: retried with exponential backoff, and stopped when it overruns."""
    return {"retries": RETRIES, "retry_delay": retry_delay, "retry_exponential_backoff": True,
            "max_retry_delay": timedelta(minutes=15), "execution_timeout": timeout}


START_DATE = "2026-11-01"


def ecomlake_dag(dag_id: str, doc: str, description: str, *, timeout: timedelta,
                 schedule: str = "@daily", catchup: bool = True,
                 retry_delay: timedelta = timedelta(minutes=1), tags: tuple[str, ...] = ()):
    """The settings every ecomlake DAG shares. One run at a time (max_active_runs=1): runs share
    the lake's tables, so dates go one after another, in order."""
    import pendulum
    from airflow.sdk import DAG

    return DAG(dag_id=dag_id, description=description, schedule=schedule,
               start_date=pendulum.parse(START_DATE, tz="UTC"), catchup=catchup,
               max_active_runs=1, default_args=default_args(timeout, retry_delay),
               tags=["ecomlake", "spark", *tags], doc_md=doc)


def package_lib():
    """The first task of every DAG (call it inside one): the ecomlake package as
    .local/dist/ecomlake.zip, for the jobs' --py-files."""
    from airflow.sdk import task

    @task(task_id="package_lib", execution_timeout=timedelta(minutes=2))
    def package() -> str:
        return build_lib_zip()

    return package()


# Airflow connection that holds each server's password (server name in conf/ -> conn id).
CONNECTIONS = {"mysql": "ecomlake_mysql", "postgres": "ecomlake_postgres", "db2": "ecomlake_db2"}


class EcomlakeSubmitOperator(SparkSubmitOperator):
    """SparkSubmitOperator that hands the job the passwords of `secrets` (server names, keys of
    CONNECTIONS) in a private file instead of the environment: on YARN the provider turns
    `env_vars` into `--conf spark.yarn.appMasterEnv.<VAR>=<value>` (argv, Spark conf, event
    log). The file is written when the task runs and removed when spark-submit ends."""

    def __init__(self, *, secrets: tuple[str, ...] = (), **kwargs):
        super().__init__(**kwargs)
        unknown = set(secrets) - set(CONNECTIONS)
        if unknown:
            raise ValueError(f"unknown servers {sorted(unknown)}: valid are {sorted(CONNECTIONS)}")
        self.secrets = tuple(secrets)

    def execute(self, context):
        if not self.secrets:
            return super().execute(context)
        from airflow.sdk import BaseHook

        cfg = load_config(ENV)
        lines = "".join(f"{getattr(cfg, server).password_env}="
                        f"{BaseHook.get_connection(CONNECTIONS[server]).password}\n"
                        for server in self.secrets)
        fd, path = tempfile.mkstemp(prefix="ecomlake-secrets-", suffix=".env")  # mode 600
        try:
            with os.fdopen(fd, "w") as f:
                f.write(lines)
            self.env_vars = {**(self.env_vars or {}), SECRETS_FILE_VAR: path}
            if "yarn" in (BaseHook.get_connection(self._conn_id).host or ""):
                # Localized into the application's own container folders, for an AM or
                # executor that needs it; the client-mode driver reads `path` itself.
                self.files = ",".join(filter(None, [self.files, path]))
            self._hook = None
            return super().execute(context)
        finally:
            os.unlink(path)


def submit_kwargs(job: str, *args: str, secrets: tuple[str, ...] = ()) -> dict:
    """EcomlakeSubmitOperator arguments that run jobs/<job>.py for the run's `{{ ds }}`.

    `secrets` names the servers whose passwords this job needs (keys of CONNECTIONS)."""
    cfg = load_config(ENV)
    conf = spark_conf(cfg)
    conf.pop("spark.master")           # from the spark_default connection
    driver_memory = conf.pop("spark.driver.memory")
    jars = conf.pop("spark.jars")
    env_vars = {
        # What spark-submit.sh exports: loopback only, executors on the project's python.
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYSPARK_PYTHON": PROJECT_PYTHON,
        "PYSPARK_DRIVER_PYTHON": PROJECT_PYTHON,
        "ECOMLAKE_HOME": str(PROJECT_ROOT),
        "ECOMLAKE_ENV": cfg.env,
    }
    return dict(
        secrets=tuple(secrets),
        application=str(JOBS / f"{job}.py"),
        application_args=["--env", cfg.env, "--run-date", "{{ ds }}", *args],
        conn_id="spark_default",
        spark_binary=SPARK_SUBMIT,
        name=f"ecomlake-{job}",
        py_files=str(LIB_ZIP),
        jars=jars,
        driver_memory=driver_memory,
        conf=conf,
        env_vars=env_vars,
    )


def build_lib_zip(target: Path = LIB_ZIP) -> str:
    """The runtime package as spark-submit.sh zips it (one builder: ecomlake.ops.pyzip)."""
    from ecomlake.ops import pyzip

    return pyzip.build(target)
