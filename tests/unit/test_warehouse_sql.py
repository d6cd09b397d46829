"""The SQL each warehouse gets: types, identifiers, the swap. DB2's rules are checked here
without a DB2 (they also run against the Derby DRDA stand-in in tests/integration)."""
from decimal import Decimal

import pytest
from pyspark.sql import types as T

from ecomlake.io.warehouse import DB2Warehouse, PostgresWarehouse
from ecomlake.publish import same_totals

SCHEMA = T.StructType([
    T.StructField("product_id", T.IntegerType(), False),
    T.StructField("amount", T.DecimalType(38, 2)),
    T.StructField("model", T.StringType()),
    T.StructField("last_sale_at", T.TimestampType()),
    T.StructField("on_sale", T.BooleanType()),
])


def test_postgres_types_and_lowercase_names(cfg):
    pg = PostgresWarehouse(cfg)
    sql = pg.create_table_sql("Sales", pg.columns(SCHEMA, {"model": 20}), ["product_id"])
    assert sql == ('CREATE TABLE "public"."sales" ("product_id" INTEGER NOT NULL, '
                   '"amount" NUMERIC(38,2), "model" TEXT, "last_sale_at" TIMESTAMPTZ, '
                   '"on_sale" BOOLEAN, PRIMARY KEY ("product_id"))')


def test_db2_types_respect_db2_limits(cfg):
    db2 = DB2Warehouse(cfg)
    cols = {c.name: c.sql_type for c in db2.columns(SCHEMA, {"model": 20})}
    assert cols == {"PRODUCT_ID": "INTEGER", "AMOUNT": "DECIMAL(31,2)",  # precision <= 31
                    "MODEL": "VARCHAR(64)",                               # sized, not CLOB
                    "LAST_SALE_AT": "TIMESTAMP", "ON_SALE": "SMALLINT"}


@pytest.mark.parametrize("max_len,size", [(None, 32), (1, 32), (20, 64), (100, 256),
                                          (20000, 32672)])
def test_db2_varchar_sizing(cfg, max_len, size):
    field = T.StructField("s", T.StringType())
    assert DB2Warehouse(cfg).sql_type(field, max_len) == f"VARCHAR({size})"


class _Catalog:
    """What swap_statements asks a DB2 connection: the columns of a table, if it exists."""

    def __init__(self, *tables):
        self.tables = set(tables)

    def columns(self, schema, table):
        return ["PRODUCT_ID"] if table in self.tables else []


def test_db2_swap_renames_and_never_deletes_everything(cfg):
    """Issue 15: no DELETE-everything-then-INSERT of a large table in one DB2 unit of work."""
    db2 = DB2Warehouse(cfg)
    cols = db2.columns(SCHEMA, {})
    assert db2.swap_statements(_Catalog("SALES"), "sales", "stg_sales_1", cols, ["product_id"]) == [
        'DROP TABLE "APP"."SALES"', 'RENAME TABLE "APP"."STG_SALES_1" TO "SALES"']
    assert db2.swap_statements(_Catalog(), "sales", "stg_sales_1", cols, ["product_id"]) == [
        'RENAME TABLE "APP"."STG_SALES_1" TO "SALES"']
    # staging carries the key (NOT NULL from the start), so the renamed table has it
    assert db2.create_table_sql("stg_sales_1", cols, db2.staging_key(["product_id"])).endswith(
        'PRIMARY KEY ("PRODUCT_ID"))')
    assert PostgresWarehouse(cfg).staging_key(["product_id"]) == []   # built after the load


def test_db2_publish_lock_is_a_lock_table(cfg):
    db2 = DB2Warehouse(cfg)
    assert db2.lock_table_statements(_Catalog()) == [
        'CREATE TABLE "APP"."PUBLISH_LOCK" ("ID" INTEGER NOT NULL PRIMARY KEY)',
        'INSERT INTO "APP"."PUBLISH_LOCK" VALUES (1)']
    assert db2.lock_table_statements(_Catalog("PUBLISH_LOCK")) == []


def test_publish_log_is_migrated_with_nullable_columns(cfg):
    db2 = DB2Warehouse(cfg)
    old_log = _Catalog("PUBLISH_LOG")
    old_log.columns = lambda schema, table: ["TABLE_NAME", "ROW_COUNT", "PUBLISHED_AT", "RUN_ID"]
    assert db2.publish_log_statements(old_log) == [
        'ALTER TABLE "APP"."PUBLISH_LOG" ADD COLUMN "GOLD_VERSION" BIGINT',
        'ALTER TABLE "APP"."PUBLISH_LOG" ADD COLUMN "GOLD_TABLE_ID" VARCHAR(128)']
    assert db2.publish_log_statements(_Catalog())[0].startswith('CREATE TABLE "APP"."PUBLISH_LOG" (')


