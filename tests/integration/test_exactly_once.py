"""Nothing lost, nothing counted twice, against the real MySQL and MongoDB servers with real
connections and real timing: a transaction open across the bronze read, writers updating rows
while the parallel partitions are read, a row committed with an old `updated_at`, a loss in the
lake, a mass deletion, an empty snapshot, a bad update, an older run date rerun after newer
ones, odd MySQL values. Every expected value is computed from the sources with plain SQL or
pymongo.

Most scenarios share one lake and one sequence of run dates (`story`, below), as a real lake
lives through them one after another: each day's fixture makes its changes in the sources, runs
the pipeline and records what the lake held then; each test checks one day's record. The
writer racing the partitioned read needs more rows and keeps a lake of its own."""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
import random
import threading
import time
from decimal import Decimal

import pytest
from pyspark.sql import functions as F

from ecomlake import pipeline, runner
from ecomlake.config import load_config
from ecomlake.errors import MassDeleteError
from ecomlake.io import delta, mongo, mysql
from ecomlake.ops.sources import capstone

from tests.conftest import source_sql

D1 = dt.date(2026, 3, 1)
BRONZE_SILVER = ["bronze", "silver"]


def day(k: int) -> dt.date:
    return D1 + dt.timedelta(days=k - 1)


def lake(tmp_path):
    return load_config("local", overrides={"lake": {"root": str(tmp_path / "lake")}})


def run(spark, cfg, k, stages=BRONZE_SILVER, **kw):
    r = pipeline.Run(run_date=day(k), ingested_at=dt.datetime(2026, 3, 1), **kw)
    return pipeline.run_stages(spark, cfg, r, stages)


def source_sales(src) -> dict[int, tuple]:
    return {int(i): (Decimal(p), q) for i, p, q in
            source_sql(src, "SELECT id, price, quantity FROM sales_data")}


def silver_sales(spark, cfg) -> dict[int, tuple]:
    return {r.id: (r.price, r.quantity) for r in
            delta.read(spark, cfg, "silver.sales_data").select("id", "price", "quantity").collect()}


def versions(spark, cfg, tables):
    return {t: delta.version(spark, cfg, t) for t in tables}


STAGES = ["bronze", "silver", "gold"]
ODD = {900001: ("0.01", 2147483647), 900002: ("9999999999.99", 1)}   # INT max, DECIMAL max
ODD_BAD = {900003: "0000-00-00 00:00:00", 900004: "9999-12-31 23:59:59"}   # zero date, max


class Story:
    """One lake over the course data, and what each day left in it."""

    def __init__(self, spark, src, cfg):
        self.spark, self.src, self.cfg = spark, src, cfg
        self.seen = {}

    def run(self, k, **kw):
        return run(self.spark, self.cfg, k, STAGES, **kw)

    def silver(self):
        return silver_sales(self.spark, self.cfg)

    def expected_silver(self):
        """The source's sale lines as silver must hold them: the rows that break a rule stay
        out (quarantined), and id 5 keeps its last good version."""
        want = {i: v for i, v in source_sales(self.src).items() if i not in ODD_BAD}
        if 5 in want:
            want[5] = self.seen["good_sale_5"]
        return want


@pytest.fixture(scope="module")
def story(spark, cfg, tmp_path_factory):
    capstone.load(cfg)
    yield Story(spark, cfg, lake(tmp_path_factory.mktemp("exactly-once")))
    capstone.load(cfg)   # leave the course data in the sources for the other tests


@pytest.fixture(scope="module")
def day_1(story):
    """Odd values committed before the first run: type limits, a zero date, DATETIME's max."""
    conn = mysql.connect(story.src, loader=True)
    try:
        cur = conn.cursor()
        cur.execute("SET SESSION sql_mode = ''")   # lets MySQL store zero dates, as old apps do
        cur.executemany(
            "INSERT INTO sales_data (id, product_id, customer_id, price, quantity, `timestamp`) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            [(i, 1, 1, p, q, "2020-01-01 00:00:00") for i, (p, q) in ODD.items()]
            + [(i, 1, 1, "1.00", 1, ts) for i, ts in ODD_BAD.items()])
        conn.commit()
    finally:
        conn.close()
    story.run(1)
    story.seen["day1_silver"] = story.silver()
    story.seen["day1_quarantine"] = {r.id: r._failed_rules for r in delta.read(
        story.spark, story.cfg, "silver.sales_data_quarantine").collect()}
    story.seen["good_sale_5"] = story.seen["day1_silver"][5]
    return story


