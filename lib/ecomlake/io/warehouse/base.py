"""What both warehouses share: the Warehouse base class (what a publish target must provide),
the records of a publish unit (Swap, Column, Derived), and the module helpers. The package
docstring (ecomlake.io.warehouse) says how the two warehouses are reached."""
from __future__ import annotations

import logging
import re
from decimal import Decimal
from dataclasses import dataclass

from pyspark.sql import types as T

from ecomlake.config import Config
from ecomlake.errors import EcomlakeError

# the package's logger, named as before the split: log lines still say ecomlake.io.warehouse
log = logging.getLogger(__package__)

JDBC_BATCH_SIZE = 10_000
MAX_WRITE_PARTITIONS = 4   # bounded: each partition is one connection to the warehouse


@dataclass(frozen=True)
class Derived:
    """A warehouse-side object computed from published tables, refreshed after a publish."""
    name: str
    depends_on: tuple[str, ...]
    create_sql: str
    refresh_sql: tuple[str, ...]


# The course's materialized total_sales_per_country, over the published star schema.
TOTAL_SALES_PER_COUNTRY = ("SELECT c.{country} AS {country}, SUM(f.{amount}) AS {total_sales} "
                           "FROM {factsales} f JOIN {dimcountry} c ON f.{countryid} = c.{countryid} "
                           "GROUP BY c.{country}")


@dataclass(frozen=True)
class Column:
    name: str
    sql_type: str
    nullable: bool


@dataclass(frozen=True)
class Swap:
    """One table of a publish unit: `target` is to hold exactly the rows of `staging`, or with
    `changes`, its rows changed by staging's (CHANGE_OP 'U': the key's new row, 'D': the key
    deleted)."""
    target: str
    staging: str
    columns: list[Column]
    primary_key: list[str]
    changes: bool = False


CHANGE_OP = "_op"   # the column of a changes table saying what happens to its key


class PublishBusy(EcomlakeError):
    """Another publish of the same warehouse holds its publish lock for longer than we wait."""


