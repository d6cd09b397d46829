"""The quick check (ecomlake.quickcheck) on the session's course lake, against the real servers:
right after the course run it finds nothing changed and proves the run's completeness again
with counts that match the course files; each kind of change since (a key deleted in MySQL, a
row updated, a catalog document edited, a commit in the lake, a warehouse whose publish_log
does not name the lake's gold, a staging table left over) makes it decline and name the
change; undone exactly, it finds nothing changed again. Each change is undone before the test
ends, so the sources still hold what the course lake was built from."""
from __future__ import annotations

import csv
import datetime as dt
import json
import re
import shutil

import pytest

from ecomlake import gold, pipeline, quickcheck
from ecomlake.config import load_config
from ecomlake.io import delta, mongo, mysql
from ecomlake.io.warehouse import PostgresWarehouse

from tests.conftest import CAPSTONE, COURSE_RUN_DATE, source_sql


@pytest.fixture(scope="module")
def course(course_lake, spark):
    """The course lake, its sources as it read them, its gold in both warehouses."""
    course_lake.current()
    course_lake.publish(spark, "postgres", "db2")
    return course_lake


def run(**kwargs):
    return pipeline.Run(run_date=dt.date.fromisoformat(COURSE_RUN_DATE),
                        ingested_at=dt.datetime.now(), **kwargs)


def check(spark, cfg, **kwargs):
    return quickcheck.check(spark, cfg, run(**kwargs))


def test_nothing_changed_proves_the_course_runs_completeness(course, spark):
    with open(CAPSTONE / "oltpdata.csv", newline="") as f:
        sale_lines = sum(1 for r in csv.reader(f) if r)
    documents = sum(1 for line in (CAPSTONE / "catalog.json").read_text().splitlines()
                    if line.strip())
    verdict = check(spark, course.cfg)
    assert verdict.unchanged, verdict.why
    said = "\n".join(verdict.proven)
    sales = [p for p in verdict.proven if p.startswith("sales_data: source keys ")]
    assert len(sales) == 1, said
    n, silver, quarantined = (int(x) for x in re.findall(r"\d+", sales[0].split("(")[0]))
    assert n == sale_lines and silver + quarantined == sale_lines
    assert silver == delta.read(spark, course.cfg, "silver.sales_data").count()
    assert f"electronics: the {documents} documents bronze read, unchanged" in said
    for target in ("postgres", "db2"):
        assert f"{target}: {len(gold.GOLD_TABLES)} gold tables published at the versions the " \
            "lake holds" in said


def test_a_key_deleted_in_mysql_is_seen_and_its_return_undoes_it(course, spark):
    cfg = course.cfg
    conn = mysql.connect(cfg, loader=True)
    try:
        cur = conn.cursor()
        cur.execute("SELECT * FROM sales_data WHERE id = (SELECT MAX(id) FROM sales_data)")
        columns = [d[0] for d in cur.description]
        row = cur.fetchone()
        cur.execute("DELETE FROM sales_data WHERE id = %s", (row[0],))
        conn.commit()
        (n_left,) = source_sql(cfg, "SELECT COUNT(*) FROM sales_data")[0]
        verdict = check(spark, cfg)
        # the row comes back as it was, `updated_at` too (given, so not stamped anew)
        cur.execute(f"INSERT INTO sales_data ({', '.join(f'`{c}`' for c in columns)}) VALUES "
                    f"({', '.join(['%s'] * len(columns))})", row)
        conn.commit()
    finally:
        conn.close()
    assert not verdict.unchanged
    assert verdict.why.startswith(f"sales_data: the source's keys differ from the lake's "
                                  f"({n_left} keys against silver"), verdict.why
    again = check(spark, cfg)
    assert again.unchanged, again.why


def test_a_row_updated_in_mysql_is_seen(course, spark):
    cfg = course.cfg
    (key, price, stamp), = source_sql(
        cfg, "SELECT id, price, updated_at FROM sales_data ORDER BY id LIMIT 1")
    try:
        source_sql(cfg, "UPDATE sales_data SET price = price + 1 WHERE id = %s", (key,))
        verdict = check(spark, cfg)
    finally:
        source_sql(cfg, "UPDATE sales_data SET price = %s, updated_at = %s WHERE id = %s",
                   (price, stamp, key))
    assert not verdict.unchanged
    assert verdict.why.startswith("sales_data: 1 rows stamped after the mark"), verdict.why
    again = check(spark, cfg)
    assert again.unchanged, again.why


def test_a_catalog_document_edited_is_seen(course, spark):
    cfg = course.cfg
    with mongo.client(cfg) as c:
        docs = c[cfg.mongo.database]["electronics"]
        doc = docs.find_one({"model": {"$exists": True}})
        try:
            docs.update_one({"_id": doc["_id"]}, {"$set": {"model": doc["model"] + "-x"}})
            verdict = check(spark, cfg)
        finally:
            docs.update_one({"_id": doc["_id"]}, {"$set": {"model": doc["model"]}})
    assert not verdict.unchanged
    assert verdict.why == "electronics: documents changed since bronze read them"
    again = check(spark, cfg)
    assert again.unchanged, again.why