@pytest.fixture(scope="module")
def day_2(day_1):
    """Before the run: a bad update among 40 good ones, 5 deletions, a row committed with an
    `updated_at` older than the stored mark, rows lost from silver itself, a catalog document
    updated with a wrong type and one deleted. During the run: a transaction open across the
    read, holding 10 new rows."""
    s = day_1
    spark, cfg, src = s.spark, s.cfg, s.src
    source_sql(src, "UPDATE sales_data SET price = -1 WHERE id = 5")
    source_sql(src, "UPDATE sales_data SET price = price + 1 WHERE id BETWEEN 6 AND 45")
    source_sql(src, "DELETE FROM sales_data WHERE id BETWEEN 46 AND 50")
    # No watermark reads this row again (a restore, a clock step, a bug): only the
    # reconciliation can bring it.
    source_sql(src, "INSERT INTO sales_data (id, product_id, customer_id, price, quantity, "
                    "`timestamp`, updated_at) VALUES (800001, 3000, 9, 30.00, 3, "
                    "'2020-06-06 10:00:00', '2001-01-01 00:00:00')")
    lost = {i for i in s.silver() if i % 100 == 0}
    spark.sql(f"DELETE FROM delta.`{delta.path(cfg, 'silver.sales_data')}` WHERE id % 100 = 0")
    s.seen["lost"] = lost | {800001}
    with mongo.client(src) as c:
        coll = c[src.mongo.database]["electronics"]
        first, second = coll.find().sort("_id", 1).limit(2)
        coll.update_one({"_id": first["_id"]}, {"$set": {"price": "twelve"}})
        coll.delete_one({"_id": second["_id"]})
    s.seen["bad_doc"], s.seen["deleted_doc"] = str(first["_id"]), str(second["_id"])
    s.seen["good_doc"] = delta.read(spark, cfg, "silver.electronics").filter(
        F.col("_id") == s.seen["bad_doc"]).collect()
    # The open transaction starts a second after the changes above: innodb_trx's start time
    # has whole seconds, and the mark must not fall before them.
    time.sleep(1.1)
    a = mysql.connect(src, loader=True)
    try:
        a.autocommit = False
        cur = a.cursor()
        cur.executemany("INSERT INTO sales_data (product_id, customer_id, price, quantity, "
                        "`timestamp`) VALUES (%s, %s, %s, %s, %s)",
                        [(1000 + i, 7, "10.00", 1, "2020-05-05 10:00:00") for i in range(10)])
        cur.execute("SELECT id FROM sales_data WHERE product_id >= 1000 AND customer_id = 7")
        s.seen["a_ids"] = {int(r[0]) for r in cur.fetchall()}
        time.sleep(1.2)
        s.seen["day2_source_keys"] = len(source_sales(src))   # A's rows not committed yet
        s.run(2)
        s.seen["day2_silver"] = s.silver()
        s.seen["day2_expected"] = s.expected_silver()
        a.commit()                     # A commits after the read, with updated_at before it
    finally:
        a.close()
    return s


@pytest.fixture(scope="module")
def day_3(day_2):
    s = day_2
    s.run(3)
    s.seen["day3_expected"] = s.expected_silver()
    return s


@pytest.fixture(scope="module")
def day_1_again(day_3):
    """Day 1 rerun after days 2 and 3 (a retried or re-dated run): no table may change."""
    s = day_3
    tables = ["silver.sales_data", "silver.electronics", "silver.electronics_history",
              "gold.FactSales", "gold.DimItem", "gold.monthly_sales"]

    def content():
        return {t: sorted(map(repr, delta.read(s.spark, s.cfg, t).drop("_batch_id").collect()))
                for t in tables}

    s.seen["before_rerun"] = content()
    s.run(1)
    s.seen["after_rerun"] = content()
    return s