def test_postgres_swap_uses_transactional_truncate(cfg):
    pg = PostgresWarehouse(cfg)
    assert pg.replace_statements("s", "stg", pg.columns(SCHEMA, {}))[0] == 'TRUNCATE "public"."s"'


def test_reserved_words_are_quoted_in_the_database_case(cfg):
    field = T.StructType([T.StructField("date", T.DateType()), T.StructField("Year", T.IntegerType())])
    db2, pg = DB2Warehouse(cfg), PostgresWarehouse(cfg)
    assert db2.create_table_sql("DimDate", db2.columns(field, {}), []) == \
        'CREATE TABLE "APP"."DIMDATE" ("DATE" DATE, "YEAR" INTEGER)'
    assert pg.create_table_sql("DimDate", pg.columns(field, {}), []) == \
        'CREATE TABLE "public"."dimdate" ("date" DATE, "year" INTEGER)'


def test_identifiers_are_validated(cfg):
    with pytest.raises(ValueError, match="not a plain SQL identifier"):
        PostgresWarehouse(cfg).ident("x; DROP TABLE y")


def test_db2_url_from_environment_names_a_real_db2(cfg, monkeypatch):
    assert cfg.db2.jdbc_url.startswith("jdbc:db2://127.0.0.1:1527/ecomdb:securityMechanism=3;")
    monkeypatch.setenv("DB2_URL", "jdbc:db2://db2.example:50000/PROD")
    assert cfg.db2.jdbc_url == "jdbc:db2://db2.example:50000/PROD"
    assert cfg.db2.address == "db2.example:50000"


def test_same_totals_compares_exactly_and_floats_closely():
    assert same_totals([3, Decimal("1.10")], [3, Decimal("1.1")])
    assert not same_totals([3, Decimal("1.10")], [3, Decimal("1.11")])
    assert same_totals([1, 0.1 + 0.2], [1, 0.3])
    assert not same_totals([3, 1], [2, 1])


def test_postgres_materializes_total_sales_per_country(cfg):
    (mv,) = PostgresWarehouse(cfg).derived_objects()
    assert mv.create_sql == (
        'CREATE MATERIALIZED VIEW "public"."mv_total_sales_per_country" AS SELECT c."country" AS '
        '"country", SUM(f."amount") AS "total_sales" FROM "public"."factsales" f JOIN '
        '"public"."dimcountry" c ON f."countryid" = c."countryid" GROUP BY c."country" WITH NO DATA')
    assert mv.refresh_sql == ('REFRESH MATERIALIZED VIEW "public"."mv_total_sales_per_country"',)


def test_db2_mqt_is_deferred_and_refreshed(cfg):
    mqt = DB2Warehouse(cfg).mqt_total_sales_per_country()
    assert mqt.create_sql.startswith('CREATE TABLE "APP"."MQT_TOTAL_SALES_PER_COUNTRY" AS (SELECT ')
    assert mqt.create_sql.endswith(") DATA INITIALLY DEFERRED REFRESH DEFERRED")
    assert mqt.refresh_sql == ('REFRESH TABLE "APP"."MQT_TOTAL_SALES_PER_COUNTRY"',)
    assert DB2Warehouse(cfg).derived_objects() == []   # the Derby stand-in has no MQTs


def test_postgres_builds_the_staging_key_and_renames_it_with_the_table(cfg):
    pg = PostgresWarehouse(cfg)
    assert pg.prepare_staging_statements("stg_sales_ab12", ["product_id"]) == [
        'ALTER TABLE "public"."stg_sales_ab12" ADD CONSTRAINT "stg_sales_ab12_pkey" '
        'PRIMARY KEY ("product_id")']
    assert pg._rename_into("Sales", "stg_sales_ab12", ["product_id"]) == [
        'ALTER TABLE "public"."stg_sales_ab12" RENAME TO "sales"',
        'ALTER TABLE "public"."sales" RENAME CONSTRAINT "stg_sales_ab12_pkey" TO "sales_pkey"']


def test_publish_log_insert_quotes_the_run_id(cfg):
    for wh, table in ((PostgresWarehouse(cfg), '"public"."publish_log"'),
                      (DB2Warehouse(cfg), '"APP"."PUBLISH_LOG"')):
        sql = wh.publish_log_insert_sql("FactSales", 12, "run 'x'")
        assert sql.startswith(f"INSERT INTO {table} (")
        assert sql.endswith("VALUES ('FactSales', 12, CURRENT_TIMESTAMP, 'run ''x''', NULL, NULL)")
        sql = wh.publish_log_insert_sql("FactSales", 12, "r", 7, "ab-'c")
        assert sql.endswith("VALUES ('FactSales', 12, CURRENT_TIMESTAMP, 'r', 7, 'ab-''c')")
