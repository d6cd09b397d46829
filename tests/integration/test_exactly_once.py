"""Nothing lost, nothing counted twice, against the real MySQL and MongoDB servers with real
connections and real timing: a transaction open across the bronze read, writers updating rows
while the parallel partitions are read, a row committed with an old `updated_at`, a loss in the
lake, a mass deletion, an empty snapshot, a bad update, an older run date rerun after newer
ones. Every expected value is computed from the sources with plain SQL or pymongo."""
from __future__ import annotations

import datetime as dt
import json
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

D1 = dt.date(2026, 3, 1)
BRONZE_SILVER = ["bronze", "silver"]


def day(k: int) -> dt.date:
    return D1 + dt.timedelta(days=k - 1)


def lake(tmp_path):
    return load_config("local", overrides={"lake": {"root": str(tmp_path / "lake")}})


def run(spark, cfg, k, stages=BRONZE_SILVER, **kw):
    r = pipeline.Run(run_date=day(k), ingested_at=dt.datetime(2026, 3, 1), **kw)
    return pipeline.run_stages(spark, cfg, r, stages)


def source_sql(src, sql, params=()):
    conn = mysql.connect(src, loader=True)   # the sources are written by the loader account
    try:
        cur = conn.cursor()
        cur.execute(sql, params)
        rows = cur.fetchall() if cur.with_rows else None
        conn.commit()
        return rows
    finally:
        conn.close()


def source_sales(src) -> dict[int, tuple]:
    return {int(i): (Decimal(p), q) for i, p, q in
            source_sql(src, "SELECT id, price, quantity FROM sales_data")}


def silver_sales(spark, cfg) -> dict[int, tuple]:
    return {r.id: (r.price, r.quantity) for r in
            delta.read(spark, cfg, "silver.sales_data").select("id", "price", "quantity").collect()}


def versions(spark, cfg, tables):
    return {t: delta.version(spark, cfg, t) for t in tables}


@pytest.fixture
def course(cfg):
    """The course data in the sources, fresh for each test (tests change the sources)."""
    capstone.load(cfg)
    yield cfg
    capstone.load(cfg)


def test_rows_of_a_transaction_open_across_the_read_are_not_lost(spark, course, tmp_path):
    cfg = lake(tmp_path)
    run(spark, cfg, 1)
    a = mysql.connect(course, loader=True)
    try:
        a.autocommit = False
        cur = a.cursor()
        cur.executemany("INSERT INTO sales_data (product_id, customer_id, price, quantity, "
                        "`timestamp`) VALUES (%s, %s, %s, %s, %s)",
                        [(1000 + i, 7, "10.00", 1, "2020-05-05 10:00:00") for i in range(10)])
        cur.execute("SELECT id FROM sales_data WHERE product_id >= 1000 AND customer_id = 7")
        a_ids = {int(r[0]) for r in cur.fetchall()}
        time.sleep(1.2)
        source_sql(course, "INSERT INTO sales_data (product_id, customer_id, price, quantity, "
                           "`timestamp`) VALUES (2000, 8, 20.00, 2, '2020-05-06 10:00:00')")
        run(spark, cfg, 2)             # sees B's committed row, not A's
        assert not a_ids & set(silver_sales(spark, cfg))
        a.commit()                     # A commits after the read, with updated_at before it
    finally:
        a.close()
    run(spark, cfg, 3)
    assert set(silver_sales(spark, cfg)) == set(source_sales(course))
    # A's rows came through the high-water mark, as ordinary rows of day 3's batch, not through
    # the reconciliation's recovery
    third = (delta.read(spark, cfg, "bronze.sales_data")
             .filter(F.col("_batch_id") == day(3).isoformat()).filter(F.col("id").isin(list(a_ids))))
    assert {r._source for r in third.select("_source").distinct().collect()} == \
        {f"mysql:{course.mysql.database}.sales_data"}
    assert third.count() == len(a_ids)


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


