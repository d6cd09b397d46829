"""Publishing to the real PostgreSQL and to the DB2 path (JCC over DRDA to the Derby stand-in):
atomic under SIGKILL, reconciled, idempotent, leftovers cleaned."""
import os
import signal
import subprocess
from decimal import Decimal

import pytest
from pyspark.sql import functions as F

from ecomlake import publish
from ecomlake.config import PROJECT_ROOT, load_config
from ecomlake.errors import ReconciliationError
from ecomlake.io import delta
from ecomlake.io.warehouse import DB2Warehouse, PostgresWarehouse

from tests.conftest import overrides_env, warehouse_query

TABLE = "sales_by_product"
PROBES = ("recon_probe", "rerun_probe", "copy_probe", "swap_probe")


@pytest.fixture(scope="module", autouse=True)
def drop_probes(cfg):
    """The probe tables (and their publish_log rows) go once the module is done, so the
    dashboards' data-freshness page lists only the pipeline's tables."""
    yield
    conn = PostgresWarehouse(cfg).connect()
    try:
        for t in PROBES:
            conn.execute(f'DROP TABLE IF EXISTS "public"."{t}"')
        conn.execute("DELETE FROM publish_log WHERE table_name IN "
                     f"({', '.join(repr(t) for t in PROBES)})")
        conn.commit()
    finally:
        conn.close()


def gold_frame(spark, rows: int, factor: int):
    """A gold-shaped table whose count and sums tell one version from another."""
    return spark.range(1, rows + 1).select(
        F.col("id").cast("int").alias("product_id"),
        F.lit(1).cast("long").alias("sale_lines"),
        (F.col("id") % 7 + factor).cast("long").alias("units"),
        (F.col("id") * factor / 100).cast("decimal(18,2)").alias("amount"),
        F.lit("2020-01-01 00:00:00").cast("timestamp").alias("first_sale_at"),
        F.lit("2020-01-02 00:00:00").cast("timestamp").alias("last_sale_at"))


def totals(spark, df):
    r = df.agg(F.count(F.lit(1)), F.sum("units"), F.sum("amount")).collect()[0]
    return (r[0], r[1], r[2])


def target_totals(wh, spark, table=TABLE):
    conn = wh.connect(spark)
    try:
        if not wh.table_exists(conn, table):
            return None
        return tuple(conn.query(f"SELECT COUNT(*), SUM({wh.ident('units')}), "
                                f"SUM({wh.ident('amount')}) FROM {wh.qualified(table)}")[0])
    finally:
        conn.close()


def staging_tables(wh, spark, table=TABLE):
    conn = wh.connect(spark)
    try:
        return wh.list_tables(conn, publish.staging_prefix(table))
    finally:
        conn.close()


# The SIGKILL test publishes into schemas of its own: others' publishes of sales_by_product
# into the shared warehouses must not change what it reads between two steps.
KILL_SCHEMAS = {"postgres": {"schema": "pub_kill"}, "db2": {"schema": "PUBKILL"}}


