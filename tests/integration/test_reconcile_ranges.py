"""The cheap paths of bronze against the real MySQL server: the per-key-range figures MySQL and
Spark compute agree with plain Python; a reconciliation reads the source's keys only for the
ranges that differ and still finds every missing and every deleted key; a rerun whose window the
source left as it was keeps its batch without reading it, and one whose window changed reads it
again. Expected values come from plain SQL on the source and from Python's zlib and hashlib."""
from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
import zlib
from decimal import Decimal

import pytest
from pyspark.sql import functions as F

from ecomlake import pipeline, reconcile
from ecomlake.config import load_config
from ecomlake.io import delta, mysql
from ecomlake.ops.sources import capstone

from tests.conftest import source_sql

D1, D2 = dt.date(2026, 5, 1), dt.date(2026, 5, 2)


class Logged(logging.Handler):
    """The messages of the `ecomlake` loggers while in use."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())

    def __enter__(self):
        logger = logging.getLogger("ecomlake")
        self._level = logger.level
        logger.setLevel(logging.INFO)
        logger.addHandler(self)
        return self

    def __exit__(self, *exc):
        logging.getLogger("ecomlake").removeHandler(self)
        logging.getLogger("ecomlake").setLevel(self._level)

    def grep(self, pattern):
        return [m for m in self.messages if re.search(pattern, m)]


@pytest.fixture(scope="module")
def course(cfg):
    capstone.load(cfg)
    yield cfg
    capstone.load(cfg)   # leave the course data as it was for the other tests


@pytest.fixture(scope="module")
def lake(course, tmp_path_factory):
    return load_config("local", overrides={
        "lake": {"root": str(tmp_path_factory.mktemp("ranges") / "lake")}})


def bronze(spark, cfg, day):
    r = pipeline.Run(run_date=day, ingested_at=dt.datetime(2026, 5, 1), sources=("mysql",))
    with Logged() as logged:
        pipeline.run_stages(spark, cfg, r, ["bronze"])
    return logged


def python_figures(rows, width):
    """mysql.key_range_summary's figures, computed in plain Python from the key values."""
    out = {}
    for key in rows:
        text = ",".join(str(int(v)) for v in key).encode()
        n, crc, md5 = out.get(int(key[0]) // width, (0, 0, 0))
        out[int(key[0]) // width] = (n + 1, crc + zlib.crc32(text),
                                     md5 ^ int(hashlib.md5(text).hexdigest()[:15], 16))
    return out


def test_mysql_and_spark_compute_the_range_figures_plain_python_does(spark, course):
    keys, width = ["id", "product_id"], 97   # a two-column key, ranges that cut anywhere
    expected = python_figures(source_sql(course, "SELECT id, product_id FROM sales_data"), width)
    assert len(expected) > 10
    assert mysql.key_range_summary(course, "sales_data", keys, "id", width) == expected
    df = mysql.read_keys(spark, course, "sales_data", keys, "id")
    got = df.groupBy(reconcile.key_range("id", width).alias("r")).agg(
        *reconcile.range_figures(keys, "id", width, [])).collect()
    assert {r["r"]: (r["n"], r["crc"], r["md5"]) for r in got} == expected


@pytest.fixture(scope="module")
def day_1(spark, lake):
    """Day 1's bronze batch, then its rerun with the source as it was."""
    first = bronze(spark, lake, D1)
    version = delta.latest_version(spark, lake, "bronze.sales_data")
    again = bronze(spark, lake, D1)
    return first, again, version


def test_a_rerun_of_an_untouched_window_keeps_its_batch_without_reading_it(spark, lake, day_1):
    first, again, version = day_1
    n = source_sql(lake, "SELECT COUNT(*) FROM sales_data")[0][0]
    assert first.grep(rf"bronze.sales_data: batch {D1} has {n} rows")
    assert again.grep(rf"bronze.sales_data: batch {D1} is there .* \({n} rows stamped up to "
                      r"its mark .*, none after\): kept without reading")
    assert not again.grep(r"reading every column of \d+ rows of sales_data")
    assert delta.latest_version(spark, lake, "bronze.sales_data") == version


def test_a_rerun_after_a_change_in_its_window_reads_it_again(spark, lake, day_1):
    source_sql(lake, "UPDATE sales_data SET price = 777.77 WHERE id = 7")
    logged = bronze(spark, lake, D1)
    assert not logged.grep("sales_data: .*kept without reading")
    assert logged.grep(rf"bronze.sales_data: batch {D1} is there from an earlier attempt: "
                       "replacing it")
    batch = delta.read(spark, lake, "bronze.sales_data").filter(
        (F.col("_batch_id") == D1.isoformat()) & (F.col("id") == 7)).collect()
    assert [r.price for r in batch] == [Decimal("777.77")]


@pytest.fixture(scope="module")
def day_2(spark, lake, day_1):
    """Silver as day 1 left it, less three keys lost in the lake; two rows deleted in the
    source; then day 2's bronze, whose own window is empty."""
    batch = delta.read(spark, lake, "bronze.sales_data").filter(
        F.col("_batch_id") == D1.isoformat())
    ids = sorted(r.id for r in batch.select("id").collect())
    lost, deleted = {ids[10], ids[1000], ids[2000]}, {ids[500], ids[1500]}
    delta.overwrite(batch.filter(~F.col("id").isin(list(lost))).select("id"), lake,
                    "silver.sales_data")
    source_sql(lake, f"DELETE FROM sales_data WHERE id IN ({', '.join(map(str, deleted))})")
    return bronze(spark, lake, D2), lost, deleted


def test_a_reconciliation_reads_only_the_ranges_that_differ_and_finds_every_key(spark, lake,
                                                                                day_2):
    logged, lost, deleted = day_2
    (ranges,) = logged.grep(r"reconciliation sales_data: \d+ key ranges")
    total, width, differ = map(int, re.search(
        r"(\d+) key ranges of (\d+) values, (\d+) differ", ranges).groups())
    assert differ <= len(lost | deleted) < total / 2
    # only the keys of those ranges crossed the wire
    (read,) = logged.grep(r"reading `id` of \d+ rows of sales_data")
    assert int(re.search(r"of (\d+) rows", read).group(1)) <= differ * width
    d2 = delta.read(spark, lake, "bronze.sales_data").filter(F.col("_batch_id") == D2.isoformat())
    assert {r.id for r in d2.filter(F.col("_source").endswith("(recovered)")).collect()} == lost
    gone = delta.read(spark, lake, "bronze.sales_data_deletes").filter(
        F.col("_batch_id") == D2.isoformat())
    assert {r.id for r in gone.collect()} == deleted
    n_source = source_sql(lake, "SELECT COUNT(*) FROM sales_data")[0][0]
    state = delta.read(spark, lake, "bronze._batches").filter(
        (F.col("table") == "sales_data") & (F.col("_batch_id") == D2.isoformat())).collect()
    assert (state[0]["source_keys"], state[0]["recovered"], state[0]["deleted"]) == \
        (n_source, len(lost), len(deleted))


def test_a_key_past_bigint_is_compared_key_by_key_not_by_range(spark, lake, day_2):
    """BIGINT UNSIGNED holds keys Spark's BIGINT cannot: such a table falls back to comparing
    every key (ranges are BIGINT arithmetic), and the run neither fails nor loses the row."""
    huge = 2**63
    source_sql(lake, "INSERT INTO sales_data (id, product_id, customer_id, price, quantity, "
                     f"`timestamp`) VALUES ({huge}, 1, 1, 1.00, 1, '2020-01-01 00:00:00')")
    try:
        logged = bronze(spark, lake, D2 + dt.timedelta(days=1))
    finally:
        source_sql(lake, f"DELETE FROM sales_data WHERE id = {huge}")
    assert not logged.grep(r"reconciliation sales_data: \d+ key ranges")
    n = source_sql(lake, "SELECT COUNT(*) FROM sales_data")[0][0] + 1   # with the huge key
    assert logged.grep(rf"reconciliation sales_data, batch \S+: source keys {n};")
    d3 = delta.read(spark, lake, "bronze.sales_data").filter(
        F.col("_batch_id") == (D2 + dt.timedelta(days=1)).isoformat())
    # read by the window (the keys day 2 recovered are recovered again: silver was not rebuilt)
    assert [int(r.id) for r in d3.filter(~F.col("_source").endswith("(recovered)"))
            .select("id").collect()] == [huge]