def test_a_commit_in_the_lake_is_seen(course, spark, tmp_path):
    """On a copy of the lake (its record comes with it and holds there too)."""
    shutil.copytree(course.root, tmp_path / "lake")
    copy = load_config("local", overrides={"lake": {"root": str(tmp_path / "lake")}})
    verdict = check(spark, copy)
    assert verdict.unchanged, verdict.why
    before = delta.latest_version(spark, copy, "gold.DimCountry")
    delta.overwrite(delta.read(spark, copy, "gold.DimCountry"), copy, "gold.DimCountry")
    verdict = check(spark, copy)
    assert not verdict.unchanged
    assert verdict.why == "lake tables changed since: gold.DimCountry"
    assert delta.latest_version(spark, copy, "gold.DimCountry") == before + 1


def test_a_table_rebuilt_to_the_same_version_is_seen(course, spark, tmp_path):
    """A gold table removed and written anew up to the version it had (a new table id, which
    publish_log would not name) is a change too, though its version number is the same."""
    shutil.copytree(course.root, tmp_path / "lake")
    copy = load_config("local", overrides={"lake": {"root": str(tmp_path / "lake")}})
    rows = delta.read(spark, copy, "gold.DimCategory").collect()
    schema = delta.read(spark, copy, "gold.DimCategory").schema
    version, old_id = (delta.latest_version(spark, copy, "gold.DimCategory"),
                       delta.table_id(spark, copy, "gold.DimCategory"))
    shutil.rmtree(tmp_path / "lake" / "gold" / "DimCategory")
    for _ in range(version + 1):
        delta.overwrite(spark.createDataFrame(rows, schema), copy, "gold.DimCategory")
    assert delta.latest_version(spark, copy, "gold.DimCategory") == version
    assert delta.table_id(spark, copy, "gold.DimCategory") != old_id
    verdict = check(spark, copy)
    assert not verdict.unchanged
    assert verdict.why == "lake tables changed since: gold.DimCategory"


def test_a_warehouse_that_does_not_hold_the_lakes_gold_is_seen(course, spark):
    elsewhere = load_config("local", overrides={
        "lake": {"root": course.cfg.lake_root},
        "postgres": {"schema": "quickcheck_never_published"}})
    verdict = check(spark, elsewhere, targets=("postgres",))
    assert not verdict.unchanged
    assert verdict.why.startswith("postgres: gold.") and "is not what publish_log says" in \
        verdict.why, verdict.why
    # the course lake's own warehouses do hold it
    assert check(spark, course.cfg, targets=("postgres",)).unchanged


def test_a_staging_table_left_over_is_seen(course, spark):
    wh = PostgresWarehouse(course.cfg)
    leftover = wh.qualified("stg_DimDate_quickcheck")
    conn = wh.connect()
    try:
        conn.execute(f"CREATE TABLE {leftover} (x int)")
        conn.commit()
        verdict = check(spark, course.cfg, targets=("postgres",))
    finally:
        conn.execute(f"DROP TABLE IF EXISTS {leftover}")
        conn.commit()
        conn.close()
    assert not verdict.unchanged
    assert verdict.why == "postgres: staging table stg_dimdate_quickcheck was left by an " \
        "earlier run"


def test_the_record_names_the_batch_and_the_lakes_key_figures(course, spark):
    """The record the course run wrote: its batch, and sales_data's key count, as the lake
    holds it (silver + quarantine-only), equal to the course file's lines."""
    text = delta.read_text(spark, f"{course.cfg.lake_root}/_state/pipeline.json")
    state = json.loads(text)
    assert state["batch"] == COURSE_RUN_DATE
    with open(CAPSTONE / "oltpdata.csv", newline="") as f:
        assert state["mysql"]["sales_data"]["keys"][0] == sum(1 for r in csv.reader(f) if r)
    assert state["lake"]["silver.sales_data"][0] == delta.latest_version(
        spark, course.cfg, "silver.sales_data")
    assert state["gold_ids"]["FactSales"] == delta.table_id(spark, course.cfg, "gold.FactSales")


def test_another_date_is_not_the_recorded_run(course, spark):
    verdict = quickcheck.check(spark, course.cfg, pipeline.Run(
        run_date=dt.date.fromisoformat(COURSE_RUN_DATE) + dt.timedelta(days=1),
        ingested_at=dt.datetime.now()))
    assert not verdict.unchanged
    assert verdict.why == f"the last complete run was batch {COURSE_RUN_DATE}, not " \
        f"{dt.date.fromisoformat(COURSE_RUN_DATE) + dt.timedelta(days=1)}"
