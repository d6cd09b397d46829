"""Issue 15, "publish what changed, as one unit", against the real PostgreSQL and the DB2 path
(JCC over DRDA to the Derby stand-in): an unchanged gold table is not published again, every
table of a run becomes visible in one transaction, and two publishes of one warehouse take
turns under the publish lock. The tables live in a schema of this module's own (pub_unit /
PUBUNIT) so other publishes into the shared warehouses do not disturb them."""
import dataclasses
import logging
import os
import threading
import time
import urllib.parse
from decimal import Decimal

import psycopg2
import pytest
from pyspark.sql import functions as F

from ecomlake import publish
from ecomlake.config import load_config
from ecomlake.io import delta
from ecomlake.io.warehouse import DB2Warehouse, PostgresWarehouse

from tests.conftest import warehouse_query

PG_SCHEMA, DB2_SCHEMA = "pub_unit", "PUBUNIT"
DIM, FACT = "pu_dimdate", "pu_factsales"
KEYS = {DIM: ["dateid"], FACT: ["orderid"]}
WAREHOUSES = {"postgres": PostgresWarehouse, "db2": DB2Warehouse}


@pytest.fixture(scope="module", autouse=True)
def own_schemas(cfg):
    conn = PostgresWarehouse(cfg).connect()
    conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{PG_SCHEMA}"')
    conn.commit()
    conn.close()
    yield
    conn = PostgresWarehouse(cfg).connect()
    conn.execute(f'DROP SCHEMA IF EXISTS "{PG_SCHEMA}" CASCADE')
    conn.commit()
    conn.close()


@pytest.fixture
def unit_cfg(tmp_path):
    return load_config("local", overrides={"lake": {"root": str(tmp_path / "lake")},
                                           "postgres": {"schema": PG_SCHEMA},
                                           "db2": {"schema": DB2_SCHEMA}})


@pytest.fixture
def db2_cleanup(spark, unit_cfg):
    yield
    wh = DB2Warehouse(unit_cfg)
    conn = wh.connect(spark)
    try:
        for t in conn.tables(DB2_SCHEMA):
            conn.execute(f'DROP TABLE "{DB2_SCHEMA}"."{t}"')
        conn.commit()
    finally:
        conn.close()


def dim_frame(spark, first, last):
    return spark.range(first, last + 1).select(
        F.col("id").cast("int").alias("dateid"),
        F.expr("date_add(DATE'2020-01-01', cast(id as int))").alias("date"),
        (F.col("id") % 12 + 1).cast("int").alias("month"))


def fact_frame(spark, rows, first_date, last_date, factor):
    span = last_date - first_date + 1
    return spark.range(1, rows + 1).select(
        F.col("id").alias("orderid"),
        (F.col("id") % span + first_date).cast("int").alias("dateid"),
        (F.col("id") * factor / 100).cast("decimal(12,2)").alias("amount"))


def write_gold(cfg, **frames):
    for name, df in frames.items():
        delta.overwrite(df, cfg, f"gold.{name}")


def gold(spark, cfg, *names):
    return [publish.read_gold(spark, cfg, n, KEYS[n]) for n in names]


def rows_of(wh, spark, table):
    conn = wh.connect(spark)
    try:
        return sorted(conn.query(f"SELECT * FROM {wh.qualified(table)}"))
    finally:
        conn.close()


def log_rows(wh, spark):
    conn = wh.connect(spark)
    try:
        return sorted(conn.query(f"SELECT * FROM {wh.qualified(wh.PUBLISH_LOG)}"), key=str)
    finally:
        conn.close()


def expected_rows(df):
    """The gold rows as the warehouse returns them, from the DataFrame (not from a publish)."""
    return sorted(tuple(r) for r in df.collect())


def staging_left(wh, spark):
    conn = wh.connect(spark)
    try:
        return wh.list_tables(conn, "stg_")
    finally:
        conn.close()


