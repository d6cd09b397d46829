"""Publish a run's gold tables to a warehouse, as one unit.

A gold table whose Delta version (and table id) is the one publish_log says was last published
to this warehouse is skipped: a rerun with no gold change writes nothing. For the others, under
the warehouse's publish lock (PostgreSQL: pg_advisory_xact_lock; DB2: an exclusive lock on
the one-row table publish_lock), held by the swap transaction from before the first staging
table is created until its commit: drop staging tables left by killed runs (no live publish
owns any, since a live one holds the lock); for each table (two at a time, each on its own
connection) create a per-run staging table with the warehouse's types, let Spark write the rows
into it, and reconcile it against the gold DataFrame (row count and the sum of every numeric
column); then ONE transaction swaps every
table (rename, or a refill where foreign views depend on it), writes their publish_log rows and
rebuilds the derived objects over them. Readers see all the old tables or all the new ones,
never new dimensions beside old facts. A mismatch drops the staging tables and raises
ReconciliationError with every target untouched.

A large table (the warehouse's `changes_min_rows`) whose last publish there was an earlier
version of the same gold table may go as its changes instead (changed_rows): staging holds the
new or changed rows and the deleted keys, the unit's transaction applies them, and the whole
target is reconciled with gold before the commit; a target that disagrees rolls the unit back
and the tables are published whole.
"""
from __future__ import annotations

import logging
import math
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from ecomlake.errors import ReconciliationError
from ecomlake.io import delta
from ecomlake.io.warehouse import CHANGE_OP, Swap, Warehouse, _java_message
from ecomlake.spark import in_parallel

log = logging.getLogger(__name__)

@dataclass
class PublishResult:
    target: str
    table: str
    rows: int
    seconds: float
    derived: tuple[str, ...] = ()


@dataclass
class GoldTable:
    """A gold table as one publish reads it: pinned to one Delta version."""
    name: str
    df: DataFrame | None           # None: read at `version` when it is published (gold_frame)
    primary_key: list[str]
    version: int | None = None     # None: unknown, always published
    table_id: str | None = None
    path: str | None = None
    # profile() of the pinned rows, computed by the first warehouse that needs it (the
    # warehouses are published at the same time, from one GoldTable per table)
    measured: tuple | None = field(default=None, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)


def gold_profile(spark, t: GoldTable) -> tuple[list, dict[str, int]]:
    """profile() of t's rows, once for every warehouse it is published to."""
    with t._lock:
        if t.measured is None:
            t.measured = profile(gold_frame(spark, t))
        return t.measured


def read_gold(spark, cfg, name: str, primary_key: list[str]) -> GoldTable:
    """gold.<name> at its current version, with that version and the table's id (a table
    rebuilt from scratch, or another lake's, starts its versions again: the id tells). Both come
    from the table's _delta_log files; the data is read only if the table is published."""
    version = delta.latest_version(spark, cfg, f"gold.{name}")
    if version is None:
        raise FileNotFoundError(f"gold.{name}: no Delta table at {delta.path(cfg, f'gold.{name}')}"
                                " (run the gold stage first)")
    return GoldTable(name, None, primary_key, version, delta.table_id(spark, cfg, f"gold.{name}"),
                     delta.path(cfg, f"gold.{name}"))


def gold_frame(spark, t: GoldTable) -> DataFrame:
    """The table's rows at the version the publish pinned."""
    if t.df is None:
        t.df = spark.read.format("delta").option("versionAsOf", t.version).load(t.path)
    return t.df


class TargetMismatch(ReconciliationError):
    """A target changed by a changes table does not match gold, inside the transaction."""


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
    """One table alone (always published): a unit of one."""
    return publish_tables(spark, wh, [GoldTable(table, df, primary_key)], run_id)[0]


def publish_tables(spark, wh: Warehouse, tables: list[GoldTable], run_id: str = "",
                   republish: bool = False) -> list[PublishResult]:
    """Publish the tables that changed since their last publish to `wh` in one transaction.
    Returns a result per table published (none when nothing changed).

    A target that took a changes table and then disagrees with gold (someone changed it in the
    warehouse since our last publish) rolls the whole unit back; the tables are then published
    again whole, in a new unit."""
    try:
        return _publish(spark, wh, tables, run_id, republish, changes=True)
    except TargetMismatch as exc:
        log.warning("%s: %s; rolled back: publishing every table whole instead", wh.name, exc)
        return _publish(spark, wh, tables, run_id, republish, changes=False)


