"""Shared fixtures: one Spark session for the whole run (Delta configured, as the jobs have it),
the validated config, and throwaway lakes under pytest's tmp_path."""
from __future__ import annotations

import os

import pytest

from ecomlake.config import PROJECT_ROOT, load_config

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
CAPSTONE = PROJECT_ROOT / "data" / "capstone"   # the course files, carried in the repository


@pytest.fixture(scope="session")
def cfg():
    return load_config("local")


@pytest.fixture(scope="session")
def spark(cfg):
    from ecomlake.spark import session

    s = session(load_config("local", overrides={"spark": {"master": "local[2]"}}), "ecomlake-tests")
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


COURSE_RUN_DATE = "2026-11-25"


class CourseLake:
    """The course data run through `./spark-submit.sh pipeline` into a throwaway lake: its
    config, and the environment (ECOMLAKE_OVERRIDES) that points a job or notebook at it."""

    def __init__(self, root):
        import json

        self.root = root
        self.cfg = load_config("local", overrides={"lake": {"root": str(root)}})
        self.env = {"ECOMLAKE_OVERRIDES": json.dumps({"lake": {"root": str(root)}})}

    def submit(self, job, *args, timeout=900):
        import subprocess

        proc = subprocess.run([str(PROJECT_ROOT / "spark-submit.sh"), job, *args],
                              capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, **self.env})
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        return proc


@pytest.fixture(scope="session")
def course_lake(tmp_path_factory):
    """One pipeline run over the course data for the whole test session (gold, analytics, and
    the PostgreSQL publish). Tests that need the warehouse to hold exactly this run's tables
    re-publish with `course_lake.submit("publish", "--target", "postgres")` in their own module
    fixture, because other tests publish generated data to the same local warehouse."""
    from ecomlake.sources import capstone

    lake = CourseLake(tmp_path_factory.mktemp("course") / "lake")
    capstone.load(load_config("local"))
    lake.submit("pipeline", "--run-date", COURSE_RUN_DATE, "--target", "postgres")
    return lake