@pytest.mark.parametrize("target", ["postgres", "db2"])
def test_unchanged_gold_is_not_published_again(spark, unit_cfg, caplog, db2_cleanup, target):
    caplog.set_level(logging.INFO, logger="ecomlake")
    wh = WAREHOUSES[target](unit_cfg)
    dim, fact = dim_frame(spark, 1, 40), fact_frame(spark, 500, 1, 40, 3)
    write_gold(unit_cfg, **{DIM: dim, FACT: fact})
    first = publish.publish_tables(spark, wh, gold(spark, unit_cfg, DIM, FACT), "run-1")
    assert sorted(r.table for r in first) == [DIM, FACT]
    logged, dim_rows, fact_rows = log_rows(wh, spark), rows_of(wh, spark, DIM), rows_of(wh, spark, FACT)
    if target == "postgres":   # the db2 types differ (dates as text via JCC): counts there
        assert dim_rows == expected_rows(dim) and fact_rows == expected_rows(fact)
    assert (len(dim_rows), len(fact_rows)) == (40, 500)
    assert len(logged) == 2

    # the same gold again: nothing is written, the log says why
    caplog.clear()
    assert publish.publish_tables(spark, wh, gold(spark, unit_cfg, DIM, FACT), "run-2") == []
    assert log_rows(wh, spark) == logged
    assert rows_of(wh, spark, DIM) == dim_rows and rows_of(wh, spark, FACT) == fact_rows
    assert f"skipped: gold.{DIM} version 0 already published" in caplog.text
    assert f"skipped: gold.{FACT} version 0 already published" in caplog.text
    assert "taking the publish lock" not in caplog.text

    # only the fact changes: only the fact is published, its log row names the new version
    new_fact = fact_frame(spark, 700, 1, 40, 5)
    write_gold(unit_cfg, **{FACT: new_fact})
    second = publish.publish_tables(spark, wh, gold(spark, unit_cfg, DIM, FACT), "run-3")
    assert [(r.table, r.rows) for r in second] == [(FACT, 700)]
    assert rows_of(wh, spark, DIM) == dim_rows
    totals = new_fact.agg(F.count(F.lit(1)), F.sum("amount")).collect()[0]
    conn = wh.connect(spark)
    try:
        assert tuple(conn.query(f"SELECT COUNT(*), SUM({wh.ident('amount')}) FROM "
                                f"{wh.qualified(FACT)}")[0]) == (totals[0], totals[1])
        versions = conn.query(f"SELECT {wh.ident('run_id')}, {wh.ident('gold_version')} FROM "
                              f"{wh.qualified(wh.PUBLISH_LOG)} WHERE {wh.ident('table_name')} = "
                              f"'{FACT}' ORDER BY {wh.ident('published_at')}")
    finally:
        conn.close()
    assert [(r, int(v)) for r, v in versions] == [("run-1", 0), ("run-3", delta.version(spark, unit_cfg, f"gold.{FACT}"))]

    # --republish publishes both again
    again = publish.publish_tables(spark, wh, gold(spark, unit_cfg, DIM, FACT), "run-4",
                                   republish=True)
    assert sorted(r.table for r in again) == [DIM, FACT]
    assert staging_left(wh, spark) == []


def test_publish_log_without_gold_version_is_migrated(spark, unit_cfg):
    wh = PostgresWarehouse(unit_cfg)
    conn = wh.connect()
    conn.execute(f'DROP TABLE IF EXISTS "{PG_SCHEMA}"."publish_log"')
    conn.execute(f'CREATE TABLE "{PG_SCHEMA}"."publish_log" (table_name TEXT NOT NULL, '
                 'row_count BIGINT NOT NULL, published_at TIMESTAMPTZ NOT NULL, run_id TEXT)')
    conn.execute(f"INSERT INTO \"{PG_SCHEMA}\".\"publish_log\" VALUES ('{DIM}', 3, now(), 'old')")
    conn.commit()
    conn.close()
    write_gold(unit_cfg, **{DIM: dim_frame(spark, 1, 5)})
    assert [r.rows for r in publish.publish_tables(spark, wh, gold(spark, unit_cfg, DIM))] == [5]
    rows = sorted(warehouse_query(wh, f'SELECT run_id, row_count, gold_version FROM "{PG_SCHEMA}".publish_log'),
                  key=str)
    assert rows == [("", 5, 0), ("old", 3, None)]