def publish_job(lake_root, target, kill_after=None):
    """Run `spark-submit.sh publish` for TABLE; with kill_after, SIGKILL the whole process group
    as soon as a log line containing that text appears. Returns (exit code, output)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1",
           **overrides_env(lake={"root": str(lake_root)}, **KILL_SCHEMAS)}
    proc = subprocess.Popen([str(PROJECT_ROOT / "spark-submit.sh"), "publish", "--target", target,
                             "--tables", TABLE], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env, start_new_session=True)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if kill_after and kill_after in line:
            os.killpg(proc.pid, signal.SIGKILL)
            break
    proc.wait(timeout=600)
    return proc.returncode, "".join(lines)


@pytest.mark.parametrize("target,rows", [("postgres", 100_000), ("db2", 40_000)])
def test_publish_survives_sigkill_at_every_stage(spark, tmp_path, target, rows):
    cfg = load_config("local", overrides={"lake": {"root": str(tmp_path / "lake")}, **KILL_SCHEMAS})
    wh = {"postgres": PostgresWarehouse, "db2": DB2Warehouse}[target](cfg)
    _reset_schema(wh, spark)
    old, new = gold_frame(spark, rows // 2, 3), gold_frame(spark, rows, 5)
    old_totals, new_totals = totals(spark, old), totals(spark, new)

    delta.overwrite(old, cfg, f"gold.{TABLE}")
    # The previous run's state, published in this session: a job's own first publish is what
    # every pipeline test does; the runs killed below, and the one that heals, are real jobs.
    publish.publish_tables(spark, wh, [publish.read_gold(spark, cfg, TABLE, ["product_id"])], "old")
    assert target_totals(wh, spark) == old_totals

    delta.overwrite(new, cfg, f"gold.{TABLE}")
    # killed while Spark writes the staging table: readers still see the old rows
    rc, out = publish_job(tmp_path / "lake", target, kill_after="into staging")
    assert rc == -signal.SIGKILL, out[-3000:]
    assert target_totals(wh, spark) == old_totals
    # killed once staging is reconciled, around the swap: old or new, never a mixture
    rc, out = publish_job(tmp_path / "lake", target, kill_after="reconciled with gold")
    assert rc == -signal.SIGKILL, out[-3000:]
    assert target_totals(wh, spark) in (old_totals, new_totals)
    assert staging_tables(wh, spark), "a killed run leaves its staging table behind"
    # the next run cleans up and finishes the job
    rc, out = publish_job(tmp_path / "lake", target)
    assert rc == 0, out[-3000:]
    assert "left by an earlier run" in out
    assert target_totals(wh, spark) == new_totals
    assert staging_tables(wh, spark) == []
    # killed after the commit: the new rows stay, and so does their publish_log row (written
    # in the swap's transaction), which tells the next run that gold version 1 is published
    # (a run that finds that skips the table: tests/integration/test_publish_unit.py)
    rc, out = publish_job(tmp_path / "lake", target, kill_after="published")
    assert target_totals(wh, spark) == new_totals
    conn = wh.connect(spark)
    try:
        assert wh.last_published(conn, [TABLE])[TABLE] == (
            1, delta.table_id(spark, cfg, f"gold.{TABLE}"))
    finally:
        conn.close()
    _reset_schema(wh, spark)


def _reset_schema(wh, spark):
    """Empty the test's own schema (PostgreSQL: create it if need be)."""
    conn = wh.connect(spark)
    try:
        if isinstance(wh, PostgresWarehouse):
            conn.execute(f"DROP SCHEMA IF EXISTS {wh.ident(wh.schema)} CASCADE")
            conn.execute(f"CREATE SCHEMA {wh.ident(wh.schema)}")
        else:
            for t in conn.tables(wh.norm(wh.schema)):
                conn.execute(f"DROP TABLE {wh.qualified(t)}")
        conn.commit()
    finally:
        conn.close()


@pytest.mark.parametrize("wh_class", [PostgresWarehouse, DB2Warehouse])
def test_publish_reconciliation_mismatch_leaves_target_unchanged(spark, cfg, monkeypatch, wh_class):
    wh = wh_class(cfg)
    table = "recon_probe"
    df = gold_frame(spark, 500, 2).withColumnRenamed("product_id", "id")
    publish.publish_table(spark, wh, table, df, ["id"])
    before = target_totals(wh, spark, table)

    real_profile = publish.profile

    def profile_claiming_one_more_row(frame):
        expected, lengths = real_profile(frame)
        return [expected[0] + 1, *expected[1:]], lengths

    monkeypatch.setattr(publish, "profile", profile_claiming_one_more_row)
    changed = gold_frame(spark, 900, 4).withColumnRenamed("product_id", "id")
    with pytest.raises(ReconciliationError, match=r"staging does not match gold .*target was not changed"):
        publish.publish_table(spark, wh, table, changed, ["id"])
    assert target_totals(wh, spark, table) == before
    assert staging_tables(wh, spark, table) == []


def test_publish_rerun_is_an_identical_replace(spark, cfg):
    wh = PostgresWarehouse(cfg)
    df = gold_frame(spark, 300, 6)
    publish.publish_table(spark, wh, "rerun_probe", df, ["product_id"])
    conn = wh.connect()
    first = conn.query('SELECT * FROM "public"."rerun_probe" ORDER BY 1')
    conn.close()
    publish.publish_table(spark, wh, "rerun_probe", df, ["product_id"])
    conn = wh.connect()
    assert conn.query('SELECT * FROM "public"."rerun_probe" ORDER BY 1') == first
    pk = conn.query("SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
                    "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = 'public.rerun_probe'::regclass "
                    "AND i.indisprimary")
    conn.close()
    assert pk == [("product_id",)]
    assert sum(r[3] for r in first) == sum(Decimal(i * 6) / 100 for i in range(1, 301))