def test_a_loss_in_the_lake_heals_on_the_next_run(spark, course, tmp_path):
    # day 1's mark covers the course rows just loaded, so day 2 re-reads none of them:
    # whatever day 2 brings back, the reconciliation recovered
    cfg = lake(tmp_path)
    run(spark, cfg, 1)
    # A row committed with an updated_at older than the stored mark (a restore, a clock step, a
    # bug): no watermark reads it again. And rows lost from silver itself.
    source_sql(course, "INSERT INTO sales_data (product_id, customer_id, price, quantity, "
                       "`timestamp`, updated_at) VALUES (3000, 9, 30.00, 3, "
                       "'2020-06-06 10:00:00', '2001-01-01 00:00:00')")
    spark.sql(f"DELETE FROM delta.`{delta.path(cfg, 'silver.sales_data')}` WHERE id % 100 = 0")
    lost = len(source_sales(course)) - len(silver_sales(spark, cfg))
    assert lost > 20
    run(spark, cfg, 2)
    assert silver_sales(spark, cfg) == source_sales(course)
    recovered = (delta.read(spark, cfg, "bronze.sales_data")
                 .filter((F.col("_batch_id") == day(2).isoformat())
                         & F.col("_source").endswith("(recovered)")).count())
    assert recovered == lost
    state = delta.read(spark, cfg, "bronze._batches").filter(
        (F.col("table") == "sales_data") & (F.col("_batch_id") == day(2).isoformat())).collect()
    assert state[0]["recovered"] == lost
    assert state[0]["source_keys"] == len(source_sales(course))


def test_a_mass_deletion_and_an_empty_catalog_stop_the_run_and_change_nothing(
        spark, course, tmp_path, monkeypatch, caplog):
    cfg = lake(tmp_path)
    run(spark, cfg, 1, ["bronze", "silver", "gold"])
    tables = ["silver.sales_data", "silver.electronics", "silver.electronics_history",
              "gold.FactSales", "gold.DimItem"]
    before = versions(spark, cfg, tables)
    n_sales = len(source_sales(course))
    source_sql(course, "DELETE FROM sales_data WHERE id % 2 = 0")
    with pytest.raises(MassDeleteError, match=r"sales_data: .* of silver.sales_data's "
                                              rf"{n_sales} keys .*--allow-mass-delete"):
        run(spark, cfg, 2, ["bronze", "silver", "gold"])
    assert versions(spark, cfg, tables) == before
    # the job, as spark-submit runs it: exit 2, and the warehouse untouched
    overrides = json.loads(os.environ.get("ECOMLAKE_OVERRIDES") or "{}")
    monkeypatch.setenv("ECOMLAKE_OVERRIDES", json.dumps({**overrides,
                                                         "lake": {"root": cfg.lake_root}}))
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
    code = runner.main("pipeline", "test", ["bronze", "silver", "gold", "publish"],
                       ["--run-date", day(2).isoformat(), "--target", "postgres"])
    assert code == runner.EXIT_STOPPED
    assert "--allow-mass-delete" in caplog.text
    assert versions(spark, cfg, tables) == before
    assert publish_log() == logged
    # allowed once, the deletions go through
    run(spark, cfg, 2, allow_mass_delete=True)
    assert silver_sales(spark, cfg) == source_sales(course)

    # an empty catalog: the snapshot would delete every product
    with mongo.client(course) as c:
        c[course.mongo.database]["electronics"].drop()
    before = versions(spark, cfg, tables)
    with pytest.raises(MassDeleteError, match="electronics: the source has no keys at all"):
        run(spark, cfg, 3, ["bronze", "silver", "gold"])
    assert versions(spark, cfg, tables) == before