def _publish(spark, wh: Warehouse, tables: list[GoldTable], run_id: str, republish: bool,
             changes: bool) -> list[PublishResult]:
    t0 = time.monotonic()
    work = wh.connect(spark)
    lock = None
    created: list[str] = []
    try:
        last = wh.last_published(work, [t.name for t in tables])
        todo = []
        for t in tables:
            if not republish and published(wh, work, last, t.name, t.version, t.table_id):
                log.info("%s: skipped: gold.%s version %d already published", wh.name, t.name,
                         t.version)
            else:
                todo.append(t)
        leftovers = leftover_staging(wh, work, [t.name for t in tables])
        work.commit()
        if not todo and not leftovers:
            log.info("%s: nothing changed in gold: nothing written", wh.name)
            return []

        lock = wh.connect(spark)
        log.info("%s: taking the publish lock", wh.name)
        wh.acquire_publish_lock(lock, f"ecomlake publish {run_id} pid {os.getpid()}")
        # Under the lock no other publish is live: every staging table is a dead run's.
        for leftover in leftover_staging(wh, work, [t.name for t in tables]):
            log.warning("%s: dropping staging table %s left by an earlier run", wh.name, leftover)
            work.execute(f"DROP TABLE {wh.qualified(leftover)}")
        for sql in wh.publish_log_statements(work):
            work.execute(sql)
        work.commit()
        if not todo:
            lock.rollback()
            return []

        # The gold version each table holds, where a changes table can bring it up to gold's
        # (an earlier version of the same gold table). Read again under the lock: a publish
        # that finished while this one waited for it has moved the tables since `last`.
        held = wh.last_published(work, [t.name for t in todo]) if changes and not republish \
            else {}
        work.commit()
        since = {t.name: held[t.name][0] for t in todo
                 if t.name in held and held[t.name][1] == t.table_id and t.primary_key
                 and None not in (held[t.name][0], t.version) and held[t.name][0] < t.version}
        swaps, log_rows, results = [], [], []
        for t, (swap, rows, seconds) in zip(todo, in_parallel(
                lambda t: _stage_apart(spark, wh, t, created, since.get(t.name)), todo)):
            swaps.append(swap)
            log_rows.append(wh.publish_log_insert_sql(t.name, rows, run_id, t.version, t.table_id))
            results.append(PublishResult(wh.name, t.name, rows, seconds))

        log.info("%s: all %d staging tables reconciled; swapping them in one transaction",
                 wh.name, len(swaps))
        _swap(wh, lock, swaps, log_rows)
        for t, swap in zip(todo, swaps):
            if swap.changes:   # the whole target, inside the transaction, before the commit
                _check_target(spark, wh, lock, t)
        lock.commit()   # the one moment readers switch from the old tables to the new
        created.clear()
    except BaseException:
        work.rollback()
        if lock is not None:
            lock.rollback()
        _drop_quietly(wh, work, created)
        raise
    finally:
        work.close()
        if lock is not None:
            lock.close()
    targets = {wh.norm(s.target) for s in swaps}
    derived = tuple(o.name for o in wh.derived_objects()
                    if {wh.norm(d) for d in o.depends_on} & targets)
    for r in results:
        r.derived = derived
        log.info("%s: published %s (%d rows)", wh.name, wh.qualified(r.table), r.rows)
    log.info("%s: published %d tables in one transaction in %.1fs%s", wh.name, len(results),
             time.monotonic() - t0, f"; rebuilt {', '.join(derived)}" if derived else "")
    return results


def _swap(wh: Warehouse, conn, swaps: list[Swap], log_rows: list[str]) -> None:
    """The swap statements and publish_log rows, in the transaction holding the publish lock.
    A deadlock with a reader (PostgreSQL aborts one of the two) rolls back to a savepoint and
    tries again: the publish lock, taken before it, is kept, and so are the staging tables."""
    for attempt in range(1, wh.SWAP_RETRIES + 2):
        if wh.SWAP_RETRIES:
            conn.execute("SAVEPOINT publish_swap")
        try:
            for sql in wh.unit_statements(conn, swaps) + log_rows:
                conn.execute(sql)
            return
        except Exception as exc:
            if attempt > wh.SWAP_RETRIES or not wh.retryable(exc):
                raise
            log.warning("%s: the swap lost a deadlock to a reader (%s); trying again (%d/%d)",
                        wh.name, str(exc).splitlines()[0], attempt, wh.SWAP_RETRIES)
            conn.execute("ROLLBACK TO SAVEPOINT publish_swap")


