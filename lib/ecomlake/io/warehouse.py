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

import functools
import logging
import re
from decimal import Decimal
from dataclasses import dataclass

import psycopg2
import psycopg2.errors
from pyspark.sql import types as T

from ecomlake.config import Config
from ecomlake.errors import EcomlakeError, refused, unavailable

log = logging.getLogger(__name__)

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
    """One table of a publish unit: `target` is to hold exactly the rows of `staging`."""
    target: str
    staging: str
    columns: list[Column]
    primary_key: list[str]


class PublishBusy(EcomlakeError):
    """Another publish of the same warehouse holds its publish lock for longer than we wait."""


class Warehouse:
    """What a publish target must provide. Subclasses differ only where the databases do."""
    name = ""
    role = ""
    jdbc_driver = ""

    def __init__(self, cfg: Config):
        self.cfg = cfg

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
            statements += self.swap_statements(conn, s.target, s.staging, s.columns, s.primary_key)
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


class PostgresWarehouse(Warehouse):
    name = "postgres"
    role = "staging warehouse"
    jdbc_driver = "org.postgresql.Driver"
    LOCK_TIMEOUT_MS = 120_000

    @property
    def schema(self) -> str:
        return self.cfg.postgres.schema

    def norm(self, name: str) -> str:
        return _safe(name).lower()

    def sql_type(self, field: T.StructField, max_len: int | None) -> str:
        t = field.dataType
        if isinstance(t, T.DecimalType):
            return f"NUMERIC({t.precision},{t.scale})"
        if isinstance(t, T.StringType):
            return "TEXT"
        if isinstance(t, T.TimestampType):
            return "TIMESTAMPTZ"
        return _COMMON_TYPES[type(t)]

    def drop_table_sql(self, table):
        # CASCADE: the materialized view on it is recreated by refresh_derived after publish
        return f"DROP TABLE {self.qualified(table)} CASCADE"

    def derived_objects(self):
        mv = "mv_total_sales_per_country"
        return [Derived(mv, ("FactSales", "DimCountry"),
                        f"CREATE MATERIALIZED VIEW {self.qualified(mv)} AS "
                        f"{self._total_sales_per_country_select()} WITH NO DATA",
                        (f"REFRESH MATERIALIZED VIEW {self.qualified(mv)}",))]

    def table_exists(self, conn, table):
        return bool(conn.query(f"SELECT to_regclass('{self.norm(self.schema)}.{self.norm(table)}')")[0][0])

    def replace_statements(self, target, staging, columns):
        # TRUNCATE is transactional in PostgreSQL (readers wait for the commit, then see the
        # new rows) and far cheaper than DELETE on big tables.
        stmts = super().replace_statements(target, staging, columns)
        return [f"TRUNCATE {self.qualified(target)}"] + stmts[1:]

    def write_staging(self, df, staging, rows):
        if self.cfg.postgres.bulk_write == "jdbc":
            return super().write_staging(df, staging, rows)
        from ecomlake.io.pgcopy import copy_partitions

        params = self.connect_params("-c timezone=UTC")   # see pgcopy._utc_wall_clock
        cols = ", ".join(self.ident(f.name) for f in df.schema.fields)
        sql = f"COPY {self.qualified(staging)} ({cols}) FROM STDIN WITH (FORMAT csv)"
        written = (_bounded_partitions(df, rows)
                   .mapInArrow(functools.partial(copy_partitions, params, sql), "rows long")
                   .groupBy().sum("rows").collect()[0][0]) or 0
        if written != rows:   # reconciliation would catch it too; this says where it went wrong
            log.warning("%s: COPY wrote %d rows into %s, expected %d", self.name, written,
                        staging, rows)

    def _pk_name(self, table):
        return self.norm(f"{table}_pkey")

    def prepare_staging_statements(self, staging, primary_key):
        # The key is built once the rows are in: far cheaper than maintaining it row by row.
        if not primary_key:
            return []
        return [f"ALTER TABLE {self.qualified(staging)} ADD CONSTRAINT "
                f"{self.ident(self._pk_name(staging))} PRIMARY KEY "
                f"({', '.join(self.ident(self.norm(k)) for k in primary_key)})"]

    def swap_statements(self, conn, target, staging, columns, primary_key):
        """Rename swap: drop the old table and rename staging into its place, in one
        transaction (no second copy of the rows). Readers blocked on the old table resume on
        the new one after the commit. Kept across the swap: grants on the old table, and our
        derived objects (recreated and filled in the same transaction). A table that other
        views depend on is refilled instead (TRUNCATE + INSERT), so those views survive."""
        if not self.table_exists(conn, target):
            return self._rename_into(target, staging, primary_key)
        ours = {self.norm(o.name) for o in self.derived_objects()}
        foreign = set(self._dependent_views(conn, target)) - ours
        if foreign:
            log.info("%s: views %s depend on %s: refilling it in place", self.name,
                     sorted(foreign), target)
            return super().swap_statements(conn, target, staging, columns, primary_key)
        # our derived objects on it are dropped before and rebuilt after (unit_statements)
        statements = [f"DROP TABLE {self.qualified(target)}"]
        statements += self._rename_into(target, staging, primary_key)
        statements += [f"GRANT {priv} ON {self.qualified(target)} TO {_role(grantee)}"
                       for grantee, priv in self._grants(conn, target)]
        return statements

    def drop_derived_sql(self, obj):
        return f"DROP MATERIALIZED VIEW IF EXISTS {self.qualified(obj.name)}"

    def unit_statements(self, conn, swaps):
        """All the targets are locked first, in one statement, facts first (the order a star
        query names them): a reader joining two of them then cannot hold one while the swap
        holds the other (a deadlock PostgreSQL would end by aborting one of the two)."""
        existing = [s.target for s in swaps if self.table_exists(conn, s.target)]
        existing.sort(key=lambda t: not self.norm(t).startswith("fact"))
        lock = ([f"LOCK TABLE {', '.join(self.qualified(t) for t in existing)} "
                 "IN ACCESS EXCLUSIVE MODE"] if existing else [])
        return lock + super().unit_statements(conn, swaps)

    SWAP_RETRIES = 3

    def retryable(self, exc):
        return isinstance(exc, psycopg2.errors.DeadlockDetected)

    # one constant key for every publish of this database (classid 0, objid this number)
    LOCK_KEY = 0x65636F6D   # "ecom"

    def acquire_publish_lock(self, conn, owner):
        conn.execute(f"SET application_name = '{_literal(owner[:60])}'")
        conn.commit()
        if conn.query(f"SELECT pg_try_advisory_xact_lock({self.LOCK_KEY})")[0][0]:
            return
        holder = self._lock_holder(conn)
        log.info("%s: waiting for the publish lock held by %s", self.name, holder)
        try:
            conn.query(f"SELECT pg_advisory_xact_lock({self.LOCK_KEY})")
        except psycopg2.errors.LockNotAvailable:
            conn.rollback()
            raise PublishBusy(
                f"{self.name}: another publish holds the publish lock of {self.cfg.postgres.address}/"
                f"{self.cfg.postgres.database} ({holder}) for more than "
                f"{self.LOCK_TIMEOUT_MS // 1000}s; try again once it has finished") from None
        log.info("%s: publish lock acquired after waiting", self.name)

    def _lock_holder(self, conn) -> str:
        rows = conn.query(
            "SELECT a.pid, a.application_name, a.client_addr, a.xact_start FROM pg_locks l "
            "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND "
            f"l.granted AND l.classid = 0 AND l.objid = {self.LOCK_KEY} AND l.objsubid = 1 "
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())")
        if not rows:
            return "a publish that has just finished"
        pid, app, addr, since = rows[0]
        return f"'{app or 'unnamed'}', server pid {pid} from {addr or 'local'}, since {since}"

    def _rename_into(self, target, staging, primary_key):
        stmts = [f"ALTER TABLE {self.qualified(staging)} RENAME TO {self.ident(target)}"]
        if primary_key:
            stmts.append(f"ALTER TABLE {self.qualified(target)} RENAME CONSTRAINT "
                         f"{self.ident(self._pk_name(staging))} TO {self.ident(self._pk_name(target))}")
        return stmts

    def _dependent_views(self, conn, table):
        rows = conn.query(
            "SELECT DISTINCT v.relname FROM pg_depend d JOIN pg_rewrite r ON d.objid = r.oid "
            "JOIN pg_class v ON r.ev_class = v.oid WHERE d.refobjid = "
            f"to_regclass('{self.norm(self.schema)}.{self.norm(table)}') AND v.relname <> "
            f"'{self.norm(table)}'")
        return [r[0] for r in rows]

    def _grants(self, conn, table):
        return conn.query(
            "SELECT grantee, privilege_type FROM information_schema.role_table_grants "
            f"WHERE table_schema = '{self.norm(self.schema)}' AND table_name = "
            f"'{self.norm(table)}' AND grantee <> current_user ORDER BY 1, 2")

    def connect_params(self, options: str) -> dict:
        """psycopg2.connect's arguments: the one place that says how to reach PostgreSQL (the
        swap's connection here, and the COPY connections in Spark's Python workers)."""
        p = self.cfg.postgres
        return dict(host=p.host, port=p.port, dbname=p.database, user=p.user,
                    password=self.cfg.secret("postgres"), connect_timeout=5, options=options)

    def connect(self, spark=None):
        p = self.cfg.postgres
        try:
            # A reader holding a long transaction would block the swap's DROP/TRUNCATE forever:
            # give up after a while with a clear error instead of hanging the job.
            conn = psycopg2.connect(**self.connect_params(f"-c lock_timeout={self.LOCK_TIMEOUT_MS}"))
            return PgConnection(conn)
        except psycopg2.OperationalError as exc:
            msg = str(exc).strip().splitlines()[-1] if str(exc).strip() else repr(exc)
            if "password authentication failed" in msg or "authentication" in msg:
                raise refused("PostgreSQL", p.address, p.user, p.password_env, msg) from None
            raise unavailable("PostgreSQL", self.role, p.address, msg, "postgres.host/port",
                              self.cfg.source_file) from None

    def jdbc_options(self):
        p = self.cfg.postgres
        return {"url": p.jdbc_url, "user": p.user, "password": self.cfg.secret("postgres"),
                "driver": self.jdbc_driver}

    def list_tables(self, conn, prefix):
        rows = conn.query("SELECT table_name FROM information_schema.tables WHERE table_schema = "
                          f"'{self.norm(self.schema)}' AND table_name LIKE '{self.norm(prefix)}%'")
        return [r[0] for r in rows if r[0].startswith(self.norm(prefix))]

    def table_columns(self, conn, table):
        rows = conn.query("SELECT column_name FROM information_schema.columns WHERE table_schema = "
                          f"'{self.norm(self.schema)}' AND table_name = '{self.norm(table)}' "
                          "ORDER BY ordinal_position")
        return [r[0] for r in rows] or None


