"""The DAGs, checked the way Airflow's best practices describe: import every file of
airflow_dags/ into a DagBag (no import errors), then check the shape of ecommerce_daily and
render its templated arguments for a given logical date. No scheduler, no Spark, no servers.

Runs in Airflow's own virtualenv (stack/airflow/install.sh):
    .local/airflow/venv/bin/python -m pytest tests/dags
"""
from __future__ import annotations

import os
import tempfile
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

# Before anything imports airflow: a throwaway AIRFLOW_HOME (never ~/airflow), no examples, and
# sentinel passwords, so that a secret read at parse time would show up in the checks below.
os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="ecomlake-airflow-test-")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(Path(__file__).resolve().parents[2] / "airflow_dags")
SENTINELS = {var: f"sentinel-{var.lower()}" for var in
             ("ECOMLAKE_MYSQL_PASSWORD", "ECOMLAKE_POSTGRES_PASSWORD", "ECOMLAKE_DB2_PASSWORD")}
os.environ.update(SENTINELS)

import pendulum  # noqa: E402
import pytest  # noqa: E402
from airflow.dag_processing.dagbag import BundleDagBag  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DAG_FOLDER = ROOT / "airflow_dags"
LOGICAL_DATE = pendulum.datetime(2026, 11, 25, tz="UTC")
SPARK_TASKS = ["bronze_mysql", "bronze_mongo", "silver", "gold", "analytics", "publish_postgres",
               "publish_db2"]


@pytest.fixture(scope="module")
def dagbag():
    # As the DAG processor loads the dags-folder bundle: with the folder on sys.path, so that
    # `from _common import ...` works.
    return BundleDagBag(dag_folder=str(DAG_FOLDER), bundle_path=DAG_FOLDER)


@pytest.fixture(scope="module")
def dag(dagbag):
    return dagbag.dags["ecommerce_daily"]     # get_dag() would ask the metadata DB


class Connections:
    """Stands in for the `conn` template variable: each connection's password is
    'pw-<conn_id>', so the tests can see exactly where each one ends up."""

    def __getattr__(self, conn_id):
        return SimpleNamespace(conn_id=conn_id, password=f"pw-{conn_id}", login="ecomlake")


def rendered(dag, task_id, logical_date=LOGICAL_DATE):
    """A copy of the task with its template fields rendered for `logical_date`."""
    task = dag.get_task(task_id).prepare_for_execution()
    context = {
        "ds": logical_date.to_date_string(),
        "ds_nodash": logical_date.format("YYYYMMDD"),
        "logical_date": logical_date,
        "data_interval_start": logical_date,
        "data_interval_end": logical_date.add(days=1),
        "conn": Connections(),
        "dag": dag,
        "task": task,
    }
    task.render_template_fields(context)
    return task


def test_dagbag_imports_every_dag_file_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert "ecommerce_daily" in dagbag.dag_ids


def test_ecommerce_daily_task_ids_and_dependencies(dag):
    assert set(dag.task_ids) == {"package_lib", *SPARK_TASKS}
    downstream = {t.task_id: set(t.downstream_task_ids) for t in dag.tasks}
    assert downstream == {
        "package_lib": {"bronze_mysql", "bronze_mongo"},
        "bronze_mysql": {"silver"},
        "bronze_mongo": {"silver"},
        "silver": {"gold"},
        "gold": {"analytics", "publish_postgres", "publish_db2"},
        "analytics": set(),
        "publish_postgres": set(),
        "publish_db2": set(),
    }


@pytest.mark.parametrize("dag_id,job,schedule", [("process_web_log", "weblog", "@daily"),
                                                  ("lakehouse_maintenance", "maintenance", "@weekly")])
def test_other_dags_submit_their_job_for_the_run_date(dagbag, dag_id, job, schedule):
    other = dagbag.dags[dag_id]
    assert set(other.task_ids) == {"package_lib", job}
    assert other.max_active_runs == 1
    task = other.get_task(job)
    assert task.application == str(ROOT / "jobs" / f"{job}.py")
    assert "--run-date" in task.application_args
    assert not any("PASSWORD" in k for k in task.env_vars)


def test_ecommerce_daily_schedule_one_run_at_a_time_with_catchup(dag):
    assert dag.max_active_runs == 1
    assert dag.catchup is True
    assert dag.start_date == pendulum.datetime(2026, 11, 1, tz="UTC")


def test_ecommerce_daily_every_task_retries_with_backoff_and_a_timeout(dag):
    for task in dag.tasks:
        assert task.retries >= 1, task.task_id
        assert task.retry_exponential_backoff, task.task_id
        assert task.execution_timeout is not None, task.task_id
        assert task.execution_timeout <= timedelta(hours=1), task.task_id


@pytest.mark.parametrize("task_id", SPARK_TASKS)
def test_spark_task_submits_the_project_job_with_its_spark_and_zip(dag, task_id):
    task = dag.get_task(task_id)
    job = task_id.split("_")[0] if task_id.startswith(("publish", "bronze")) else task_id
    assert task.application == str(ROOT / "jobs" / f"{job}.py")
    assert Path(task.application).is_file()
    assert task._spark_binary == str(ROOT / ".venv" / "bin" / "spark-submit")
    assert task._conn_id == "spark_default"
    assert task.py_files == str(ROOT / ".local" / "dist" / "ecomlake.zip")
    jars = task.jars.split(",")
    assert jars and all(j.startswith(str(ROOT / ".local" / "jars" / "spark")) for j in jars)
    assert any("delta-spark" in j for j in jars)
    conf = task.conf
    assert conf["spark.sql.extensions"] == "io.delta.sql.DeltaSparkSessionExtension"
    assert conf["spark.driver.bindAddress"] == "127.0.0.1"
    assert "spark.master" not in conf        # from the spark_default connection