def test_materialized_total_sales_per_country_is_refreshed(spark, cfg):
    wh = PostgresWarehouse(cfg)
    fact = spark.createDataFrame([(1, 1, Decimal("2.50")), (2, 1, Decimal("1.00")),
                                  (3, 2, Decimal("4.00"))],
                                 "orderid long, countryid int, amount decimal(18,2)")
    dim = spark.createDataFrame([(1, "Argentina"), (2, "Austria")], "countryid int, country string")
    publish.publish_table(spark, wh, "FactSales", fact, ["orderid"])
    publish.publish_table(spark, wh, "DimCountry", dim, ["countryid"])
    assert publish.refresh_derived(spark, wh, ["FactSales"]) == ["mv_total_sales_per_country"]
    conn = wh.connect()
    rows = conn.query('SELECT country, total_sales FROM "public"."mv_total_sales_per_country" ORDER BY 1')
    conn.close()
    assert rows == [("Argentina", Decimal("3.50")), ("Austria", Decimal("4.00"))]


@pytest.mark.parametrize("bulk_write", ["copy", "jdbc"])
def test_postgres_rows_arrive_exactly_by_copy_and_by_jdbc(spark, bulk_write):
    """Values CSV could mangle (delimiters, quotes, newlines, empty text vs NULL, unicode,
    microseconds, time zones) arrive exactly, whichever way the rows move."""
    import datetime as dt

    cfg = load_config("local", overrides={"postgres": {"bulk_write": bulk_write}})
    wh = PostgresWarehouse(cfg)
    texts = ['plain', 'comma, inside', 'quote " inside', 'line\nbreak', '', None, 'Ünïcødé ✓',
             '\\N', 'NULL']
    df = spark.createDataFrame(
        [(i, t, i % 2 == 0 if i != 5 else None, i * 1.5 if i != 4 else None)
         for i, t in enumerate(texts)],
        "id int, label string, flag boolean, ratio double"
    ).select("*",
             (F.col("id") * 1000 + F.lit(0.25)).cast("decimal(12,2)").alias("amount"),
             F.expr("timestamp_micros(1583058030123456 + id * 86400000000)").alias("at"),
             F.expr("date_add(DATE'2020-02-28', id)").alias("day"))
    publish.publish_table(spark, wh, "copy_probe", df, ["id"])
    rows = warehouse_query(wh, 'SELECT id, label, flag, ratio, amount, "at", "day" FROM '
                        '"public"."copy_probe" ORDER BY id')
    start = dt.datetime(2020, 3, 1, 10, 20, 30, 123456, tzinfo=dt.timezone.utc)
    expected = [(i, t, i % 2 == 0 if i != 5 else None, i * 1.5 if i != 4 else None,
                 Decimal(i * 1000) + Decimal("0.25"), start + dt.timedelta(days=i),
                 dt.date(2020, 2, 28) + dt.timedelta(days=i)) for i, t in enumerate(texts)]
    assert rows == expected


def test_postgres_swap_keeps_grants_views_and_logs_the_publish(spark, cfg):
    wh = PostgresWarehouse(cfg)
    publish.publish_table(spark, wh, "swap_probe", gold_frame(spark, 50, 1), ["product_id"])
    conn = wh.connect()
    conn.execute('GRANT SELECT ON "public"."swap_probe" TO PUBLIC')
    conn.execute('DROP VIEW IF EXISTS "public"."swap_probe_view"')
    conn.commit()
    conn.close()

    # replaced by the rename swap: the grant is carried over to the new table
    publish.publish_table(spark, wh, "swap_probe", gold_frame(spark, 60, 2), ["product_id"],
                          run_id="probe-run-2")
    assert warehouse_query(wh, "SELECT grantee, privilege_type FROM information_schema.role_table_grants "
                        "WHERE table_name = 'swap_probe' AND grantee = 'PUBLIC'") == [("PUBLIC", "SELECT")]
    assert target_totals(wh, spark, "swap_probe") == totals(spark, gold_frame(spark, 60, 2))

    # a view someone else built on the table survives the next publish and shows its rows
    conn = wh.connect()
    conn.execute('CREATE VIEW "public"."swap_probe_view" AS SELECT SUM(units) AS u '
                 'FROM "public"."swap_probe"')
    conn.commit()
    conn.close()
    publish.publish_table(spark, wh, "swap_probe", gold_frame(spark, 70, 3), ["product_id"],
                          run_id="probe-run-3")
    assert warehouse_query(wh, 'SELECT u FROM "public"."swap_probe_view"') == \
        [(sum(i % 7 + 3 for i in range(1, 71)),)]
    log_rows = warehouse_query(wh, "SELECT run_id, row_count FROM publish_log WHERE table_name = "
                            "'swap_probe' ORDER BY published_at DESC LIMIT 2")
    assert log_rows == [("probe-run-3", 70), ("probe-run-2", 60)]
    conn = wh.connect()
    conn.execute('DROP VIEW "public"."swap_probe_view"')
    conn.commit()
    conn.close()
