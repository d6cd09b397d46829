"""MySQL (MariaDB locally): the OLTP source. Python driver for checks and bulk loads, Spark JDBC
for extraction. Everything that talks to MySQL is here."""
from __future__ import annotations

import logging
import socket
import time

import mysql.connector
from mysql.connector import errorcode

from ecomlake.config import Config
from ecomlake.errors import refused, unavailable

log = logging.getLogger(__name__)
JDBC_DRIVER = "com.mysql.cj.jdbc.Driver"


def connect(cfg: Config, *, loader: bool = False, **kwargs):
    """A mysql-connector-python connection, or a ServiceUnavailable/LoginRefused that says why.

    The pipeline's account (`mysql.user`) may only read the sources; `loader=True` connects as
    the account that creates and writes them (`mysql.loader_user`: generate, changes,
    load-capstone)."""
    m = cfg.mysql
    user, var = (m.loader_user, m.loader_password_env) if loader else (m.user, m.password_env)
    try:
        return mysql.connector.connect(host=m.host, port=m.port, user=user,
                                       password=cfg.secret("mysql", var), database=m.database,
                                       connection_timeout=5, **kwargs)
    except mysql.connector.Error as exc:
        if exc.errno == errorcode.ER_ACCESS_DENIED_ERROR:
            raise refused("MySQL", m.address, user, var, exc.msg) from None
        if exc.errno in (errorcode.ER_BAD_DB_ERROR, errorcode.ER_DBACCESS_DENIED_ERROR):
            raise unavailable("MySQL", "OLTP source", m.address,
                              f"no database `{m.database}` for user '{user}'",
                              "mysql.database", cfg.source_file) from None
        raise unavailable("MySQL", "OLTP source", m.address, str(exc.msg or exc), "mysql.host/port",
                          cfg.source_file) from None
    except (OSError, socket.error) as exc:
        raise unavailable("MySQL", "OLTP source", m.address, str(exc), "mysql.host/port",
                          cfg.source_file) from None


def check(cfg: Config) -> None:
    connect(cfg).close()


def jdbc_options(cfg: Config) -> dict[str, str]:
    # The password goes to the JVM in-process, never through spark-submit's argv.
    return {"url": cfg.mysql.jdbc_url, "user": cfg.mysql.user,
            "password": cfg.secret("mysql"), "driver": JDBC_DRIVER}


def key_bounds(cfg: Config, table: str, key: str, where: str = "1=1") -> tuple[int, int, int]:
    """(min, max, count) of an integer key over the rows a batch covers: the partition bounds
    for a parallel JDBC read come from the batch itself, not from the whole table."""
    conn = connect(cfg)
    try:
        cur = conn.cursor()
        cur.execute(f"SELECT MIN(`{key}`), MAX(`{key}`), COUNT(*) FROM `{table}` WHERE {where}")
        lo, hi, n = cur.fetchone()
        return int(lo or 0), int(hi or 0), int(n)
    finally:
        conn.close()