def published(wh: Warehouse, conn, last: dict, name: str, version: int | None,
              table_id: str | None) -> bool:
    """Whether gold.<name> at (version, table_id) is what `wh` holds: publish_log's last row
    for it (`last`: wh.last_published) names them, and the table is there. Such a table is not
    published again (ecomlake.quickcheck asks the same before Spark starts)."""
    return version is not None and last.get(name) == (version, table_id) and \
        wh.table_exists(conn, name)


def leftover_staging(wh: Warehouse, conn, names: list[str]) -> list[str]:
    """Staging tables of the gold tables `names` still in `wh` (a dead run's, once the publish
    lock is held)."""
    return sorted({s for n in names for s in wh.list_tables(conn, staging_prefix(n))})


def _stage_apart(spark, wh: Warehouse, t: GoldTable, created: list[str], since: int | None):
    """_stage on a connection of its own, timed: (Swap, rows, seconds).

    The tables are staged two at a time (ecomlake.spark.in_parallel): a small table's staging
    is mostly fixed cost (a Spark job for its profile, one for its rows, a few statements), so
    a second table fills the time. Only the swap needs one connection and one transaction."""
    t0 = time.monotonic()
    conn = wh.connect(spark)
    try:
        swap, rows = _stage(spark, wh, conn, t, created, since)
    finally:
        conn.close()
    return swap, rows, time.monotonic() - t0


def _stage(spark, wh: Warehouse, conn, t: GoldTable, created: list[str],
           since: int | None = None) -> tuple[Swap, int]:
    """Create t's staging table, fill it and reconcile it; returns (its Swap, t's rows). The
    staging table holds t's rows, or, when `since` (the gold version the warehouse holds)
    allows and t qualifies (see below), only the rows that changed since. The staging
    table's name is appended to `created` as soon as it exists."""
    df = gold_frame(spark, t)
    expected, string_lengths = gold_profile(spark, t)
    columns = wh.columns(df.schema, string_lengths)
    changed = None
    # A table of at least `changes_min_rows` rows (the warehouse's setting; 0: never), with a
    # primary key and no text column (a changes table cannot bring a wider text than the
    # target's column holds), whose last publish here was an earlier version of the same gold
    # table, goes as its changes (changed_rows), applied in the unit's transaction; the whole
    # target is then reconciled with gold inside it (_check_target).
    if since is not None and 0 < wh.changes_min_rows <= expected[0] and not string_lengths and \
            [c.upper() for c in wh.table_columns(conn, t.name) or []] == \
            [c.name.upper() for c in columns]:
        changed = changed_rows(spark, t, since, df)
    conn.commit()
    if changed is None:
        staging = _fill(wh, conn, t, df, columns, expected, created,
                        f"{expected[0]} rows of gold.{t.name}")
        return Swap(t.name, staging, columns, t.primary_key), int(expected[0])
    try:
        got, lengths = profile(changed)
        n_gone = changed.filter(F.col(CHANGE_OP) == "D").count()
        staging = _fill(wh, conn, t, changed, wh.columns(changed.schema, lengths), got, created,
                        f"the changes of gold.{t.name} since version {since} ({got[0] - n_gone} "
                        f"new or changed rows, {n_gone} deleted; {expected[0]} rows in all)")
    finally:
        changed.unpersist()
    return Swap(t.name, staging, columns, t.primary_key, changes=True), int(expected[0])


def _fill(wh: Warehouse, conn, t: GoldTable, df: DataFrame, columns, expected: list,
          created: list[str], what: str) -> str:
    """Create a staging table for `df` with `columns`, write `df` into it and reconcile it
    with `expected` (profile() of df); returns its name."""
    staging = staging_prefix(t.name) + uuid.uuid4().hex[:8]
    conn.execute(wh.create_table_sql(staging, columns, wh.staging_key(t.primary_key)))
    conn.commit()
    created.append(staging)
    log.info("%s: writing %s into staging %s", wh.name, what, wh.qualified(staging))

    out = df.select([F.col(f.name).alias(c.name) for f, c in zip(df.schema.fields, columns)])
    wh.write_staging(out, staging, int(expected[0]))
    for sql in wh.prepare_staging_statements(staging, t.primary_key):
        conn.execute(sql)
    conn.commit()

    actual = _totals(wh, conn, staging, df.schema)
    conn.commit()
    if not same_totals(expected, actual):
        raise ReconciliationError(
            f"{wh.name}: {t.name} staging does not match gold "
            f"(count, sums of {numeric_columns(df.schema)}): gold={expected} "
            f"staging={actual}; the target was not changed")
    log.info("%s: staging %s reconciled with gold.%s (%d rows)", wh.name,
             wh.qualified(staging), t.name, expected[0])
    return staging


