"""DB2, the production warehouse (locally: the Derby DRDA stand-in): its dialect and its JCC
connection, a java.sql.Connection in the Spark driver JVM."""
from __future__ import annotations

from pyspark.sql import types as T

from ecomlake.config import Config
from ecomlake.errors import refused, unavailable
from ecomlake.io.warehouse.base import (Derived, PublishBusy, Warehouse, _COMMON_TYPES,
                                        _java_message, _py, _safe)


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