def test_reader_never_sees_a_fact_without_its_dimension(spark, unit_cfg):
    """The dimension's keys move (1..100 -> 51..150) and the facts with them: a publish that
    swapped one table before the other would show facts whose date row is gone (or not there
    yet). A reader polling the join on its own connection sees the old pair or the new."""
    wh = PostgresWarehouse(unit_cfg)
    old = {DIM: dim_frame(spark, 1, 100), FACT: fact_frame(spark, 2000, 1, 100, 2)}
    new = {DIM: dim_frame(spark, 51, 150), FACT: fact_frame(spark, 3000, 51, 150, 3)}
    write_gold(unit_cfg, **old)
    publish.publish_tables(spark, wh, gold(spark, unit_cfg, DIM, FACT), "old")
    write_gold(unit_cfg, **new)
    tables = gold(spark, unit_cfg, DIM, FACT)

    seen, errors, done = [], [], threading.Event()
    sql = (f'SELECT (SELECT COUNT(*) FROM "{PG_SCHEMA}".{FACT}), (SELECT COUNT(*) FROM '
           f'"{PG_SCHEMA}".{FACT} f WHERE NOT EXISTS (SELECT 1 FROM "{PG_SCHEMA}".{DIM} d '
           'WHERE d.dateid = f.dateid))')

    def reader():
        conn = psycopg2.connect(**wh.connect_params(""))
        conn.autocommit = True
        try:
            while True:
                last = done.is_set()
                try:
                    with conn.cursor() as cur:
                        cur.execute(sql)
                        seen.append(cur.fetchone())
                except psycopg2.Error as exc:
                    errors.append(str(exc))
                if last:
                    return
                time.sleep(0.02)
        finally:
            conn.close()

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        publish.publish_tables(spark, wh, tables, "new")
    finally:
        done.set()
        thread.join(60)
    # PostgreSQL may end a deadlock between the swap and a reader by aborting the reader's
    # query (the swap locks every table first to make that rare, and retries if it loses)
    assert [e for e in errors if "deadlock detected" not in e] == []
    assert len(seen) > 10
    assert {orphans for _, orphans in seen} == {0}, "a fact without its date row was visible"
    assert {facts for facts, _ in seen} == {2000, 3000}   # both states were seen, nothing else
    assert seen[-1] == (3000, 0)


