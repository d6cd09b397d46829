"""The two warehouses, side by side: PostgreSQL (staging) and DB2 (production).

Spark's JDBC writer moves the rows; the DDL and the swap transaction run on a DB-API style
connection: psycopg2 for PostgreSQL, and for DB2 IBM's JCC driver (the same jar Spark writes
with) through the Spark JVM. JCC is used for DB2's transactions too because it is the driver
verified on both a real DB2 and the local DRDA stand-in; ibm_db's CLI cannot talk to Derby
(SQL0901N, see README "The DB2 path").

Identifiers: PostgreSQL folds unquoted names to lower case and DB2 to upper case; each
warehouse normalises names that way and Spark's quoted INSERT then matches the created columns.
"""
from __future__ import annotations

# The modules: base (the Warehouse base class and what both warehouses share), postgres
# (PostgresWarehouse, PgConnection) and db2 (DB2Warehouse, JdbcConnection). Every name the
# former single module defined is importable from here as before.
from ecomlake.config import Config
from ecomlake.io.warehouse.base import (  # noqa: F401  (re-exported)
    JDBC_BATCH_SIZE, MAX_WRITE_PARTITIONS, TOTAL_SALES_PER_COUNTRY, Column, Derived, PublishBusy,
    CHANGE_OP, Swap, Warehouse, _COMMON_TYPES, _bounded_partitions, _java_message, _literal, _py, _role,
    _safe, log)
from ecomlake.io.warehouse.db2 import DB2Warehouse, JdbcConnection  # noqa: F401
from ecomlake.io.warehouse.postgres import PgConnection, PostgresWarehouse  # noqa: F401

WAREHOUSES = {"postgres": PostgresWarehouse, "db2": DB2Warehouse}


def warehouse(name: str, cfg: Config) -> Warehouse:
    try:
        return WAREHOUSES[name](cfg)
    except KeyError:
        raise ValueError(f"unknown publish target {name!r} (valid: {', '.join(WAREHOUSES)}, all)") from None