def test_odd_mysql_values_end_in_quarantine_or_intact_in_silver(day_1):
    silver = day_1.seen["day1_silver"]
    for i, (price, quantity) in ODD.items():
        assert silver[i] == (Decimal(price), quantity)
    assert day_1.seen["day1_quarantine"] == {i: ["timestamp_plausible"] for i in ODD_BAD}


def test_every_mysql_table_of_a_run_is_read_up_to_one_high_water_mark(day_1):
    """The run takes one mark, before any table is read: every incremental MySQL table's batch
    records that same mark (marks taken per table differ by at least the settle wait), and it
    came from the server's clock, so it is not later than the server's clock now."""
    from ecomlake.config import load_tables
    mysql_tables = sorted(n for n, s in load_tables().items()
                          if s.source == "mysql" and s.incremental)
    assert len(mysql_tables) > 1
    marks = {r["table"]: r["watermark"] for r in delta.read(
        day_1.spark, day_1.cfg, "bronze._batches").filter(
            F.col("_batch_id") == day(1).isoformat()).collect()}
    assert sorted(t for t in marks if t in mysql_tables) == mysql_tables
    assert len({marks[t] for t in mysql_tables}) == 1, marks
    (now,) = source_sql(day_1.src, "SELECT UTC_TIMESTAMP(3)")[0]
    assert marks[mysql_tables[0]] <= now


def test_a_loss_in_the_lake_heals_on_the_next_run(day_2):
    s = day_2
    assert s.seen["day2_silver"] == s.seen["day2_expected"]
    recovered = (delta.read(s.spark, s.cfg, "bronze.sales_data")
                 .filter((F.col("_batch_id") == day(2).isoformat())
                         & F.col("_source").endswith("(recovered)")))
    assert {r.id for r in recovered.select("id").collect()} == s.seen["lost"]
    state = delta.read(s.spark, s.cfg, "bronze._batches").filter(
        (F.col("table") == "sales_data") & (F.col("_batch_id") == day(2).isoformat())).collect()
    assert state[0]["recovered"] == len(s.seen["lost"])
    assert state[0]["source_keys"] == s.seen["day2_source_keys"]


def test_a_bad_update_keeps_the_last_good_version_and_a_deletion_closes_history(day_2):
    s = day_2
    spark, cfg = s.spark, s.cfg
    assert s.seen["day2_silver"][5] == s.seen["good_sale_5"]
    assert all(s.seen["day2_silver"][i] == s.seen["day2_expected"][i] for i in range(6, 46))
    assert not set(range(46, 51)) & set(s.seen["day2_silver"])           # deletions applied
    q = delta.read(spark, cfg, "silver.sales_data_quarantine").filter("id = 5").collect()
    assert [r._failed_rules for r in q] == [["price_positive"]]
    assert delta.read(spark, cfg, "silver.electronics").filter(
        F.col("_id") == s.seen["bad_doc"]).collect() == s.seen["good_doc"]
    history = delta.read(spark, cfg, "silver.electronics_history").filter(
        F.col("_id") == s.seen["deleted_doc"]).collect()
    assert [(r.is_current, r.valid_to) for r in history] == [(False, dt.datetime(2026, 3, 3))]
    assert delta.read(spark, cfg, "silver.electronics").filter(
        F.col("_id") == s.seen["deleted_doc"]).count() == 0


def test_rows_of_a_transaction_open_across_the_read_are_not_lost(day_3):
    s = day_3
    assert not s.seen["a_ids"] & set(s.seen["day2_silver"])          # not read uncommitted
    assert s.silver() == s.seen["day3_expected"]
    assert s.seen["a_ids"] <= set(s.silver())
    # A's rows came through the high-water mark, as ordinary rows of day 3's batch, not through
    # the reconciliation's recovery
    third = (delta.read(s.spark, s.cfg, "bronze.sales_data")
             .filter(F.col("_batch_id") == day(3).isoformat())
             .filter(F.col("id").isin(list(s.seen["a_ids"]))))
    assert {r._source for r in third.select("_source").distinct().collect()} == \
        {f"mysql:{s.src.mysql.database}.sales_data"}
    assert third.count() == len(s.seen["a_ids"])


def test_an_older_run_date_rerun_after_newer_ones_changes_no_table(day_1_again):
    s = day_1_again
    assert s.seen["after_rerun"] == s.seen["before_rerun"]
    assert s.silver() == s.expected_silver()


