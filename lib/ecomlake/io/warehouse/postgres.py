"""PostgreSQL, the staging warehouse: its dialect and its psycopg2 connection."""
from __future__ import annotations

import functools
import logging

import psycopg2
import psycopg2.errors
from pyspark.sql import types as T

from ecomlake.errors import refused, unavailable
from ecomlake.io.warehouse.base import (Derived, PublishBusy, Warehouse, _COMMON_TYPES,
                                        _bounded_partitions, _literal, _role, _safe)

# the package's logger, named as before the split: log lines still say ecomlake.io.warehouse
log = logging.getLogger(__package__)


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
