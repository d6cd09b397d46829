"""Shared fixtures: one Spark session for the whole run (Delta configured, as the jobs have it),
the validated config, and throwaway lakes under pytest's tmp_path."""
from __future__ import annotations

import os

import pytest

from ecomlake.config import PROJECT_ROOT, load_config

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
CAPSTONE = PROJECT_ROOT.parent / "shared" / "capstone"


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