def test_a_mass_deletion_and_an_empty_catalog_stop_the_run_and_change_nothing(day_1_again):
    s = day_1_again
    spark, cfg, src = s.spark, s.cfg, s.src
    tables = ["silver.sales_data", "silver.electronics", "silver.electronics_history",
              "gold.FactSales", "gold.DimItem"]
    before = versions(spark, cfg, tables)
    n_silver = len(s.silver())
    source_sql(src, "DELETE FROM sales_data WHERE id % 2 = 0")
    with pytest.raises(MassDeleteError, match=r"sales_data: .* of silver.sales_data's "
                                              rf"{n_silver} keys .*--allow-mass-delete"):
        s.run(4)
    assert versions(spark, cfg, tables) == before
    # the job, as spark-submit runs it: exit 2, the reason in its log, the warehouse untouched
    from ecomlake.io.warehouse import PostgresWarehouse
    wh = PostgresWarehouse(cfg)

    def publish_log():
        conn = wh.connect()
        try:
            if not wh.table_exists(conn, wh.PUBLISH_LOG):
                return []
            return conn.query(f"SELECT * FROM {wh.qualified(wh.PUBLISH_LOG)}")
        finally:
            conn.close()

    logged = publish_log()
    records = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())
    logging.getLogger().addHandler(handler)
    overrides = json.loads(os.environ.get("ECOMLAKE_OVERRIDES") or "{}")
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("ECOMLAKE_OVERRIDES", json.dumps({**overrides,
                                                        "lake": {"root": cfg.lake_root}}))
            code = runner.main("pipeline", "test", ["bronze", "silver", "gold", "publish"],
                               ["--run-date", day(4).isoformat(), "--target", "postgres"])
    finally:
        logging.getLogger().removeHandler(handler)
    assert code == runner.EXIT_STOPPED
    assert any("--allow-mass-delete" in m for m in records)
    assert versions(spark, cfg, tables) == before
    assert publish_log() == logged
    # allowed once, the deletions go through
    s.run(4, allow_mass_delete=True)
    assert s.silver() == s.expected_silver()

    # an empty catalog: the snapshot would delete every product
    with mongo.client(src) as c:
        c[src.mongo.database]["electronics"].drop()
    before = versions(spark, cfg, tables)
    with pytest.raises(MassDeleteError, match="electronics: the source has no keys at all"):
        s.run(5)
    assert versions(spark, cfg, tables) == before


# -- the writer racing the partitioned read: a lake and a larger table of its own --------------

@pytest.fixture
def course(cfg):
    """The course data in the sources, fresh for the test (it changes the sources)."""
    capstone.load(cfg)
    yield cfg
    capstone.load(cfg)


def test_rows_updated_while_the_partitions_are_read_are_not_lost(spark, course, tmp_path):
    """160k sales lines are read in 4 JDBC partitions; a writer updates random rows, one commit
    every few milliseconds, all through the read. The next run must leave silver equal to the
    source, value for value."""
    for _ in range(6):   # 2,605 course lines doubled 6 times: 166,720 lines
        source_sql(course, "INSERT INTO sales_data (product_id, customer_id, price, quantity, "
                           "`timestamp`) SELECT product_id, customer_id, price, quantity, "
                           "`timestamp` FROM sales_data")
    cfg = lake(tmp_path)
    run(spark, cfg, 1)
    max_id = source_sql(course, "SELECT MAX(id) FROM sales_data")[0][0]
    stop, updated = threading.Event(), []

    def writer():
        conn = mysql.connect(course, loader=True)
        cur = conn.cursor()
        r = random.Random(3)
        while not stop.is_set():
            i = r.randint(1, max_id)
            cur.execute("UPDATE sales_data SET price = price + 0.01 WHERE id = %s", (i,))
            conn.commit()
            updated.append(i)
            time.sleep(0.005)
        conn.close()

    t = threading.Thread(target=writer)
    t.start()
    try:
        run(spark, cfg, 2)
    finally:
        stop.set()
        t.join()
    assert len(updated) > 50, "the writer did not overlap the read"
    run(spark, cfg, 3)
    assert silver_sales(spark, cfg) == source_sales(course)