def read_table(spark, cfg: Config, table: str, *, key: str, where: str = "1=1",
               max_partitions: int = 4, fetch_size: int = 10_000, columns: str = "*"):
    """Read `columns` of the rows of `table` matching `where` over JDBC, in parallel on `key`
    ranges."""
    lo, hi, n = key_bounds(cfg, table, key, where)
    partitions = max(1, min(max_partitions, n // 50_000 + 1))
    log.info("mysql: reading %s of %s rows of %s (%s <= %s <= %s) in %d partition(s)",
             "every column" if columns == "*" else columns, n, table, lo, key, hi, partitions)
    reader = (spark.read.format("jdbc").options(**jdbc_options(cfg))
              .option("dbtable", f"(SELECT {columns} FROM `{table}` WHERE {where}) AS batch")
              .option("fetchsize", fetch_size))
    if partitions > 1:
        reader = (reader.option("partitionColumn", key).option("lowerBound", lo)
                  .option("upperBound", hi + 1).option("numPartitions", partitions))
    return reader.load()


def read_keys(spark, cfg: Config, table: str, keys: list[str], partition_column: str,
              where: str = "1=1"):
    """The keys of `table` (of the rows matching `where`), for comparing key sets, read in
    parallel like the rows are (10M keys, scale 10: 21.5 s on one connection, 12.8 s on four)."""
    return read_table(spark, cfg, table, key=partition_column, fetch_size=50_000, where=where,
                      columns=", ".join(f"`{k}`" for k in keys))


def key_range(column: str, width: int) -> str:
    """The SQL of the key range a row falls in: ranges of `width` values of an integer column
    (the same as reconcile.key_range computes in Spark)."""
    return f"(`{column}` DIV {int(width)})"


def in_key_ranges(column: str, width: int, ranges) -> str:
    """The SQL predicate selecting the rows of the given key ranges."""
    return f"{key_range(column, width)} IN ({', '.join(str(int(r)) for r in sorted(ranges))})"


def key_range_summary(cfg: Config, table: str, keys: list[str], column: str,
                      width: int) -> dict[int, tuple[int, int, int]]:
    """Per key range of `column`: (keys, sum of CRC32, XOR of 60 bits of MD5) over the text of
    each row's key (`k1,k2`), computed inside MySQL: only one row per range crosses the wire.
    The same figures over the lake's keys come from reconcile.range_figures; equal figures say
    a range holds the same keys on both sides (a difference slipping through needs equal
    counts and a collision of both hashes)."""
    conn = connect(cfg)
    try:
        cur = conn.cursor()
        cur.execute(f"SELECT {key_range(column, width)} AS r, {_key_figures(keys)} "
                    f"FROM `{table}` GROUP BY r")
        return {int(r): (int(n), int(crc), int(md5)) for r, n, crc, md5 in cur.fetchall()}
    finally:
        conn.close()


def _key_figures(keys: list[str]) -> str:
    """COUNT, sum of CRC32 and XOR of 60 bits of MD5 over the text of each row's key."""
    text = f"CONCAT_WS(',', {', '.join(f'`{k}`' for k in keys)})"
    return (f"COUNT(*), SUM(CRC32({text})), "
            f"BIT_XOR(CAST(CONV(SUBSTRING(MD5({text}), 1, 15), 16, 10) AS UNSIGNED))")


def key_summary(cfg: Config, table: str, keys: list[str]) -> tuple[int, int, int]:
    """key_range_summary's figures over the whole table, in one aggregate inside MySQL (an
    index scan: 1.0 s for 1M keys on this machine)."""
    conn = connect(cfg)
    try:
        cur = conn.cursor()
        cur.execute(f"SELECT {_key_figures(keys)} FROM `{table}`")
        n, crc, md5 = cur.fetchone()
        return int(n), int(crc or 0), int(md5 or 0)
    finally:
        conn.close()


def stamped_after(cfg: Config, table: str, column: str, mark) -> int:
    """Rows whose `column` (updated_at, which the server stamps on every change) is after the
    UTC `mark`: an index range scan."""
    conn = connect(cfg)
    try:
        cur = conn.cursor()
        cur.execute("SET time_zone = '+00:00'")
        cur.execute(f"SELECT COUNT(*) FROM `{table}` "
                    f"WHERE `{column}` > '{mark:%Y-%m-%d %H:%M:%S.%f}'")
        return int(cur.fetchone()[0])
    finally:
        conn.close()


def high_water_mark(cfg: Config):
    """The upper bound of an incremental read, taken before the read: no transaction still open
    can have stamped a row at or before it. `updated_at` is stamped when a statement starts, not
    when its transaction commits, so a plain "now" (or the largest value read) would skip rows
    of a transaction that commits later. The mark is the server's clock, lowered to the start of
    the oldest InnoDB transaction still open `mysql.mark_settle_seconds` later
    (information_schema.innodb_trx, which needs the PROCESS privilege): a statement stamped
    before the clock reading has registered its transaction by then, or committed. Both readings
    come from the server, whose clock stamps `updated_at`; the session runs in UTC."""
    m = cfg.mysql
    conn = connect(cfg)
    try:
        cur = conn.cursor()
        cur.execute("SET time_zone = '+00:00'")
        cur.execute("SELECT NOW(3)")
        (clock,) = cur.fetchone()
        time.sleep(m.mark_settle_seconds)
        try:
            cur.execute("SELECT MIN(trx_started) FROM information_schema.innodb_trx")
        except mysql.connector.Error as exc:
            if exc.errno in (errorcode.ER_SPECIFIC_ACCESS_DENIED_ERROR,
                             errorcode.ER_DBACCESS_DENIED_ERROR, errorcode.ER_ACCESS_DENIED_ERROR,
                             errorcode.ER_TABLEACCESS_DENIED_ERROR):
                raise refused("MySQL", m.address, m.user, m.password_env,
                              f"{exc.msg}. The incremental high-water mark reads "
                              "information_schema.innodb_trx: GRANT PROCESS ON *.* TO the "
                              "pipeline's account (`ecomlake stack up` does)") from None
            raise
        (oldest_open,) = cur.fetchone()
    finally:
        conn.close()
    mark = clock if oldest_open is None else min(clock, oldest_open)
    log.info("mysql: high-water mark %s (server clock %s; oldest transaction open %ss later "
             "started: %s)", mark, clock, m.mark_settle_seconds, oldest_open or "none")
    return mark


def window_counts(cfg: Config, table: str, column: str, lower, mark, upper) -> tuple[int, int]:
    """(rows stamped in [lower, mark], rows stamped in (mark, upper]) by `column`, counted on
    the server (an index range scan; `lower` None: from the beginning). The marks are UTC, as
    `high_water_mark` takes them."""
    fmt = "%Y-%m-%d %H:%M:%S.%f"
    since = f"`{column}` >= '{lower:{fmt}}' AND " if lower is not None else ""
    conn = connect(cfg)
    try:
        cur = conn.cursor()
        cur.execute("SET time_zone = '+00:00'")
        cur.execute(f"SELECT COUNT(CASE WHEN `{column}` <= '{mark:{fmt}}' THEN 1 END), "
                    f"COUNT(CASE WHEN `{column}` > '{mark:{fmt}}' THEN 1 END) FROM `{table}` "
                    f"WHERE {since}`{column}` <= '{upper:{fmt}}'")
        in_window, later = cur.fetchone()
        return int(in_window), int(later)
    finally:
        conn.close()


def keys_predicate(keys: list[str], values: list[tuple]) -> str:
    """`(k1, k2) IN ((..), ..)` over integer key values (validated as ints: they go into SQL)."""
    rows = ", ".join("(" + ", ".join(str(int(v)) for v in row) + ")" for row in values)
    return f"({', '.join(f'`{k}`' for k in keys)}) IN ({rows})"


# Up to this many keys are re-read by listing them; more are found by a full read and a join.
MAX_LISTED_KEYS = 50_000


def read_rows_by_keys(spark, cfg: Config, table: str, keys: list[str], split_column: str,
                      wanted):
    """The current rows of `table` whose key is in the DataFrame `wanted` (the reconciliation's
    missing keys). Few keys are listed in the query; many are matched after a full read."""
    values = [tuple(r) for r in wanted.select(*keys).limit(MAX_LISTED_KEYS + 1).collect()]
    if len(values) <= MAX_LISTED_KEYS:
        return read_table(spark, cfg, table, key=split_column,
                          where=keys_predicate(keys, values))
    return read_table(spark, cfg, table, key=split_column).join(
        wanted.select(*keys), on=keys, how="left_semi")
