"""Scale-out: the pipeline on the local Hadoop (real HDFS + YARN daemons) with every Delta
table on HDFS, compared with the same data and date run in local mode: the session's course
lake (tests/conftest.py), so the local run is not paid twice."""
import os
import subprocess
import time
import uuid

import pytest

from ecomlake.ops import hadoop
from ecomlake.config import PROJECT_ROOT, load_config
from ecomlake.io import delta, mysql
from ecomlake.ops.sources import capstone

from tests.conftest import COURSE_RUN_DATE as RUN_DATE, overrides_env

TABLES = ["silver.sales_data", "silver.electronics", "gold.DimDate", "gold.FactSales",
          "gold.total_sales_per_country", "gold.sales_by_product", "gold.cube_year_country"]


def pipeline(env_name, lake_root):
    env = {**os.environ, **overrides_env(lake={"root": lake_root})}
    t0 = time.monotonic()
    proc = subprocess.run([str(PROJECT_ROOT / "spark-submit.sh"), "pipeline", "--env", env_name,
                           "--run-date", RUN_DATE, "--target", "postgres"],
                          capture_output=True, text=True, env=env, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return time.monotonic() - t0


@pytest.fixture(scope="module")
def hadoop_up():
    cfg = load_config("yarn")
    hadoop.up(cfg)
    return cfg


def test_pipeline_on_yarn_writes_delta_to_hdfs_and_equals_local(hadoop_up, course_lake, spark,
                                                                cfg):
    capstone.load(cfg)
    hdfs_root = f"{hadoop.FS_DEFAULT}/ecomlake-it-{uuid.uuid4().hex[:8]}"
    yarn_s = pipeline("yarn", hdfs_root)
    print(f"\npipeline wall time on yarn: {yarn_s:.0f}s")

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
