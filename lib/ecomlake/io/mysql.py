"""MySQL (MariaDB locally): the OLTP source. Python driver for checks and bulk loads, Spark JDBC
for extraction. Everything that talks to MySQL is here."""
from __future__ import annotations

import logging
import socket

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


def read_keys(spark, cfg: Config, table: str, keys: list[str], partition_column: str):
    """Every key of `table` (for detecting deletions by comparing key sets), read in parallel
    like the rows are (10M keys, scale 10: 21.5 s on one connection, 12.8 s on four)."""
    return read_table(spark, cfg, table, key=partition_column, fetch_size=50_000,
                      columns=", ".join(f"`{k}`" for k in keys))
