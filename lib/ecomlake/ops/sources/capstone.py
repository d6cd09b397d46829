"""Load the public course data (data/capstone, carried in the repository) into the source systems, as the course does:
oltpdata.csv into MySQL sales.sales_data, catalog.json into MongoDB catalog.electronics.

Both loads replace what was there, so running them again gives the same source state.
"""
from __future__ import annotations

import hashlib
import json
import logging
from importlib import resources
from pathlib import Path

from bson import ObjectId

from ecomlake.config import PROJECT_ROOT, Config
from ecomlake.io import mongo, mysql

log = logging.getLogger(__name__)

# The course files travel with the repository (provenance and sha256: data/capstone/README.md).
CAPSTONE_DIR = PROJECT_ROOT / "data" / "capstone"
COURSE_RESETS = ("sales_data", "customers", "inventory", "change_manifest", "applied_batches",
                 "generator_state")


def apply_mysql_schema(cfg: Config) -> None:
    ddl = resources.files("ecomlake").joinpath("sql/mysql_schema.sql").read_text()
    conn = mysql.connect(cfg, loader=True)
    try:
        cur = conn.cursor()
        code = "\n".join(l for l in ddl.splitlines() if not l.lstrip().startswith("--"))
        for statement in filter(None, (s.strip() for s in code.split(";"))):
            cur.execute(statement)
        conn.commit()
    finally:
        conn.close()


def load_sales(cfg: Config, csv_path: Path) -> int:
    """Bulk-load oltpdata.csv (no header) into sales_data with LOAD DATA LOCAL INFILE."""
    apply_mysql_schema(cfg)
    conn = mysql.connect(cfg, loader=True, allow_local_infile=True,
                         allow_local_infile_in_path=str(csv_path.parent))
    try:
        cur = conn.cursor()
        # The course data is the whole OLTP state: no generated customers or stock beside it.
        for table in COURSE_RESETS:
            cur.execute(f"TRUNCATE TABLE {table}")  # sales_data ids restart at 1: same rows, same ids
        cur.execute(
            f"LOAD DATA LOCAL INFILE '{csv_path}' INTO TABLE sales_data "
            "FIELDS TERMINATED BY ',' LINES TERMINATED BY '\\n' "
            "(product_id, customer_id, price, quantity, `timestamp`)")
        conn.commit()
        cur.execute("SELECT COUNT(*) FROM sales_data")
        return cur.fetchone()[0]
    finally:
        conn.close()


def capstone_object_id(line_number: int) -> ObjectId:
    """A fixed _id per line of catalog.json. mongoimport would draw random ones; fixed ids keep
    the same document the same record across reloads (silver would otherwise see every document
    deleted and re-inserted)."""
    return ObjectId(hashlib.sha256(f"capstone/catalog.json:{line_number}".encode()).digest()[:12])


def load_catalog(cfg: Config, json_path: Path) -> int:
    """Load catalog.json (one document a line, fields unchanged) into catalog.electronics,
    replacing it."""
    lines = [line for line in json_path.read_text().splitlines() if line.strip()]
    docs = [{"_id": capstone_object_id(i), **json.loads(line)} for i, line in enumerate(lines, 1)]
    with mongo.client(cfg) as c:
        coll = c[cfg.mongo.database]["electronics"]
        coll.drop()
        coll.insert_many(docs, ordered=True)
        coll.create_index("type")  # the course indexes `type`
        return coll.count_documents({})


def load(cfg: Config, capstone_dir: Path = CAPSTONE_DIR) -> dict[str, int]:
    counts = {
        "mysql sales.sales_data": load_sales(cfg, capstone_dir / "oltpdata.csv"),
        f"mongodb {cfg.mongo.database}.electronics": load_catalog(cfg, capstone_dir / "catalog.json"),
    }
    for where, n in counts.items():
        log.info("loaded %s rows into %s", n, where)
    return counts
