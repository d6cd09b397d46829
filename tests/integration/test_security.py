"""The security baseline (docs: ARCHITECTURE.md, README "The local stack") on the running stack:
servers run as unprivileged users; the pipeline's MySQL account can read and nothing more (no
files, no writes); every server refuses a wrong password, and a job says so with exit 2 and
without the password; a pipeline run keeps every secret of stack.env out of its process
arguments, its logs, its Spark event log and an Airflow task log; identifiers in tables.yaml are
checked when it loads.
"""
from __future__ import annotations

import json
import os
import pwd
import stat
import subprocess
from pathlib import Path

import mysql.connector
import pytest
from mysql.connector import errorcode

from ecomlake.ops import stack
from ecomlake.config import (PROJECT_ROOT, STACK_ENV_FILE, ConfigError,
                             load_config, load_tables, read_env_file)
from ecomlake.io import mysql as my

from tests.conftest import stack_secrets

RUN_DATE = "2026-11-25"
WRONG = "Wr0ng-pa55\\word'x"      # a backslash and a quote: escaped, never interpreted


secrets = stack_secrets   # every secret of stack.env, as the servers use them


def leaked(text: str, values: dict[str, str]) -> list[str]:
    """The names of the secrets that occur in `text` (never the secrets themselves)."""
    return sorted(name for name, value in values.items() if value and value in text)


# -- MySQL: the pipeline's account reads, and nothing more ------------------------------------

def test_pipeline_account_cannot_write_files_into_outfile(cfg, tmp_path):
    target = tmp_path / "outfile.txt"
    conn = my.connect(cfg)
    try:
        with pytest.raises(mysql.connector.Error) as err:
            conn.cursor().execute(f"SELECT 'x' INTO OUTFILE '{target}'")
    finally:
        conn.close()
    assert err.value.errno == errorcode.ER_SPECIFIC_ACCESS_DENIED_ERROR    # FILE is not held
    assert not target.exists()


@pytest.mark.parametrize("loader", [False, True])
def test_no_account_can_read_server_files_with_load_file(cfg, loader):
    conn = my.connect(cfg, loader=loader)
    try:
        cur = conn.cursor()
        for path in ("/etc/passwd", str(cfg.stack_dir / STACK_ENV_FILE)):
            cur.execute("SELECT LOAD_FILE(%s)", (path,))
            assert cur.fetchone() == (None,), path
    finally:
        conn.close()


def test_grants_are_least_privilege_and_secure_file_priv_is_set(cfg):
    def grants(loader):
        conn = my.connect(cfg, loader=loader)
        try:
            cur = conn.cursor()
            cur.execute("SHOW GRANTS")
            rows = [r[0] for r in cur.fetchall()]
            cur.execute("SELECT @@secure_file_priv")
            return rows, cur.fetchone()[0]
        finally:
            conn.close()

    db = cfg.mysql.database
    pipeline, file_priv = grants(False)
    loader, _ = grants(True)
    assert file_priv and file_priv.startswith(str(cfg.stack_dir))
    for rows in (pipeline, loader):
        assert not any("ALL PRIVILEGES" in r or " FILE" in r or "GRANT OPTION" in r
                       or "SUPER" in r for r in rows), rows
    assert any(r.startswith("GRANT PROCESS ON *.*") for r in pipeline), pipeline
    assert f"GRANT SELECT ON `{db}`.* TO `{cfg.mysql.user}`@`127.0.0.1`" in pipeline
    assert f"GRANT SELECT ON `{db}_bench`.* TO `{cfg.mysql.user}`@`127.0.0.1`" in pipeline
    assert any(r.startswith(f"GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP") and
               f"`{db}`.*" in r for r in loader), loader


def test_pipeline_account_reads_but_cannot_change_the_sources(cfg):
    conn = my.connect(cfg)
    try:
        cur = conn.cursor()
        cur.execute("SELECT COUNT(*) FROM information_schema.innodb_trx")   # needs PROCESS
        cur.fetchall()
        cur.execute("SELECT COUNT(*) FROM sales_data")
        cur.fetchall()
        for sql in ("DELETE FROM sales_data WHERE id < 0", "CREATE TABLE it_probe (x INT)",
                    "TRUNCATE TABLE change_manifest"):
            with pytest.raises(mysql.connector.Error) as err:
                cur.execute(sql)
            assert err.value.errno in (errorcode.ER_TABLEACCESS_DENIED_ERROR,
                                       errorcode.ER_DBACCESS_DENIED_ERROR), sql
    finally:
        conn.close()


# -- servers and secret files ------------------------------------------------------------------

def server_pid(server) -> int:
    if isinstance(server, stack.PostgreSQL):   # pg_ctl starts it: its own pid file
        return int((server.data_dir / "postmaster.pid").read_text().split()[0])
    return int(server.pid_file.read_text().split()[0])


def test_every_server_runs_as_its_unprivileged_user(cfg):
    for server in stack.servers(cfg):
        uid = os.stat(f"/proc/{server_pid(server)}").st_uid
        assert uid != 0, f"{server.name} runs as root"
        assert pwd.getpwuid(uid).pw_name == server.OS_USER, server.name
        assert os.stat(server.data_dir).st_uid == uid, server.data_dir


def test_secret_files_are_mode_600(cfg):
    env_file = cfg.stack_dir / STACK_ENV_FILE
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    props = stack.Derby(cfg).properties_file
    assert stat.S_IMODE(props.stat().st_mode) == 0o600
    assert pwd.getpwuid(props.stat().st_uid).pw_name == stack.Derby.OS_USER


