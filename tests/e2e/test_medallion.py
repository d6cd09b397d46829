"""The medallion pipeline on generated data with change batches: incremental equals full,
reruns change nothing, the numbers equal plain SQL on the sources, and every bad record is in
quarantine with the rule it broke. Stages run in the shared Spark session (as `pipeline` does)."""
import datetime as dt
from decimal import Decimal

import pytest
from pyspark.sql import functions as F

from ecomlake import pipeline
from ecomlake.config import load_config
from ecomlake.io import delta, mongo, mysql
from ecomlake.ops.sources import capstone, changes, generator

SCALE, SEED, BATCHES, BAD = 0.01, 7, 3, 0.04
STAGES = ["bronze", "silver", "gold"]
D0 = dt.date(2026, 1, 1)


def run(spark, cfg, day, full_refresh=False):
    r = pipeline.Run(run_date=day, ingested_at=dt.datetime(2026, 1, 1), full_refresh=full_refresh)
    return pipeline.run_stages(spark, cfg, r, STAGES)


def lake(tmp_path_factory, name):
    return load_config("local", overrides={"lake": {"root": str(tmp_path_factory.mktemp(name))}})


@pytest.fixture(scope="module")
def runs(spark, tmp_path_factory):
    src = load_config("local")
    generator.generate(src, SCALE, seed=SEED)
    inc = lake(tmp_path_factory, "incremental")
    run(spark, inc, D0)
    for k in range(1, BATCHES + 1):
        changes.apply_batch(src, k, bad_fraction=BAD)
        run(spark, inc, D0 + dt.timedelta(days=k))
    full = lake(tmp_path_factory, "full")
    run(spark, full, D0 + dt.timedelta(days=BATCHES), full_refresh=True)
    yield inc, full, src
    capstone.load(src)   # leave the course data in the sources for the other tests


def rows(spark, cfg, table, drop=()):
    df = delta.read(spark, cfg, table)
    return sorted(map(tuple, df.select([c for c in df.columns if c not in drop]).collect()), key=repr)


# columns that carry type 2 attribution: the incremental lake knows the history, a build from
# the final state alone cannot (checked on their own in tests/unit/test_gold.py)
POINT_IN_TIME = ("countryid", "categoryid")


def test_incremental_equals_full_build_over_the_final_state(runs, spark):
    inc, full, _ = runs
    for table in ("silver.sales_data", "silver.customers", "silver.inventory",
                  "silver.electronics"):
        assert rows(spark, inc, table, ("_batch_id",)) == rows(spark, full, table, ("_batch_id",)), table
    for table in ("gold.DimDate", "gold.DimCountry", "gold.DimCategory", "gold.DimItem",
                  "gold.monthly_sales", "gold.sales_by_product"):
        assert rows(spark, inc, table) == rows(spark, full, table), table
    assert rows(spark, inc, "gold.FactSales", POINT_IN_TIME) == \
        rows(spark, full, "gold.FactSales", POINT_IN_TIME)


def bad_keys(src, entity):
    conn = mysql.connect(src)
    cur = conn.cursor()
    cur.execute("SELECT record_key, rule FROM change_manifest WHERE kind = 'bad' AND entity = %s",
                (entity,))
    out = dict(cur.fetchall())
    conn.close()
    return out


def test_every_bad_record_is_quarantined_with_its_rule(runs, spark):
    inc, _, src = runs
    for entity, key in (("sales_data", "id"), ("electronics", "_id")):
        expected = bad_keys(src, entity)
        assert expected, f"the change batches made no bad {entity} records"
        quarantined = {str(r[key]): r._failed_rules for r in
                       delta.read(spark, inc, f"silver.{entity}_quarantine").collect()}
        for record, rule in expected.items():
            assert record in quarantined, f"{entity} {record} ({rule}) is not in quarantine"
            assert rule in quarantined[record], (record, rule, quarantined[record])
        silver_keys = {str(r[0]) for r in delta.read(spark, inc, f"silver.{entity}").select(key).collect()}
        assert not silver_keys & set(expected)


def test_gold_numbers_equal_plain_sql_on_the_sources(runs, spark):
    inc, _, src = runs
    bad = [int(k) for k in bad_keys(src, "sales_data")]
    conn = mysql.connect(src)
    cur = conn.cursor()
    exclude = f"WHERE id NOT IN ({','.join(map(str, bad))})" if bad else ""
    cur.execute(f"SELECT COUNT(*), SUM(price * quantity) FROM sales_data {exclude}")
    n, total = cur.fetchone()
    cur.execute(f"SELECT YEAR(`timestamp`), MONTH(`timestamp`), SUM(price * quantity) "
                f"FROM sales_data {exclude} GROUP BY 1, 2")
    monthly = {(y, m): Decimal(v) for y, m, v in cur.fetchall()}
    conn.close()
    fact = delta.read(spark, inc, "gold.FactSales")
    assert fact.count() == n
    assert fact.agg(F.sum("amount")).collect()[0][0] == total
    got = {(r.Year, r.Month): r.total_sales for r in delta.read(spark, inc, "gold.monthly_sales").collect()}
    assert got == monthly
    with mongo.client(src) as c:
        products = c[src.mongo.database]["electronics"].distinct("product_id")
    dim_item = delta.read(spark, inc, "gold.DimItem")
    bad_docs = len(bad_keys(src, "electronics"))
    assert dim_item.count() == len(products) - sum(
        1 for r in bad_keys(src, "electronics").values() if r == "price_is_number")
    assert bad_docs > 0


def test_rerun_of_a_run_date_changes_no_table(runs, spark):
    inc, _, _ = runs
    tables = ["bronze.sales_data", "silver.sales_data", "silver.customers_history",
              "silver.electronics_history", "silver.sales_data_quarantine", "gold.FactSales",
              "gold.cube_year_country"]
    before = {t: rows(spark, inc, t, ("_ingested_at",)) for t in tables}
    run(spark, inc, D0 + dt.timedelta(days=BATCHES))
    assert {t: rows(spark, inc, t, ("_ingested_at",)) for t in tables} == before


def test_bad_fraction_over_the_threshold_stops_before_writing(runs, spark, tmp_path):
    inc, _, _ = runs
    from ecomlake.config import load_tables
    from ecomlake.errors import DataQualityError
    from ecomlake import silver
    spec = load_tables()["sales_data"]
    strict = type(spec)(**{**spec.__dict__, "max_bad_fraction": 0.0})
    version = delta.version(spark, inc, "silver.sales_data")
    batch = (D0 + dt.timedelta(days=1)).isoformat()
    with pytest.raises(DataQualityError, match=r"breaking rules .*nothing was written"):
        silver.build_table(spark, inc, "sales_data", strict, batch, D0 + dt.timedelta(days=1))
    assert delta.version(spark, inc, "silver.sales_data") == version