class Warehouse:
    """What a publish target must provide. Subclasses differ only where the databases do."""
    name = ""
    role = ""
    jdbc_driver = ""

    def __init__(self, cfg: Config):
        self.cfg = cfg

    @property
    def changes_min_rows(self) -> int:
        """The least rows of a gold table published here as its changes (0: never)."""
        return getattr(self.cfg, self.name).changes_min_rows

    # names and types ---------------------------------------------------------------------
    def norm(self, name: str) -> str:
        """The name as the database stores an unquoted identifier (case-folded)."""
        raise NotImplementedError

    def ident(self, name: str) -> str:
        """The name for SQL text: case-folded and quoted, so words that are reserved in one
        database (DATE, YEAR, ...) are safe as column names in both."""
        return f'"{self.norm(name)}"'

    def qualified(self, table: str) -> str:
        return f"{self.ident(self.schema)}.{self.ident(table)}"

    def sql_type(self, field: T.StructField, max_len: int | None) -> str:
        raise NotImplementedError

    def columns(self, schema: T.StructType, string_lengths: dict[str, int]) -> list[Column]:
        return [Column(self.norm(f.name), self.sql_type(f, string_lengths.get(f.name)),
                       f.nullable) for f in schema.fields]

    def create_table_sql(self, table: str, columns: list[Column], primary_key: list[str]) -> str:
        pk = [self.norm(k) for k in primary_key]
        cols = [f"{self.ident(c.name)} {c.sql_type}"
                f"{'' if c.nullable and c.name not in pk else ' NOT NULL'}" for c in columns]
        if pk:
            cols.append(f"PRIMARY KEY ({', '.join(self.ident(k) for k in pk)})")
        return f"CREATE TABLE {self.qualified(table)} ({', '.join(cols)})"

    def drop_table_sql(self, table: str) -> str:
        return f"DROP TABLE {self.qualified(table)}"

    def sum_sql(self, column: str, data_type: T.DataType) -> str:
        """SUM for reconciliation. DB2 (and Derby) sum an INTEGER column into an INTEGER, which
        overflows on a big fact table: widen integers first."""
        if isinstance(data_type, (T.IntegerType, T.ShortType, T.ByteType)):
            return f"SUM(CAST({self.ident(column)} AS BIGINT))"
        return f"SUM({self.ident(column)})"

    def table_exists(self, conn, table: str) -> bool:
        return self.table_columns(conn, table) is not None

    def derived_objects(self) -> list[Derived]:
        return []

    def _total_sales_per_country_select(self) -> str:
        names = {n: self.ident(n) for n in ("country", "amount", "total_sales", "countryid")}
        return TOTAL_SALES_PER_COUNTRY.format(
            factsales=self.qualified("FactSales"), dimcountry=self.qualified("DimCountry"), **names)

    def replace_statements(self, target: str, staging: str, columns: list[Column]) -> list[str]:
        """Statements that, in one transaction, make `target` hold exactly `staging`'s rows."""
        cols = ", ".join(self.ident(c.name) for c in columns)
        return [f"DELETE FROM {self.qualified(target)}",
                f"INSERT INTO {self.qualified(target)} ({cols}) "
                f"SELECT {cols} FROM {self.qualified(staging)}",
                f"DROP TABLE {self.qualified(staging)}"]

    # publish steps -------------------------------------------------------------------------
    def staging_key(self, primary_key: list[str]) -> list[str]:
        """The key staging is created with (a warehouse may build it after the load instead,
        see prepare_staging_statements)."""
        return []

    def drop_derived_sql(self, obj: Derived) -> str:
        return f"DROP TABLE {self.qualified(obj.name)}"

    def unit_statements(self, conn, swaps: list["Swap"]) -> list[str]:
        """One transaction's statements making every swap's target hold its staging rows, and
        the derived objects over them dropped first and rebuilt (created, refreshed) after, so
        readers see all the new tables and derived objects at once, or none of them."""
        targets = {self.norm(s.target) for s in swaps}
        affected = [o for o in self.derived_objects()
                    if {self.norm(d) for d in o.depends_on} & targets]
        statements = [self.drop_derived_sql(o) for o in affected if self.table_exists(conn, o.name)]
        for s in swaps:
            statements += (self.apply_changes_statements(s.target, s.staging, s.columns,
                                                         s.primary_key) if s.changes else
                           self.swap_statements(conn, s.target, s.staging, s.columns,
                                                s.primary_key))
        for o in affected:
            if all(self.norm(d) in targets or self.table_exists(conn, d) for d in o.depends_on):
                statements += [o.create_sql, *o.refresh_sql]
        return statements

    SWAP_RETRIES = 0   # how often a swap that lost a deadlock to a reader is tried again

    def retryable(self, exc: BaseException) -> bool:
        return False

    PUBLISH_LOCK = "publish_lock"

    def acquire_publish_lock(self, conn, owner: str) -> None:
        """Start a transaction on `conn` holding the warehouse's publish lock: one publish at a
        time owns the staging tables and the swap. Waits while another publish holds it; gives
        up with PublishBusy when the database's lock wait times out. Released by the commit
        (or rollback, or the connection's end) of that transaction."""
        raise NotImplementedError

    def write_staging(self, df, staging: str, rows: int) -> None:
        """Move the rows into the (empty) staging table: Spark's JDBC writer, batched, on a
        bounded number of connections."""
        (_bounded_partitions(df, rows)
         .write.format("jdbc").options(**self.jdbc_options())
         .option("dbtable", self.qualified(staging))
         .option("batchsize", JDBC_BATCH_SIZE)
         .mode("append").save())

    def apply_changes_statements(self, target: str, staging: str, columns: list[Column],
                                 primary_key: list[str]) -> list[str]:
        """Statements that, in the unit's transaction, change `target` by the changes table
        `staging` (see Swap): every key staging names is deleted, the new rows inserted. The
        same SQL on PostgreSQL, DB2 and Derby; it writes only the changed rows (DB2 logs what
        it writes: never the whole table)."""
        match = " AND ".join(f"s.{self.ident(k)} = t.{self.ident(k)}" for k in primary_key)
        cols = ", ".join(self.ident(c.name) for c in columns)
        return [f"DELETE FROM {self.qualified(target)} t WHERE EXISTS "
                f"(SELECT 1 FROM {self.qualified(staging)} s WHERE {match})",
                f"INSERT INTO {self.qualified(target)} ({cols}) SELECT {cols} FROM "
                f"{self.qualified(staging)} WHERE {self.ident(CHANGE_OP)} = 'U'",
                f"DROP TABLE {self.qualified(staging)}"]

    def prepare_staging_statements(self, staging: str, primary_key: list[str]) -> list[str]:
        """Run after the rows are in staging, before reconciling (e.g. build its key)."""
        return []

    def swap_statements(self, conn, target: str, staging: str, columns: list[Column],
                        primary_key: list[str]) -> list[str]:
        """One transaction's statements making `target` hold exactly staging's rows: the
        target is created (or recreated when its columns changed), then refilled."""
        existing = self.table_columns(conn, target)
        wanted = [c.name for c in columns]
        statements = []
        if existing is not None and [e.upper() for e in existing] != [w.upper() for w in wanted]:
            log.warning("%s: %s changed columns (%s -> %s): recreating it", self.name, target,
                        existing, wanted)
            statements.append(self.drop_table_sql(target))
            existing = None
        if existing is None:
            statements.append(self.create_table_sql(target, columns, primary_key))
        return statements + self.replace_statements(target, staging, columns)

    PUBLISH_LOG = "publish_log"

    def publish_log_columns(self) -> list[Column]:
        """One row per table per successful publish, written in the swap's transaction: the
        dashboards' data freshness page reads it. Typed like any published column."""
        schema = T.StructType([T.StructField("table_name", T.StringType(), False),
                               T.StructField("row_count", T.LongType(), False),
                               T.StructField("published_at", T.TimestampType(), False),
                               T.StructField("run_id", T.StringType(), True),
                               # the Delta version (and table id) of gold.<table> published:
                               # an unchanged gold table is not published again
                               T.StructField("gold_version", T.LongType(), True),
                               T.StructField("gold_table_id", T.StringType(), True)])
        return self.columns(schema, {"table_name": 128, "run_id": 128, "gold_table_id": 64})

    def publish_log_statements(self, conn) -> list[str]:
        """Create publish_log, or add the columns an older publish_log lacks (nullable)."""
        existing = self.table_columns(conn, self.PUBLISH_LOG)
        if existing is None:
            return [self.create_table_sql(self.PUBLISH_LOG, self.publish_log_columns(), [])]
        have = {e.upper() for e in existing}
        return [f"ALTER TABLE {self.qualified(self.PUBLISH_LOG)} ADD COLUMN "
                f"{self.ident(c.name)} {c.sql_type}"
                for c in self.publish_log_columns() if c.name.upper() not in have]

    def last_published(self, conn, tables: list[str]) -> dict[str, tuple]:
        """{table: (gold_version, gold_table_id)} of each table's latest publish_log row."""
        existing = self.table_columns(conn, self.PUBLISH_LOG)
        if not tables or existing is None or \
                self.norm("gold_table_id").upper() not in {e.upper() for e in existing}:
            return {}
        names = ", ".join(f"'{_safe(t)}'" for t in tables)
        c = {n: self.ident(n) for n in ("table_name", "gold_version", "gold_table_id",
                                        "published_at")}
        rows = conn.query(f"SELECT {c['table_name']}, {c['gold_version']}, {c['gold_table_id']} "
                          f"FROM {self.qualified(self.PUBLISH_LOG)} WHERE {c['table_name']} IN "
                          f"({names}) ORDER BY {c['published_at']} DESC")
        last = {}
        for name, version, table_id in rows:
            last.setdefault(name, (None if version is None else int(version), table_id))
        return last

    def publish_log_insert_sql(self, table: str, rows: int, run_id: str,
                               gold_version: int | None = None, gold_table_id: str | None = None) -> str:
        cols = ", ".join(self.ident(c.name) for c in self.publish_log_columns())
        version = "NULL" if gold_version is None else str(int(gold_version))
        table_id = "NULL" if gold_table_id is None else f"'{_literal(gold_table_id)}'"
        return (f"INSERT INTO {self.qualified(self.PUBLISH_LOG)} ({cols}) VALUES "
                f"('{_safe(table)}', {int(rows)}, CURRENT_TIMESTAMP, '{_literal(run_id)}', "
                f"{version}, {table_id})")

    # connections ---------------------------------------------------------------------------
    @property
    def schema(self) -> str:
        raise NotImplementedError

    def connect(self, spark=None):
        raise NotImplementedError

    def jdbc_options(self) -> dict[str, str]:
        raise NotImplementedError

    def list_tables(self, conn, prefix: str) -> list[str]:
        raise NotImplementedError

    def table_columns(self, conn, table: str) -> list[str] | None:
        raise NotImplementedError