class DB2Warehouse(Warehouse):
    name = "db2"
    role = "production warehouse"
    jdbc_driver = "com.ibm.db2.jcc.DB2Driver"
    MAX_DECIMAL_PRECISION = 31   # DB2's limit; Spark allows 38
    MAX_VARCHAR = 32672          # DB2's VARCHAR limit; longer text would need CLOB

    @property
    def schema(self) -> str:
        return self.cfg.db2.schema

    def norm(self, name: str) -> str:
        return _safe(name).upper()

    def sql_type(self, field: T.StructField, max_len: int | None) -> str:
        t = field.dataType
        if isinstance(t, T.DecimalType):
            precision = min(t.precision, self.MAX_DECIMAL_PRECISION)
            return f"DECIMAL({precision},{min(t.scale, precision)})"
        if isinstance(t, T.StringType):
            # Sized VARCHAR, not Spark's default CLOB: room to grow, rounded to a tidy size.
            size = max(32, 1 << max(0, (2 * (max_len or 1) - 1).bit_length()))
            return f"VARCHAR({min(size, self.MAX_VARCHAR)})"
        if isinstance(t, T.TimestampType):
            return "TIMESTAMP"
        if isinstance(t, T.BooleanType):
            return "SMALLINT"
        return _COMMON_TYPES[type(t)]

    def staging_key(self, primary_key):
        # Created with its key: DB2 (and Derby) want key columns NOT NULL from the start, and
        # the rename swap carries the key over to the target.
        return primary_key

    def swap_statements(self, conn, target, staging, columns, primary_key):
        """Rename swap, never DELETE-everything-then-INSERT: that logs every row twice in one
        unit of work. The old table is dropped and staging renamed into its place, in one
        transaction (DB2 and Derby run DDL in transactions)."""
        statements = [self.drop_table_sql(target)] if self.table_exists(conn, target) else []
        return statements + [f"RENAME TABLE {self.qualified(staging)} TO {self.ident(target)}"]

    def lock_table_statements(self, conn) -> list[str]:
        if self.table_exists(conn, self.PUBLISH_LOCK):
            return []
        return [f"CREATE TABLE {self.qualified(self.PUBLISH_LOCK)} "
                f"({self.ident('id')} INTEGER NOT NULL PRIMARY KEY)",
                f"INSERT INTO {self.qualified(self.PUBLISH_LOCK)} VALUES (1)"]

    def acquire_publish_lock(self, conn, owner):
        """DB2 has no advisory locks: an exclusive lock on a one-row table, held by the
        transaction (Derby has LOCK TABLE too). The lock wait is the database's
        (Derby: derby.locking.waitTimeout, DB2: LOCKTIMEOUT)."""
        try:
            for sql in self.lock_table_statements(conn):
                conn.execute(sql)
            conn.commit()
        except Exception:
            conn.rollback()   # created by a publish that started at the same moment
        try:
            conn.execute(f"LOCK TABLE {self.qualified(self.PUBLISH_LOCK)} IN EXCLUSIVE MODE")
        except Exception as exc:
            msg = _java_message(exc)
            conn.rollback()
            if "40XL1" in msg or "-911" in msg or "SQLSTATE=40001" in msg or "timeout" in msg.lower():
                raise PublishBusy(
                    f"{self.name}: another publish holds {self.qualified(self.PUBLISH_LOCK)} at "
                    f"{self.cfg.db2.address} longer than the lock wait ({msg}); try again once "
                    "it has finished") from None
            raise

    def derived_objects(self):
        if not self.cfg.db2.is_real_db2:
            # Materialized query tables are DB2's; the Derby stand-in has none. The statements
            # are unit-tested and run against a real DB2 (DB2_URL).
            return []
        return [self.mqt_total_sales_per_country()]

    def mqt_total_sales_per_country(self) -> Derived:
        mqt = "mqt_total_sales_per_country"
        return Derived(mqt, ("FactSales", "DimCountry"),
                       f"CREATE TABLE {self.qualified(mqt)} AS "
                       f"({self._total_sales_per_country_select()}) "
                       "DATA INITIALLY DEFERRED REFRESH DEFERRED",
                       (f"REFRESH TABLE {self.qualified(mqt)}",))

    @property
    def user(self) -> str:
        import os
        return os.environ.get("DB2_USER", self.cfg.db2.user) if self.cfg.db2.is_real_db2 \
            else self.cfg.db2.user

    def password(self) -> str:
        import os
        if self.cfg.db2.is_real_db2:
            if "DB2_PASSWORD" not in os.environ:
                raise refused("DB2", self.cfg.db2.address, self.user, "DB2_PASSWORD",
                              "DB2_URL is set but DB2_PASSWORD is not")
            return os.environ["DB2_PASSWORD"]
        return self.cfg.secret("db2")

    def connect(self, spark=None):
        if spark is None:
            raise ValueError("the DB2 connection runs JCC inside the Spark JVM: pass `spark`")
        return JdbcConnection.open(spark, self.jdbc_driver, self.cfg.db2.jdbc_url, self.user,
                                   self.password(), "DB2", self.role, self.cfg.db2.address,
                                   self.cfg)

    def jdbc_options(self):
        return {"url": self.cfg.db2.jdbc_url, "user": self.user, "password": self.password(),
                "driver": self.jdbc_driver}

    def list_tables(self, conn, prefix):
        return [t for t in conn.tables(self.norm(self.schema)) if t.startswith(self.norm(prefix))]

    def table_columns(self, conn, table):
        return conn.columns(self.norm(self.schema), self.norm(table)) or None


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


