"""Shared fixtures: one Spark session for the whole run (Delta configured, as the jobs have it),
the validated config, and throwaway lakes under pytest's tmp_path."""
from __future__ import annotations

import os

import pytest

from ecomlake.config import PROJECT_ROOT, load_config

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")

# Every job a test starts (spark-submit.sh, Airflow's tasks, the notebook's kernel, YARN's
# executors: they inherit $ECOMLAKE_OVERRIDES) runs with C1-only JIT and the serial GC. On the
# tests' small data such a short-lived JVM is mostly warm-up: the course lake's gold job took
# 38 s wall and 54 s of CPU against 44 s and 79 s. The session's own Spark (the `spark`
# fixture) keeps C2: it lives for the whole suite and does most of its work, and with C1 the
# medallion and exactly-once modules took ~40 % longer. The jobs keep the JVM's defaults: at
# scale 1 (1M sales lines) C1-only is 19 % slower (141 s against 118 s).
TEST_JAVA_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"

CAPSTONE = PROJECT_ROOT / "data" / "capstone"   # the course files, carried in the repository


@pytest.fixture(scope="session")
def cfg():
    return load_config("local")


@pytest.fixture(scope="session")
def spark(cfg):
    from ecomlake.spark import session

    # C2 here (no TEST_JAVA_OPTIONS): this JVM runs for the whole suite
    s = session(load_config("local", overrides={"spark": {"master": "local[2]", "java_options": ""}}),
                "ecomlake-tests")
    yield s
    s.stop()


@pytest.fixture
def lake_cfg(tmp_path):
    """The local config with the lake in a fresh temporary folder."""
    return load_config("local", overrides={"lake": {"root": str(tmp_path / "lake")}})


def published(cfg):
    """public.sales_by_product as the warehouse holds it, read on a connection closed at once
    (an open reader would block the next publish's swap)."""
    from ecomlake.io.warehouse import PostgresWarehouse

    conn = PostgresWarehouse(cfg).connect()
    try:
        return conn.query("SELECT * FROM public.sales_by_product ORDER BY product_id")
    finally:
        conn.close()


def warehouse_query(wh, sql):
    """Rows of `sql` on warehouse `wh`, on a connection closed at once (an open reader would
    block the next publish's swap)."""
    conn = wh.connect()
    try:
        return conn.query(sql)
    finally:
        conn.close()


def source_sql(src, sql, params=()):
    """Rows of `sql` (None for a statement without rows) on the MySQL sources of `src`, as the
    loader account (the pipeline's own account may only read), committed."""
    from ecomlake.io import mysql

    conn = mysql.connect(src, loader=True)
    try:
        cur = conn.cursor()
        cur.execute(sql, params)
        rows = cur.fetchall() if cur.with_rows else None
        conn.commit()
        return rows
    finally:
        conn.close()


def overrides_env(**sections) -> dict:
    """The environment that points a subprocess (job, DAG run, notebook) at `sections`, e.g.
    lake={"root": ...}: merged over the caller's own $ECOMLAKE_OVERRIDES (which may point the
    sources at other databases), not replacing it."""
    import json

    import yaml

    def merge(base, over):
        out = dict(base)
        for k, v in over.items():
            out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
        return out

    own = yaml.safe_load(os.environ.get("ECOMLAKE_OVERRIDES") or "{}") or {}
    return {"ECOMLAKE_OVERRIDES": json.dumps(merge(own, sections))}


# Set once for the whole suite, merged over the developer's own $ECOMLAKE_OVERRIDES.
os.environ.update(overrides_env(spark={"java_options": TEST_JAVA_OPTIONS}))

COURSE_RUN_DATE = "2026-11-25"


def sources_stamp(cfg) -> tuple:
    """What the sources of `cfg` hold, as a value that changes with every load: MySQL's
    CHECKSUM TABLE (every column, `updated_at` too, which each load stamps anew) and a hash of
    the MongoDB catalog's documents."""
    import hashlib

    from ecomlake.io import mongo, mysql

    conn = mysql.connect(cfg)
    try:
        cur = conn.cursor()
        cur.execute("CHECKSUM TABLE sales_data, customers, inventory")
        tables = tuple(cur.fetchall())
    finally:
        conn.close()
    with mongo.client(cfg) as c:
        docs = sorted(map(repr, c[cfg.mongo.database]["electronics"].find()))
    return tables, hashlib.sha256("\n".join(docs).encode()).hexdigest()


