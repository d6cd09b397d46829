"""Putting the generated data into the servers: CSV files loaded with LOAD DATA LOCAL INFILE
by one loader thread, the catalog documents with insert_many, resetting and counting the MySQL
tables, and the generator_state row (the seed and sizes the changes start from)."""
from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv

from ecomlake.config import Config
from ecomlake.io import mongo, mysql
from ecomlake.ops.sources.capstone import apply_mysql_schema
from ecomlake.ops.sources.generator.base import COLLECTION, FILE_ROWS, MONGO_BATCH, Sizes


# ---------------------------------------------------------------- loading

def batched(tables, min_rows: int = FILE_ROWS):
    """Concatenate consecutive tables into files of at least `min_rows` rows (fewer, larger
    LOAD DATA statements; a month is small at small scales)."""
    group, n = [], 0
    for t in tables:
        group.append(t)
        n += t.num_rows
        if n >= min_rows:
            yield pa.concat_tables(group)
            group, n = [], 0
    if group:
        yield pa.concat_tables(group)


# LOAD DATA column lists: sales prices travel as integer cents, so no float ever rounds them.
LOAD_COLUMNS = {
    "sales_data": ("(id, product_id, customer_id, @cents, quantity, `timestamp`)",
                   "SET price = @cents / 100"),
    "customers": ("(customer_id, name, email, country, created_at)", ""),
    "inventory": ("(product_id, warehouse_id, quantity_on_hand)", ""),
}


def write_csv(table: pa.Table, path: Path) -> Path:
    # No field we write holds a comma, quote or newline (names come from fixed lists), so
    # plain unquoted CSV is safe; NULL is written as \N by the callers that need it.
    pacsv.write_csv(table, path, pacsv.WriteOptions(include_header=False, quoting_style="none"))
    return path


def load_data_sql(table: str, path: Path) -> str:
    cols, set_clause = LOAD_COLUMNS[table]
    return (f"LOAD DATA LOCAL INFILE '{path}' INTO TABLE `{table}` CHARACTER SET utf8mb4 "
            f"FIELDS TERMINATED BY ',' LINES TERMINATED BY '\\n' {cols} {set_clause}")


class Loader:
    """LOAD DATA LOCAL INFILE of CSV files, in submission order, on one connection in one
    thread, so generating the next chunk overlaps loading this one. At most `ahead` files wait."""

    def __init__(self, cfg: Config, folder: Path, ahead: int = 2):
        self.conn = mysql.connect(cfg, loader=True, allow_local_infile=True,
                                  allow_local_infile_in_path=str(folder))
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mysql-load")
        self.pending: list[Future] = []
        self.slots = threading.Semaphore(ahead)
        self.seconds: dict[str, float] = {}     # LOAD DATA time per table

    def _load(self, table: str, path: Path) -> int:
        try:
            t0 = time.monotonic()
            cur = self.conn.cursor()
            cur.execute(load_data_sql(table, path))
            n = cur.rowcount
            warnings = cur.warning_count
            self.conn.commit()
            self.seconds[table] = self.seconds.get(table, 0.0) + time.monotonic() - t0
            if warnings:
                raise RuntimeError(f"LOAD DATA into {table} from {path.name} gave {warnings} "
                                   "warning(s): the generated CSV does not fit the table")
            return n
        finally:
            path.unlink(missing_ok=True)
            self.slots.release()

    def submit(self, table: str, path: Path) -> None:
        self.slots.acquire()
        self.pending.append(self.pool.submit(self._load, table, path))

    def finish(self) -> int:
        """Wait for every load; the first failure is raised. Returns the rows loaded."""
        try:
            return sum(f.result() for f in self.pending)
        finally:
            self.pool.shutdown(wait=True)
            self.conn.close()


MYSQL_TABLES = ("customers", "sales_data", "inventory")
STATE_TABLES = ("change_manifest", "applied_batches", "generator_state")


def reset_mysql(cfg: Config) -> None:
    apply_mysql_schema(cfg)
    conn = mysql.connect(cfg, loader=True)
    try:
        cur = conn.cursor()
        for table in MYSQL_TABLES + STATE_TABLES:
            cur.execute(f"TRUNCATE TABLE `{table}`")   # also restarts AUTO_INCREMENT
        conn.commit()
    finally:
        conn.close()


def load_catalog(cfg: Config, docs: list[dict], timings: dict) -> int:
    t0 = time.monotonic()
    with mongo.client(cfg) as c:
        coll = c[cfg.mongo.database][COLLECTION]
        coll.drop()
        n = 0
        for i in range(0, len(docs), MONGO_BATCH):
            n += len(coll.insert_many(docs[i:i + MONGO_BATCH], ordered=True).inserted_ids)
        coll.create_index("type")   # as the course does
    timings["mongo_load"] = time.monotonic() - t0
    return n    # acknowledged inserts (FerretDB counts by scanning: ~1 s per 10,000)


def table_counts(cfg: Config, tables=MYSQL_TABLES) -> dict[str, int]:
    conn = mysql.connect(cfg, loader=True)
    try:
        cur = conn.cursor()
        out = {}
        for t in tables:
            cur.execute(f"SELECT COUNT(*) FROM `{t}`")
            out[t] = cur.fetchone()[0]
        return out
    finally:
        conn.close()


def save_state(cfg: Config, seed: int, scale: float, sz: Sizes) -> None:
    conn = mysql.connect(cfg, loader=True)
    try:
        cur = conn.cursor()
        cur.execute("REPLACE INTO generator_state (id, seed, scale, n_sales, n_customers, "
                    "n_products, n_warehouses) VALUES (1, %s, %s, %s, %s, %s, %s)",
                    (seed, scale, sz.sales, sz.customers, sz.products, sz.warehouses))
        conn.commit()
    finally:
        conn.close()


@dataclass(frozen=True)
class State:
    seed: int
    scale: float
    sizes: Sizes


def load_state(cfg: Config) -> State | None:
    conn = mysql.connect(cfg, loader=True)
    try:
        cur = conn.cursor()
        cur.execute("SELECT seed, scale, n_sales, n_customers, n_products, n_warehouses "
                    "FROM generator_state WHERE id = 1")
        row = cur.fetchone()
    finally:
        conn.close()
    if row is None:
        return None
    seed, scale, n_sales, n_cust, n_prod, n_wh = row
    return State(int(seed), float(scale), Sizes(int(n_sales), int(n_cust), int(n_prod), int(n_wh)))