@pytest.mark.parametrize("target", ["postgres", "db2"])
def test_two_publishes_at_once_take_turns(spark, unit_cfg, caplog, db2_cleanup, target):
    """Started together, one publish waits for the other's lock: both end OK, neither's
    staging table is dropped under it, and the target ends equal to gold."""
    caplog.set_level(logging.INFO, logger="ecomlake")
    wh = WAREHOUSES[target](unit_cfg)
    dim, fact = dim_frame(spark, 1, 60), fact_frame(spark, 4000, 1, 60, 7)
    write_gold(unit_cfg, **{DIM: dim, FACT: fact})
    start, results, failures = threading.Barrier(2), {}, []

    def run(name):
        try:
            tables = gold(spark, unit_cfg, DIM, FACT)
            start.wait()
            results[name] = publish.publish_tables(spark, wh, tables, name, republish=True)
        except BaseException as exc:   # reported below
            failures.append(f"{name}: {exc!r}")

    threads = [threading.Thread(target=run, args=(n,)) for n in ("one", "two")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert failures == []
    assert {n: sorted(r.table for r in rs) for n, rs in results.items()} == \
        {"one": [DIM, FACT], "two": [DIM, FACT]}
    if target == "postgres":
        assert "waiting for the publish lock held by 'ecomlake publish" in caplog.text
        assert rows_of(wh, spark, FACT) == expected_rows(fact)
    assert "left by an earlier run" not in caplog.text   # nobody dropped the other's staging
    totals = fact.agg(F.count(F.lit(1)), F.sum("amount")).collect()[0]
    conn = wh.connect(spark)
    try:
        assert tuple(conn.query(f"SELECT COUNT(*), SUM({wh.ident('amount')}) FROM "
                                f"{wh.qualified(FACT)}")[0]) == (totals[0], totals[1])
        assert conn.query(f"SELECT COUNT(*) FROM {wh.qualified(DIM)}")[0][0] == 60
    finally:
        conn.close()
    assert staging_left(wh, spark) == []


def fact_rows(ids, bumped=frozenset()):
    """fact_frame(factor 7, dates 1..60)'s rows of `ids` in plain Python, the amount of the
    orders in `bumped` raised by 1."""
    return sorted((i, i % 60 + 1, Decimal(i * 7) / 100 + (1 if i in bumped else 0)) for i in ids)


def bumped_frame(df, bumped):
    return df.withColumn("amount", F.when(F.col("orderid").isin(sorted(bumped)),
                                          F.col("amount") + 1).otherwise(F.col("amount"))
                         .cast("decimal(12,2)"))


@pytest.mark.parametrize("target", ["postgres", "db2"])
def test_a_changed_fact_table_goes_as_its_changes(spark, unit_cfg, caplog, db2_cleanup, target):
    """A fact table whose last publish was an earlier version of the same gold table reaches
    the warehouse as its changes (new, changed and deleted rows) applied in the unit's
    transaction, and the whole target is reconciled with gold before the commit. A target
    changed behind the publish's back fails that check: the unit rolls back and the tables go
    whole."""
    caplog.set_level(logging.INFO, logger="ecomlake")
    wh = WAREHOUSES[target](dataclasses.replace(unit_cfg, **{target: dataclasses.replace(
        getattr(unit_cfg, target), changes_min_rows=1000)}))   # the test's table is small
    v0 = fact_frame(spark, 3000, 1, 60, 7)
    write_gold(unit_cfg, **{FACT: v0})
    publish.publish_tables(spark, wh, gold(spark, unit_cfg, FACT), "v0")
    assert rows_of(wh, spark, FACT) == fact_rows(range(1, 3001))

    # version 1: orders 1..99 deleted, every 10th order changed, 3001..3300 new
    bumped = {i for i in range(100, 3001) if i % 10 == 0}
    write_gold(unit_cfg, **{FACT: bumped_frame(v0.filter(F.col("orderid") >= 100), bumped)
                            .unionByName(fact_frame(spark, 3300, 1, 60, 7)
                                         .filter(F.col("orderid") > 3000))})
    caplog.clear()
    [result] = publish.publish_tables(spark, wh, gold(spark, unit_cfg, FACT), "v1")
    v1_ids = set(range(100, 3301))
    assert rows_of(wh, spark, FACT) == fact_rows(v1_ids, bumped)
    assert result.rows == len(v1_ids)
    assert (f"the changes of gold.{FACT} since version 0 ({len(bumped) + 300} new or changed "
            f"rows, 99 deleted; {len(v1_ids)} rows in all)") in caplog.text
    assert f"reconciled with gold.{FACT} version 1 as a whole ({len(v1_ids)} rows)" in caplog.text
    conn = wh.connect(spark)
    try:
        assert wh.last_published(conn, [FACT])[FACT] == (
            1, delta.table_id(spark, unit_cfg, f"gold.{FACT}"))
        # behind the publish's back: an order deleted in the warehouse
        conn.execute(f"DELETE FROM {wh.qualified(FACT)} WHERE {wh.ident('orderid')} = 500")
        conn.commit()
    finally:
        conn.close()

    # version 2: order 600 changed again; applied to the altered target, the changes leave
    # one row too few: rolled back, and the table is published whole
    write_gold(unit_cfg, **{FACT: bumped_frame(delta.read(spark, unit_cfg, f"gold.{FACT}"),
                                               {600})})
    caplog.clear()
    [result] = publish.publish_tables(spark, wh, gold(spark, unit_cfg, FACT), "v2")
    assert "does not match gold" in caplog.text and "publishing every table whole" in caplog.text
    assert f"writing {len(v1_ids)} rows of gold.{FACT} into staging" in caplog.text
    assert rows_of(wh, spark, FACT) == sorted(
        (i, d, a + 1 if i == 600 else a) for i, d, a in fact_rows(v1_ids, bumped))
    assert result.rows == len(v1_ids)
    assert staging_left(wh, spark) == []
    if target != "postgres":
        return   # what follows is publish's own decision, the same for both warehouses

    # version 3, with the published version's files gone as VACUUM removes them (VACUUM itself
    # takes ~35 s on this machine): it cannot be compared, and the table goes whole
    published = spark.read.format("delta").option("versionAsOf", 2).load(
        delta.path(unit_cfg, f"gold.{FACT}")).inputFiles()
    write_gold(unit_cfg, **{FACT: bumped_frame(delta.read(spark, unit_cfg, f"gold.{FACT}"),
                                               {700})})
    for uri in published:
        os.remove(urllib.parse.urlparse(uri).path)
    caplog.clear()
    publish.publish_tables(spark, wh, gold(spark, unit_cfg, FACT), "v3")
    assert f"gold.{FACT}: version 2 cannot be compared" in caplog.text
    assert f"writing {len(v1_ids)} rows of gold.{FACT} into staging" in caplog.text
    assert rows_of(wh, spark, FACT) == sorted(
        (i, d, a + 1 if i in (600, 700) else a) for i, d, a in fact_rows(v1_ids, bumped))


def test_changes_start_from_what_the_warehouse_holds_once_the_lock_is_taken(spark, unit_cfg,
                                                                            caplog):
    """Two publishes at once: while B waits for the publish lock, A publishes version 1. B,
    pinned at version 2, must compare with version 1 (what the warehouse holds when B gets the
    lock), not with the version 0 it saw before waiting: version 1 swapped two orders' amounts,
    which keeps every count and sum, so the whole-target check could not catch a stale start."""
    caplog.set_level(logging.INFO, logger="ecomlake")
    cfg = dataclasses.replace(unit_cfg, postgres=dataclasses.replace(unit_cfg.postgres,
                                                                     changes_min_rows=1000))
    v0 = fact_frame(spark, 3000, 1, 60, 7)
    write_gold(unit_cfg, **{FACT: v0})
    publish.publish_tables(spark, PostgresWarehouse(cfg), gold(spark, unit_cfg, FACT), "v0")
    swapped = (v0.withColumn("amount", F.when(F.col("orderid") == 10, Decimal("1.40"))
                             .when(F.col("orderid") == 20, Decimal("0.70"))
                             .otherwise(F.col("amount")).cast("decimal(12,2)")))
    write_gold(unit_cfg, **{FACT: swapped})
    tables_a = gold(spark, unit_cfg, FACT)                      # pinned at version 1
    write_gold(unit_cfg, **{FACT: bumped_frame(v0, {600})})
    tables_b = gold(spark, unit_cfg, FACT)                      # pinned at version 2

    wh_b = PostgresWarehouse(cfg)
    take_lock = wh_b.acquire_publish_lock

    def a_publishes_first(conn, owner):
        publish.publish_tables(spark, PostgresWarehouse(cfg), tables_a, "a")
        take_lock(conn, owner)

    wh_b.acquire_publish_lock = a_publishes_first
    caplog.clear()
    publish.publish_tables(spark, wh_b, tables_b, "b")
    assert f"the changes of gold.{FACT} since version 0 (2 new or changed rows" in caplog.text
    assert f"the changes of gold.{FACT} since version 1 (3 new or changed rows" in caplog.text
    assert rows_of(wh_b, spark, FACT) == fact_rows(range(1, 3001), {600})