def test_a_bad_update_keeps_the_last_good_version_and_a_deletion_closes_history(
        spark, course, tmp_path):
    cfg = lake(tmp_path)
    run(spark, cfg, 1)
    good_sale = silver_sales(spark, cfg)[5]
    source_sql(course, "UPDATE sales_data SET price = -1 WHERE id = 5")
    # ... among good changes: a batch with more than max_bad_fraction bad rows stops instead
    source_sql(course, "UPDATE sales_data SET price = price + 1 WHERE id BETWEEN 6 AND 45")
    with mongo.client(course) as c:
        coll = c[course.mongo.database]["electronics"]
        first, second = coll.find().sort("_id", 1).limit(2)
        coll.update_one({"_id": first["_id"]}, {"$set": {"price": "twelve"}})
        coll.delete_one({"_id": second["_id"]})
    good_doc = delta.read(spark, cfg, "silver.electronics").filter(
        F.col("_id") == str(first["_id"])).collect()
    run(spark, cfg, 2)
    assert silver_sales(spark, cfg)[5] == good_sale
    q = delta.read(spark, cfg, "silver.sales_data_quarantine").filter("id = 5").collect()
    assert [r._failed_rules for r in q] == [["price_positive"]]
    assert delta.read(spark, cfg, "silver.electronics").filter(
        F.col("_id") == str(first["_id"])).collect() == good_doc
    history = delta.read(spark, cfg, "silver.electronics_history").filter(
        F.col("_id") == str(second["_id"])).collect()
    assert [(r.is_current, r.valid_to) for r in history] == [(False, dt.datetime(2026, 3, 3))]
    assert delta.read(spark, cfg, "silver.electronics").filter(
        F.col("_id") == str(second["_id"])).count() == 0


def test_an_older_run_date_rerun_after_newer_ones_changes_no_table(spark, course, tmp_path):
    cfg = lake(tmp_path)
    stages = ["bronze", "silver", "gold"]
    run(spark, cfg, 1, stages)
    source_sql(course, "UPDATE sales_data SET price = price + 1 WHERE id <= 10")
    source_sql(course, "DELETE FROM sales_data WHERE id BETWEEN 11 AND 15")
    run(spark, cfg, 2, stages)
    source_sql(course, "UPDATE sales_data SET quantity = quantity + 1 WHERE id BETWEEN 20 AND 30")
    run(spark, cfg, 3, stages)
    tables = ["silver.sales_data", "silver.electronics", "silver.electronics_history",
              "gold.FactSales", "gold.DimItem", "gold.monthly_sales"]

    def content():
        return {t: sorted(map(repr, delta.read(spark, cfg, t).drop("_batch_id").collect()))
                for t in tables}

    before = content()
    run(spark, cfg, 1, stages)        # re-dated: day 1 again, after days 2 and 3
    assert content() == before
    assert silver_sales(spark, cfg) == source_sales(course)


def test_odd_mysql_values_end_in_quarantine_or_intact_in_silver(spark, course, tmp_path):
    cfg = lake(tmp_path)
    conn = mysql.connect(course, loader=True)
    try:
        cur = conn.cursor()
        cur.execute("SET SESSION sql_mode = ''")   # lets MySQL store zero dates, as old apps do
        cur.executemany(
            "INSERT INTO sales_data (id, product_id, customer_id, price, quantity, `timestamp`) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            [(900001, 1, 1, "0.01", 2147483647, "2020-01-01 00:00:00"),     # INT max
             (900002, 2147483647, -2147483648, "9999999999.99", 1, "2020-01-01 00:00:00"),
             (900003, 1, 1, "1.00", 1, "0000-00-00 00:00:00"),              # zero date
             (900004, 1, 1, "1.00", 1, "9999-12-31 23:59:59")])             # DATETIME max
        conn.commit()
    finally:
        conn.close()
    run(spark, cfg, 1)
    silver = silver_sales(spark, cfg)
    assert silver[900001] == (Decimal("0.01"), 2147483647)
    assert silver[900002] == (Decimal("9999999999.99"), 1)
    quarantined = {r.id: r._failed_rules for r in
                   delta.read(spark, cfg, "silver.sales_data_quarantine").collect()}
    assert quarantined == {900003: ["timestamp_plausible"], 900004: ["timestamp_plausible"]}