@pytest.mark.parametrize("task_id", SPARK_TASKS)
def test_rendered_application_args_carry_the_run_date_and_env(dag, task_id):
    args = rendered(dag, task_id).application_args
    assert args[args.index("--run-date") + 1] == "2026-11-25"
    assert args[args.index("--env") + 1] == "local"


def test_rendered_run_date_follows_the_logical_date(dag):
    args = rendered(dag, "bronze_mysql", pendulum.datetime(2026, 12, 31, tz="UTC")).application_args
    assert args[args.index("--run-date") + 1] == "2026-12-31"


def test_bronze_tasks_ingest_one_source_each_in_parallel(dag):
    for task_id, source in (("bronze_mysql", "mysql"), ("bronze_mongo", "mongo")):
        args = dag.get_task(task_id).application_args
        assert args[args.index("--source") + 1] == source
        assert dag.get_task(task_id).upstream_task_ids == {"package_lib"}


def test_publish_tasks_target_one_warehouse_each(dag):
    for task_id, target in (("publish_postgres", "postgres"), ("publish_db2", "db2")):
        args = rendered(dag, task_id).application_args
        assert args[args.index("--target") + 1] == target


@pytest.mark.parametrize("task_id", SPARK_TASKS)
def test_no_password_in_application_args(dag, task_id):
    task = rendered(dag, task_id)
    text = " ".join(task.application_args).lower()
    assert "password" not in text
    assert "pw-" not in text
    assert not any(s in text for s in SENTINELS.values())
    # ...nor anywhere in what the DAG is parsed into (stored in the metadata DB, shown in the UI).
    unrendered = str(vars(dag.get_task(task_id)))
    assert not any(s in unrendered for s in SENTINELS.values())


def test_passwords_reach_each_job_only_through_a_secrets_file_from_connections(dag):
    # No password in any rendered field (env_vars becomes spark.yarn.appMasterEnv.* on YARN):
    # each task names the servers whose passwords it gets, in a file written when it runs.
    for t in SPARK_TASKS:
        task = rendered(dag, t)
        assert not any(k.endswith("_PASSWORD") for k in task.env_vars), t
        assert "pw-" not in str(vars(task)), t
    assert {t: dag.get_task(t).secrets for t in SPARK_TASKS} == {
        "bronze_mysql": ("mysql",), "bronze_mongo": (), "silver": (), "gold": (),
        "analytics": (), "publish_postgres": ("postgres",), "publish_db2": ("db2",)}


@pytest.mark.parametrize("master", ["local[2]", "yarn"])
def test_secrets_file_is_private_shipped_on_yarn_and_removed_after_the_submit(
        dag, monkeypatch, master):
    """execute() with spark-submit replaced: what it would have been given."""
    import stat

    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
    from airflow.sdk import BaseHook

    conns = {"spark_default": SimpleNamespace(host=master, password=None),
             "ecomlake_db2": SimpleNamespace(host="127.0.0.1", password="pw-db2\\x'=:y")}
    monkeypatch.setattr(BaseHook, "get_connection", classmethod(lambda cls, c: conns[c]))
    seen = {}

    def fake_execute(self, context):
        path = self.env_vars["ECOMLAKE_SECRETS_FILE"]
        seen.update(path=path, mode=stat.S_IMODE(os.stat(path).st_mode), text=open(path).read(),
                    files=self.files, env=dict(self.env_vars))
    monkeypatch.setattr(SparkSubmitOperator, "execute", fake_execute)
    task = rendered(dag, "publish_db2")
    task.execute({})
    assert seen["mode"] == 0o600
    assert seen["text"] == "ECOMLAKE_DB2_PASSWORD=pw-db2\\x'=:y\n"
    assert (seen["files"] == seen["path"]) if master == "yarn" else not seen["files"]
    assert not any("pw-" in v for v in seen["env"].values())
    assert not os.path.exists(seen["path"])


def test_spark_tasks_get_the_environment_spark_submit_sh_sets(dag):
    env = rendered(dag, "gold").env_vars
    assert env["SPARK_LOCAL_IP"] == "127.0.0.1"
    assert env["PYSPARK_PYTHON"] == str(ROOT / ".venv" / "bin" / "python")
    assert env["ECOMLAKE_HOME"] == str(ROOT)
    assert env["ECOMLAKE_ENV"] == "local"


def test_package_lib_builds_the_zip_spark_submit_sh_builds(tmp_path):
    import zipfile

    from _common import build_lib_zip   # airflow_dags/ is on sys.path once the DagBag loaded

    path = Path(build_lib_zip(tmp_path / "ecomlake.zip"))
    names = zipfile.ZipFile(path).namelist()
    assert "ecomlake/__init__.py" in names and "ecomlake/runner.py" in names
    assert not any("__pycache__" in n for n in names)
    assert not any(n.startswith("ecomlake/ops/") for n in names)   # tooling stays off the cluster
    assert list(tmp_path.iterdir()) == [path]           # no temporary file left behind