class PgConnection:
    """psycopg2 behind the same small interface as JdbcConnection."""

    def __init__(self, conn):
        self._c = conn

    def execute(self, sql: str) -> int:
        with self._c.cursor() as cur:
            cur.execute(sql)
            return cur.rowcount

    def query(self, sql: str) -> list[tuple]:
        with self._c.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall()

    def commit(self):
        self._c.commit()

    def rollback(self):
        self._c.rollback()

    def close(self):
        self._c.close()


class JdbcConnection:
    """A small DB-API-like wrapper over a java.sql.Connection opened in the Spark driver JVM."""

    def __init__(self, jconn):
        self._c = jconn
        self._c.setAutoCommit(False)

    @classmethod
    def open(cls, spark, driver: str, url: str, user: str, password: str, system: str,
             role: str, address: str, cfg: Config):
        jvm = spark._jvm
        loader = jvm.Thread.currentThread().getContextClassLoader()
        props = jvm.java.util.Properties()
        props.setProperty("user", user)
        props.setProperty("password", password)
        # A server that is down refuses at once; this bounds a slow login (a busy database).
        props.setProperty("loginTimeout", "20")
        try:
            # Driver.connect directly: DriverManager cannot see jars added via spark.jars.
            jdriver = loader.loadClass(driver).newInstance()
        except Exception as exc:
            raise RuntimeError(f"the {system} JDBC driver {driver} is not on Spark's classpath: "
                               "run `make setup` (stack/jars/pom.xml)") from exc
        try:
            jconn = jdriver.connect(url, props)
        except Exception as exc:  # py4j wraps the java.sql.SQLException
            msg = _java_message(exc)
            if "ERRORCODE=-4214" in msg or "SQLSTATE=28000" in msg or "password" in msg.lower():
                raise refused(system, address, user, "ECOMLAKE_DB2_PASSWORD / DB2_PASSWORD", msg) from None
            raise unavailable(system, role, address, msg, "db2.host/port (or DB2_URL)",
                              cfg.source_file) from None
        return cls(jconn)

    def execute(self, sql: str) -> int:
        stmt = self._c.createStatement()
        try:
            return stmt.executeUpdate(sql)
        finally:
            stmt.close()

    def query(self, sql: str) -> list[tuple]:
        stmt = self._c.createStatement()
        try:
            rs = stmt.executeQuery(sql)
            n = rs.getMetaData().getColumnCount()
            rows = []
            while rs.next():
                rows.append(tuple(_py(rs.getObject(i + 1)) for i in range(n)))
            return rows
        finally:
            stmt.close()

    def tables(self, schema: str) -> list[str]:
        rs = self._c.getMetaData().getTables(None, schema, "%", None)
        names = []
        while rs.next():
            names.append(rs.getString("TABLE_NAME"))
        rs.close()
        return names

    def columns(self, schema: str, table: str) -> list[str]:
        rs = self._c.getMetaData().getColumns(None, schema, table, "%")
        cols = []
        while rs.next():
            cols.append((rs.getInt("ORDINAL_POSITION"), rs.getString("COLUMN_NAME")))
        rs.close()
        return [c for _, c in sorted(cols)]

    def commit(self):
        self._c.commit()

    def rollback(self):
        self._c.rollback()

    def close(self):
        # JCC refuses to close a connection inside an open unit of work: end it first. Work
        # that was not committed by then is meant to be discarded.
        self._c.rollback()
        self._c.close()


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


WAREHOUSES = {"postgres": PostgresWarehouse, "db2": DB2Warehouse}


def warehouse(name: str, cfg: Config) -> Warehouse:
    try:
        return WAREHOUSES[name](cfg)
    except KeyError:
        raise ValueError(f"unknown publish target {name!r} (valid: {', '.join(WAREHOUSES)}, all)") from None