class ArgvWatcher:
    """Every process's command line, sampled by `ps` in a thread until stopped."""

    def __init__(self, interval: float = 0.2):
        import threading

        self.interval, self.seen, self.samples = interval, set(), 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        import subprocess

        while not self._stop.is_set():
            ps = subprocess.run(["ps", "-eww", "-o", "args="], capture_output=True, text=True)
            self.seen.update(ps.stdout.splitlines())
            self.samples += 1
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def stack_secrets(cfg) -> dict[str, str]:
    """Every secret the stack generated (stack.env), as the servers use them."""
    from ecomlake.config import STACK_ENV_FILE, read_env_file

    values = read_env_file(cfg.stack_dir / STACK_ENV_FILE)
    assert values, f"no {cfg.stack_dir / STACK_ENV_FILE}: run `ecomlake stack up`"
    return {k: os.environ.get(k, v) for k, v in values.items()}


class CourseLake:
    """The course data run through `./spark-submit.sh pipeline` into a throwaway lake: its
    config, and the environment (ECOMLAKE_OVERRIDES) that points a job or notebook at it."""

    def __init__(self, root):
        self.root = root
        self.cfg = load_config("local", overrides={"lake": {"root": str(root)}})
        self.env = overrides_env(lake={"root": str(root)})
        self.sources = None
        self.events = root.parent / "events"   # the Spark event log of the last build
        self.watched = None                     # (process, ArgvWatcher) of the last build

    def submit(self, job, *args, timeout=1800, env=None):
        import subprocess

        proc = subprocess.run([str(PROJECT_ROOT / "spark-submit.sh"), job, *args],
                              capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, **(env or self.env)})
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        return proc

    def publish(self, spark, *targets):
        """Publish this lake's gold to `targets` again, in the test session's Spark (the same
        stage the pipeline job runs): other tests publish to the same warehouses, so tables
        they replaced come back; those still as this lake published them are skipped."""
        import datetime as dt

        from ecomlake import pipeline

        run = pipeline.Run(run_date=dt.date.fromisoformat(COURSE_RUN_DATE),
                           ingested_at=dt.datetime.now(), targets=targets)
        pipeline.stage_publish(spark, self.cfg, run)

    def build(self):
        """Load the course data into the sources and run the pipeline for COURSE_RUN_DATE, as
        `make demo` does (every stage, both warehouses)."""
        from ecomlake.ops.sources import capstone

        capstone.load(self.cfg)
        self.sources = sources_stamp(self.cfg)
        # The run is also the security tests' witness (tests/integration/test_security.py): its
        # passwords come through the environment, as Airflow and CI give them, its Spark event
        # log is on (plain JSON lines), and `ps` watches every command line while it runs.
        self.events.mkdir(parents=True, exist_ok=True)
        env = {**stack_secrets(self.cfg), **overrides_env(
            lake={"root": str(self.root)},
            spark={"conf": {"spark.eventLog.enabled": "true", "spark.eventLog.compress": "false",
                            "spark.eventLog.dir": self.events.as_uri()}})}
        with ArgvWatcher() as watcher:
            proc = self.submit("pipeline", "--run-date", COURSE_RUN_DATE, env=env)
        self.watched = (proc, watcher)

    def current(self):
        """This lake, with the sources holding exactly the rows it was built from, as a test
        needs that runs the date again or compares another run with this lake. Each load of
        the course data stamps new `updated_at` values: when the sources were loaded since
        (tests load generated data, then the course data again), load and run the date again."""
        if sources_stamp(self.cfg) != self.sources:
            self.build()
        return self


@pytest.fixture(scope="session")
def course_lake(tmp_path_factory):
    """One pipeline run over the course data for the whole test session (bronze to gold,
    analytics, and the publish to both warehouses). Tests that need the warehouse to hold
    exactly this run's tables re-publish with `course_lake.submit("publish", "--target",
    "postgres")` in their own module fixture, because other tests publish generated data to
    the same local warehouse; tests that run the date again or compare a run of their own with
    this lake call `course_lake.current()` first."""
    lake = CourseLake(tmp_path_factory.mktemp("course") / "lake")
    lake.build()
    return lake
