"""The Spark session, configured in one place for jobs, tests and notebooks.

`spark_conf(cfg)` is the single source of the settings; spark-submit.sh turns it into
`--conf` flags (via `python -m ecomlake.spark submit-args`), and `session(cfg)` applies the same
settings when Python starts Spark itself (tests, notebooks).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from string import Template

from ecomlake.config import PROJECT_ROOT, Config

JAR_DIR = PROJECT_ROOT / ".local" / "jars" / "spark"


def jars() -> list[str]:
    found = sorted(str(p) for p in JAR_DIR.glob("*.jar"))
    if not found:
        raise FileNotFoundError(f"no jars in {JAR_DIR}: run `make setup` (it resolves the jars "
                                "listed in stack/jars/pom.xml from Maven Central)")
    return found


def spark_conf(cfg: Config) -> dict[str, str]:
    conf = {
        "spark.master": cfg.spark.master,
        "spark.driver.memory": cfg.spark.driver_memory,
        "spark.sql.shuffle.partitions": str(cfg.spark.shuffle_partitions),
        "spark.jars": ",".join(jars()),
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        # No deletion vectors on new tables: measured on this machine, a MERGE into a small
        # silver table took ~3.1 s with them against ~2.0 s without (10k rows; a day of the
        # generated data at scale 0.01: 66 s against 47 s), and at scale 1 a 1% batch touches
        # nearly every file anyway (README, Benchmarks). delta.merge drops the rows it would
        # not change first, so a MERGE that changes nothing still makes no commit.
        "spark.databricks.delta.properties.defaults.enableDeletionVectors": "false",
        # Timestamps are UTC end to end (sources, lake, warehouses).
        "spark.sql.session.timeZone": "UTC",
        "spark.driver.extraJavaOptions": _java_options(
            "-Duser.timezone=UTC",
            f"-Dlog4j2.configurationFile={PROJECT_ROOT / 'conf' / 'log4j2.properties'}",
            cfg.spark.java_options),
        "spark.executor.extraJavaOptions": _java_options("-Duser.timezone=UTC",
                                                         cfg.spark.java_options),
        # Bind to loopback: traffic off 127.0.0.1 is not allowed on these machines.
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
    }
    conf.update({k: _expand(v) for k, v in cfg.spark.conf.items()})
    return conf


def _java_options(*options: str) -> str:
    return " ".join(o for o in options if o)


def _spark_home() -> str:
    # Under spark-submit, `pyspark` is imported from python/lib/pyspark.zip; SPARK_HOME (set by
    # spark-submit) is where the jars are. Elsewhere it is the installed pyspark package.
    home = os.environ.get("SPARK_HOME")
    if home and (Path(home) / "jars").is_dir():
        return home
    import pyspark

    return str(Path(pyspark.__file__).resolve().parent)


def _expand(value: str) -> str:
    """Fill ${PYSPARK_HOME}, ${PYTHON} and ${PROJECT_ROOT} in conf/<env>.yaml Spark values:
    machine paths (e.g. spark.yarn.jars=local:${PYSPARK_HOME}/jars/*) stay out of the YAML."""
    return Template(value).safe_substitute(
        PYSPARK_HOME=_spark_home(),
        PYTHON=os.environ.get("PYSPARK_PYTHON", sys.executable),
        PROJECT_ROOT=str(PROJECT_ROOT))


def session(cfg: Config, app_name: str = "ecomlake"):
    """Get or create the one Spark session of this process, configured from `cfg`."""
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(app_name)
    for key, value in spark_conf(cfg).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


def submit_args(cfg: Config) -> list[str]:
    """spark-submit flags for `cfg` (master and driver memory must be flags: the driver JVM
    starts before any Python code runs)."""
    conf = spark_conf(cfg)
    args = ["--master", conf.pop("spark.master"),
            "--driver-memory", conf.pop("spark.driver.memory"),
            "--jars", conf.pop("spark.jars")]
    for key, value in conf.items():
        args += ["--conf", f"{key}={value}"]
    return args


# Independent tables are built two at a time: most of a small batch's time is driver work
# (planning, the Delta log, commits) that leaves the executors idle; a second table fills them.
PARALLEL_TABLES = 2


def in_parallel(fn, items, workers: int = PARALLEL_TABLES) -> list:
    """[fn(item) for item in items] on `workers` threads sharing one Spark session (Spark runs
    jobs from several threads). Waits for all, then raises the first failure, so no table is
    left half-way through a commit when the job stops."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(fn, item) for item in items]
    for f in futures:
        if f.exception() is not None:
            raise f.exception()
    return [f.result() for f in futures]


if __name__ == "__main__":  # python -m ecomlake.spark submit-args <env>
    from ecomlake.config import load_config

    if len(sys.argv) != 3 or sys.argv[1] != "submit-args":
        sys.exit("usage: python -m ecomlake.spark submit-args <env>")
    print("\n".join(submit_args(load_config(sys.argv[2]))))
