"""Scale-out: the pipeline as a real YARN application on the local Hadoop (HDFS + YARN daemons,
run as the unprivileged `ecomlake-hadoop`), every Delta table on HDFS, compared with the same
data and date run in local mode: the session's course lake (tests/conftest.py), so the local run
is not paid twice.

What is paid once: `hadoop.up` is idempotent (the jars are resolved and HDFS formatted only the
first time; a running Hadoop is reused), Spark's jars are never uploaded (spark.yarn.jars is
local:), and the course data is loaded into the sources again only if another test changed them."""
import json
import os
import pwd
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from ecomlake.config import PROJECT_ROOT, load_config
from ecomlake.io import delta, mysql
from ecomlake.ops import hadoop
from ecomlake.ops.sources import capstone

from tests.conftest import COURSE_RUN_DATE as RUN_DATE, overrides_env, sources_stamp

TABLES = ["silver.sales_data", "silver.electronics", "gold.DimDate", "gold.FactSales",
          "gold.total_sales_per_country", "gold.sales_by_product", "gold.cube_year_country"]
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@pytest.fixture(scope="module")
def hadoop_up():
    """Hadoop for this module; stopped after it if this module started it (its four JVMs
    would otherwise take CPU from the rest of the suite), left running if it was up already."""
    cfg = load_config("yarn")
    was_up = any(what == "already running" for _, what in hadoop.up(cfg))
    yield cfg
    if not was_up:
        hadoop.down(cfg)


def proc_status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return dict(line.split(":", 1) for line in lines if ":" in line)


def test_every_hadoop_daemon_runs_as_the_unprivileged_user(hadoop_up):
    """Every process of this Hadoop (found by its command line, not by a pid file), and every
    daemon's recorded pid, runs with the real, effective, saved and filesystem uid and gid of
    `ecomlake-hadoop`, never root."""
    lay = hadoop.Layout(hadoop_up)
    user = pwd.getpwnam(hadoop.USER)
    assert user.pw_uid != 0 and user.pw_gid != 0
    found = {}
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"-Dhadoop.log.dir={lay.log}".encode() not in cmd:
            continue
        for d in hadoop.DAEMONS:
            if f"-Dproc_{d.name}".encode() in cmd and d.main.encode() in cmd:
                found.setdefault(d.name, []).append(int(proc.name))
    assert sorted(found) == sorted(d.name for d in hadoop.DAEMONS)
    for d in hadoop.DAEMONS:
        assert lay.process(d).pid() in found[d.name], d.name
        for pid in found[d.name]:
            status = proc_status(pid)
            assert status["Uid"].split() == [str(user.pw_uid)] * 4, (d.name, pid, status["Uid"])
            assert status["Gid"].split() == [str(user.pw_gid)] * 4, (d.name, pid, status["Gid"])
            assert status["Groups"].split() in ([], [str(user.pw_gid)]), (d.name, pid)
        assert hadoop.port_open(hadoop.HOST, d.port), f"{d.name} does not answer on {d.port}"


def yarn_apps(since_ms: int, name: str) -> list[dict]:
    with NO_PROXY.open(f"http://{hadoop.HOST}:{hadoop.RM_HTTP}/ws/v1/cluster/apps"
                       f"?startedTimeBegin={since_ms}", timeout=10) as r:
        apps = (json.load(r).get("apps") or {}).get("app", [])
    return [a for a in apps if a["name"] == name]


def pipeline(lake_root: str, log_file: Path) -> float:
    """The daily pipeline job on YARN for the course date; its output goes to `log_file`."""
    env = {**os.environ, **overrides_env(lake={"root": lake_root})}
    t0 = time.monotonic()
    with open(log_file, "w") as out:
        proc = subprocess.run([str(PROJECT_ROOT / "spark-submit.sh"), "pipeline", "--env", "yarn",
                               "--run-date", RUN_DATE, "--target", "postgres"],
                              stdout=out, stderr=subprocess.STDOUT, env=env, timeout=1800)
    assert proc.returncode == 0, log_file.read_text()[-6000:]
    return time.monotonic() - t0


def test_pipeline_on_yarn_writes_delta_to_hdfs_and_equals_local(hadoop_up, course_lake, spark,
                                                                cfg, tmp_path):
    # The course data in the sources: loaded again only if a test loaded other data since the
    # course lake was built (a load stamps new `updated_at` values, compared apart below).
    if sources_stamp(cfg) != course_lake.sources:
        capstone.load(cfg)
    # In the submitting user's HDFS home: `hadoop up` gives it that folder, not HDFS's root.
    hdfs_root = (f"{hadoop.FS_DEFAULT}/user/{hadoop.submitter()}/"
                 f"ecomlake-it-{uuid.uuid4().hex[:8]}")
    since_ms = int(time.time() * 1000) - 1000
    log_file = tmp_path / "pipeline-yarn.log"
    yarn_s = pipeline(hdfs_root, log_file)
    stages = [line.split(": ", 1)[-1] for line in log_file.read_text().splitlines()
              if " stage " in line and ": done in " in line]
    print(f"\npipeline wall time on yarn: {yarn_s:.0f}s ({'; '.join(stages)}); log {log_file}")

    # It ran as a real YARN application: the ResourceManager ran it to success, in the jobs'
    # queue, for the submitting user.
    apps = yarn_apps(since_ms, "ecomlake-pipeline")
    assert [(a["state"], a["finalStatus"], a["queue"].split(".")[-1], a["user"],
             a["applicationType"]) for a in apps] == [
        ("FINISHED", "SUCCEEDED", "ecomlake", hadoop.submitter(), "SPARK")]   # root.ecomlake

    # every Delta table's log is on HDFS, listed through the HDFS API
    jvm = spark._jvm
    conf = spark._jsc.hadoopConfiguration()
    fs = jvm.org.apache.hadoop.fs.FileSystem.get(jvm.java.net.URI(hdfs_root), conf)
    for name in TABLES:
        layer, table = name.split(".")
        log_dir = jvm.org.apache.hadoop.fs.Path(f"{hdfs_root}/{layer}/{table}/_delta_log")
        assert fs.exists(log_dir), f"{name} has no _delta_log on HDFS"
        assert any(s.getPath().getName().endswith(".json") for s in fs.listStatus(log_dir))

    # Every table equals the local run's. Each load of the course data stamps new `updated_at`
    # values in MySQL, and the course lake may have read an earlier load: that column of
    # silver.sales_data is compared with the source rows as they are now instead.
    yarn_cfg = load_config("local", overrides={"lake": {"root": hdfs_root}})
    for name in TABLES:
        ours = delta.read(spark, yarn_cfg, name)
        cols = [c for c in ours.columns if c != "_ingested_at"
                and not (name == "silver.sales_data" and c == "updated_at")]
        got = sorted(map(tuple, ours.select(cols).collect()), key=repr)
        want = sorted(map(tuple, delta.read(spark, course_lake.cfg, name).select(cols).collect()),
                      key=repr)
        assert got == want, name
    got = delta.read(spark, yarn_cfg, "silver.sales_data").select("id", "updated_at").collect()
    want = mysql.read_table(spark, cfg, "sales_data", key="id", columns="id, updated_at").collect()
    assert sorted(map(tuple, got)) == sorted(map(tuple, want))
    fs.delete(jvm.org.apache.hadoop.fs.Path(hdfs_root), True)