def test_stack_env_is_made_600_again_by_up(tmp_path):
    stack.ensure_secrets(tmp_path, ["A_PASSWORD"])
    (tmp_path / STACK_ENV_FILE).chmod(0o644)
    values = stack.ensure_secrets(tmp_path, ["A_PASSWORD"])
    assert stat.S_IMODE((tmp_path / STACK_ENV_FILE).stat().st_mode) == 0o600
    assert read_env_file(tmp_path / STACK_ENV_FILE) == values


def test_passwords_are_escaped_for_each_server():
    assert stack.sql_string("a'b\\c") == "'a''b\\\\c'"           # MariaDB: \ is an escape
    assert stack.pg_string("a'b\\c") == "'a''b\\c'"              # standard_conforming_strings
    # Java .properties (Derby's users): \ = : # ! and a leading space escaped
    assert stack.properties_value(" a=b:c\\d#e!") == "\\ a\\=b\\:c\\\\d\\#e\\!"


# -- wrong passwords ---------------------------------------------------------------------------

def submit(job: str, *args: str, env: dict | None = None, timeout: int = 600):
    return subprocess.run([str(PROJECT_ROOT / "spark-submit.sh"), job, *args],
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


@pytest.mark.parametrize("server,job,args", [
    ("mysql", "bronze", ("--source", "mysql")),
    ("postgres", "publish", ("--target", "postgres")),
    ("db2", "publish", ("--target", "db2")),
])
def test_wrong_password_stops_a_job_with_exit_2_and_is_never_printed(
        cfg, tmp_path, server, job, args):
    var = getattr(cfg, server).password_env
    overrides = json.loads(os.environ.get("ECOMLAKE_OVERRIDES") or "{}")
    overrides["lake"] = {"root": str(tmp_path / "lake")}
    proc = submit(job, "--run-date", RUN_DATE, *args,
                  env={var: WRONG, "ECOMLAKE_OVERRIDES": json.dumps(overrides)})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out[-3000:]
    assert "refused the login" in out, out[-3000:]
    assert var in out
    assert WRONG not in out and WRONG.replace("\\", "\\\\") not in out
    assert not leaked(out, secrets(cfg))


# -- a pipeline run keeps every secret to itself -----------------------------------------------

@pytest.fixture(scope="module")
def watched_run(course_lake):
    """The session's `./spark-submit.sh pipeline` on the course data (tests/conftest.py): its
    passwords came through the environment, its Spark event log was on, and `ps` watched every
    command line while it ran."""
    proc, watcher = course_lake.watched
    return proc, watcher, course_lake.events


def test_pipeline_process_arguments_hold_no_secret(cfg, watched_run):
    _, watcher, _ = watched_run
    assert watcher.samples >= 5
    assert any("jobs/pipeline.py" in line for line in watcher.seen)   # it did watch the run
    assert not leaked("\n".join(watcher.seen), secrets(cfg))


def test_pipeline_logs_hold_no_secret(cfg, watched_run):
    proc, _, _ = watched_run
    assert "pipeline finished" in proc.stdout + proc.stderr
    assert not leaked(proc.stdout + proc.stderr, secrets(cfg))
    for log_file in (cfg.stack_dir / "log").glob("*.log"):   # the servers' own logs
        assert not leaked(log_file.read_text(errors="replace"), secrets(cfg)), log_file


def test_spark_event_log_holds_no_secret(cfg, watched_run):
    _, _, events = watched_run
    logs = [p for p in events.rglob("*") if p.is_file()]
    assert logs, "the run wrote no event log"
    text = "\n".join(p.read_text(errors="replace") for p in logs)
    assert "SparkListenerApplicationStart" in text
    assert not leaked(text, secrets(cfg))


def test_airflow_task_log_holds_no_secret(cfg, dag_run, airflow_env):
    """The session's `airflow dags test` of ecommerce_daily (tests/integration/conftest.py):
    every task's log, the ones that use a password (bronze_mysql, publish_*) included."""
    home = Path(airflow_env["AIRFLOW_HOME"])
    text = dag_run.output + "".join(p.read_text(errors="replace") for p in home.rglob("*.log"))
    for task in ("bronze_mysql", "publish_postgres", "publish_db2"):
        assert task in text, f"no log of task {task} in the DAG run's output"
    assert "bronze finished" in text or "bronze: " in text, text[-3000:]
    assert not leaked(text, secrets(cfg))


# -- identifiers -------------------------------------------------------------------------------

@pytest.mark.parametrize("bad,key", [
    ("sales'data", "sales'data"),
    ("id; DROP TABLE x", "t.key[0]"),
    ("updated_at'", "t.watermark"),
    ("country;", "t.history[0]"),
    ("rule'name", "t.rules.rule'name"),
])
def test_identifier_with_a_quote_or_semicolon_is_rejected_at_load(tmp_path, bad, key):
    spec = {"source": "mysql", "key": ["id"], "watermark": "updated_at", "history": ["country"],
            "rules": {"id_not_null": "id IS NOT NULL"}}
    table = "t"
    if key == bad:
        table = bad
    elif key == "t.key[0]":
        spec["key"] = [bad]
    elif key == "t.watermark":
        spec["watermark"] = bad
    elif key == "t.history[0]":
        spec["history"] = [bad]
    else:
        spec["rules"] = {bad: "id IS NOT NULL"}
    path = tmp_path / "tables.yaml"
    path.write_text(json.dumps({table: spec}))
    with pytest.raises(ConfigError) as err:
        load_tables(path)
    assert f"`{key}`" in str(err.value)
    assert "identifier" in str(err.value)


def test_the_shipped_tables_yaml_passes_the_identifier_check():
    assert set(load_tables()) == {"sales_data", "customers", "inventory", "electronics"}


def test_config_identifiers_are_checked_with_the_key_named():
    with pytest.raises(ConfigError, match=r"`postgres.schema` must be an identifier"):
        load_config("local", overrides={"postgres": {"schema": "public; DROP"}})
