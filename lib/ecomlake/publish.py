"""Publish gold tables to a warehouse, atomically.

For each table: drop staging tables left by a killed run; create a per-run staging table with
the warehouse's types; Spark writes the rows into it over JDBC; reconcile staging against the
gold DataFrame (row count and the sum of every numeric column); then one transaction makes the
target hold exactly the staging rows and drops staging. Readers see the old table or the new
one, never a mixture; a rerun of the same gold is an identical replace. A mismatch raises
ReconciliationError and leaves the target untouched.
"""
from __future__ import annotations

import logging
import math
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from ecomlake.errors import ReconciliationError
from ecomlake.io.warehouse import Warehouse

log = logging.getLogger(__name__)

@dataclass
class PublishResult:
    target: str
    table: str
    rows: int
    seconds: float


def staging_prefix(table: str) -> str:
    return f"stg_{table}_"


def numeric_columns(schema: T.StructType) -> list[str]:
    return [f.name for f in schema.fields
            if isinstance(f.dataType, (T.NumericType)) and not isinstance(f.dataType, T.BooleanType)]


def profile(df: DataFrame) -> tuple[list, dict[str, int]]:
    """[count, sum(numeric columns)...] and max length of each string column, in one pass."""
    nums = numeric_columns(df.schema)
    strings = [f.name for f in df.schema.fields if isinstance(f.dataType, T.StringType)]
    row = df.agg(F.count(F.lit(1)), *[F.sum(c) for c in nums],
                 *[F.max(F.length(c)) for c in strings]).collect()[0]
    values = list(row)
    return values[:1 + len(nums)], dict(zip(strings, values[1 + len(nums):]))


def same_totals(expected: list, actual: list) -> bool:
    for e, a in zip(expected, actual):
        if e is None or a is None:
            if (e or 0) != (a or 0):
                return False
        elif isinstance(e, float) or isinstance(a, float):
            if not math.isclose(float(e), float(a), rel_tol=1e-9, abs_tol=1e-6):
                return False
        elif Decimal(str(e)) != Decimal(str(a)):
            return False
    return True


def refresh_derived(spark, wh: Warehouse, published: list[str]) -> list[str]:
    """Create (once) and refresh the warehouse-side objects derived from published tables,
    e.g. the materialized total_sales_per_country. Returns what was refreshed."""
    done = []
    conn = wh.connect(spark)
    try:
        for obj in wh.derived_objects():
            if not set(obj.depends_on) & set(published):
                continue
            if not wh.table_exists(conn, obj.name):
                conn.execute(obj.create_sql)
            for sql in obj.refresh_sql:
                conn.execute(sql)
            conn.commit()
            done.append(obj.name)
            log.info("%s: refreshed %s", wh.name, wh.qualified(obj.name))
    finally:
        conn.close()
    return done


def publish_table(spark, wh: Warehouse, table: str, df: DataFrame, primary_key: list[str],
                  run_id: str = "") -> PublishResult:
    t0 = time.monotonic()
    conn = wh.connect(spark)
    try:
        for leftover in wh.list_tables(conn, staging_prefix(table)):
            log.warning("%s: dropping staging table %s left by an earlier run", wh.name, leftover)
            conn.execute(f"DROP TABLE {wh.qualified(leftover)}")
        if not wh.table_exists(conn, wh.PUBLISH_LOG):
            conn.execute(wh.create_table_sql(wh.PUBLISH_LOG, wh.publish_log_columns(), []))
        conn.commit()

        expected, string_lengths = profile(df)
        columns = wh.columns(df.schema, string_lengths)
        staging = staging_prefix(table) + uuid.uuid4().hex[:8]
        conn.execute(wh.create_table_sql(staging, columns, primary_key=[]))
        conn.commit()
        log.info("%s: writing %d rows of gold.%s into staging %s", wh.name, expected[0], table,
                 wh.qualified(staging))

        out = df.select([F.col(f.name).alias(c.name) for f, c in zip(df.schema.fields, columns)])
        wh.write_staging(out, staging, int(expected[0]))
        for sql in wh.prepare_staging_statements(staging, primary_key):
            conn.execute(sql)
        conn.commit()

        sums = ", ".join(wh.sum_sql(c, df.schema[c].dataType) for c in numeric_columns(df.schema))
        actual = list(conn.query(f"SELECT COUNT(*){', ' + sums if sums else ''} "
                                 f"FROM {wh.qualified(staging)}")[0])
        if not same_totals(expected, actual):
            conn.execute(f"DROP TABLE {wh.qualified(staging)}")
            conn.commit()
            raise ReconciliationError(
                f"{wh.name}: {table} staging does not match gold "
                f"(count, sums of {numeric_columns(df.schema)}): gold={expected} "
                f"staging={actual}; the target was not changed")
        log.info("%s: staging %s reconciled with gold.%s (%d rows); swapping", wh.name,
                 wh.qualified(staging), table, expected[0])

        statements = wh.swap_statements(conn, table, staging, columns, primary_key)
        statements.append(wh.publish_log_insert_sql(table, int(expected[0]), run_id))
        for sql in statements:
            conn.execute(sql)
        conn.commit()   # the one moment readers switch from the old rows to the new
    except BaseException:
        conn.rollback()
        raise
    finally:
        conn.close()
    result = PublishResult(wh.name, table, int(expected[0]), time.monotonic() - t0)
    log.info("%s: published %s (%d rows) in %.1fs", wh.name, wh.qualified(table), result.rows,
             result.seconds)
    return result