def _totals(wh: Warehouse, conn, table: str, schema: T.StructType) -> list:
    """[count, sum of each numeric column of `schema`] of a warehouse table."""
    sums = ", ".join(wh.sum_sql(c, schema[c].dataType) for c in numeric_columns(schema))
    return list(conn.query(f"SELECT COUNT(*){', ' + sums if sums else ''} "
                           f"FROM {wh.qualified(table)}")[0])


def _check_target(spark, wh: Warehouse, conn, t: GoldTable) -> None:
    """After a changes table was applied, in the unit's transaction: the whole target must
    match gold (count and the sum of every numeric column), else TargetMismatch."""
    expected, _ = gold_profile(spark, t)
    actual = _totals(wh, conn, t.name, gold_frame(spark, t).schema)
    if not same_totals(expected, actual):
        raise TargetMismatch(
            f"{wh.qualified(t.name)} with the changes of gold.{t.name} applied does not match "
            f"gold (count, sums): gold={expected}, target={actual}")
    log.info("%s: %s reconciled with gold.%s version %d as a whole (%d rows)", wh.name,
             wh.qualified(t.name), t.name, t.version, expected[0])


def changed_rows(spark, t: GoldTable, since: int, new: DataFrame) -> DataFrame | None:
    """The changes table of `t` from gold version `since` to its pinned version, cached: the
    new rows of the keys that are new or whose row differs (CHANGE_OP 'U'; rows compared by
    two hashes of every column and of where its NULLs are, 96 bits) and the keys that are gone ('D', other columns NULL).
    None when that version cannot be read (its files vacuumed, its log cleaned up) or had other
    columns: the table then goes whole."""
    key, cols = t.primary_key, new.columns
    try:
        old = spark.read.format("delta").option("versionAsOf", since).load(t.path)
        if [(f.name, f.dataType) for f in old.schema] != [(f.name, f.dataType) for f in new.schema]:
            log.info("gold.%s: version %d has other columns: published whole", t.name, since)
            return None

        # Spark's hashes skip NULLs, so (NULL, 5) and (5, NULL) would hash alike: where the
        # NULLs are is hashed too
        nulls = F.concat_ws("", *[F.when(F.col(c).isNull(), "1").otherwise("0") for c in cols])

        def hashed(df, side):
            return df.select(*key, F.xxhash64(*cols, nulls).alias(f"{side}64"),
                             F.hash(*cols, nulls).alias(f"{side}32"))

        both = hashed(old, "o").join(hashed(new, "n"), key, "full_outer")
        differ = F.col("n64").isNotNull() & (F.col("o64").isNull() | (F.col("o64") != F.col("n64"))
                                             | (F.col("o32") != F.col("n32")))
        upserts = (new.join(both.filter(differ).select(*key), key, "left_semi")
                   .withColumn(CHANGE_OP, F.lit("U")))
        gone = both.filter(F.col("n64").isNull()).select(
            *[F.col(c) if c in key else F.lit(None).cast(new.schema[c].dataType).alias(c)
              for c in cols], F.lit("D").alias(CHANGE_OP))
        out = upserts.unionByName(gone).cache()
        try:
            out.count()
        except Exception:
            out.unpersist()
            raise
        return out
    except Exception as exc:   # a version that cannot be read costs a whole publish, no more
        log.warning("gold.%s: version %d cannot be compared (%s): published whole", t.name,
                    since, _java_message(exc))
        return None


def _drop_quietly(wh: Warehouse, conn, staging: list[str]) -> None:
    """Drop this run's staging tables after a failure (a killed run's are dropped by the next
    run, under the lock)."""
    for name in staging:
        try:
            conn.execute(f"DROP TABLE {wh.qualified(name)}")
            conn.commit()
        except Exception as exc:   # the connection itself may be gone
            log.warning("%s: could not drop staging %s (%s); the next publish will", wh.name,
                        name, exc)
            try:
                conn.rollback()
            except Exception:
                pass