_COMMON_TYPES = {
    T.LongType: "BIGINT", T.IntegerType: "INTEGER", T.ShortType: "SMALLINT",
    T.DoubleType: "DOUBLE PRECISION", T.FloatType: "REAL", T.DateType: "DATE",
    T.BooleanType: "BOOLEAN",
}


def _bounded_partitions(df, rows: int):
    """At most MAX_WRITE_PARTITIONS partitions (each is one connection to the warehouse).
    Never more than the frame has: a shuffle to spread the rows costs more than the parallel
    write gains (measured: 1M rows, 2 -> 4 partitions, 1.9 s -> 2.6 s)."""
    return df.coalesce(MAX_WRITE_PARTITIONS) if df.rdd.getNumPartitions() > MAX_WRITE_PARTITIONS else df


def _role(name: str) -> str:
    return "PUBLIC" if name == "PUBLIC" else '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return str(text).replace("'", "''")


def _safe(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(f"not a plain SQL identifier: {name!r}")
    return name


def _py(value):
    """Java values py4j does not convert itself -> Python values (via their string form)."""
    if value is None or isinstance(value, (int, float, str, bool, Decimal)):
        return value
    text = value.toString()
    try:
        return Decimal(text)
    except Exception:
        return text


def _java_message(exc: Exception) -> str:
    java = getattr(exc, "java_exception", None)
    text = java.getMessage() if java is not None else str(exc)
    return (text or repr(exc)).strip().splitlines()[0][:400]
