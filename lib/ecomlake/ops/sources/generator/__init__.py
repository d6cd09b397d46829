"""Deterministic source data at any scale: `generate(cfg, scale, seed)` fills MySQL (customers,
sales_data, inventory) and MongoDB (catalog.electronics), replacing what was there.

Scale 1 is 1,000,000 sales lines, 100,000 customers, 10,000 products (3 warehouses of stock
each); scale 0.001 a handful, scale 10 streams month by month. Same seed, same data: every
random draw comes from a PCG64 stream keyed by (seed, purpose[, month]), never from the clock,
so a chunk's rows do not depend on how the work is split. Only `updated_at` in MySQL is the
server's (it is the extraction watermark, maintained by the server on every change).

Shapes: product popularity is Zipf-like; sales grow year on year, peak in November/December
(Black Friday, Cyber Monday, Christmas) and at weekends, with per-category seasons (toys at
Christmas, sports in summer); customers place orders only after they signed up; sale prices
are the catalog's list price less 0, 5 or 10 %. Countries and categories are the course's
DimCountry.csv and DimCategory.csv names.

Bulk paths: CSV chunks written by pyarrow into a temporary folder and loaded with
LOAD DATA LOCAL INFILE by one loader thread while the next chunk is generated; catalog
documents go in with insert_many in batches of 10,000.
"""
from __future__ import annotations

import logging
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa

# The modules: base (scale, seed, sizes, dates, random streams), catalog (the course's names
# and the product documents), tables (the MySQL rows: weights, seasonality, customers, sales,
# stock) and loading (into MySQL and MongoDB, and generator_state). Every name the former
# single module defined is importable from here as before. (The docstring above is
# `ecomlake generate --help`.)
from ecomlake.config import Config
from ecomlake.io import mongo, mysql
from ecomlake.ops.sources.capstone import CAPSTONE_DIR, apply_mysql_schema  # noqa: F401
from ecomlake.ops.sources.generator.base import (  # noqa: F401  (re-exported)
    CATALOG_SINCE, COLLECTION, EPOCH, FILE_ROWS, FIRST_DAY, LAST_DAY, MAX_SCALE, MAX_SEED,
    MIN_SCALE, MONGO_BATCH, S_CUSTOMERS, S_DAYS, S_INVENTORY, S_POPULARITY, S_PRODUCTS, S_SALES,
    WAREHOUSES, Sizes, check_scale, check_seed, pyrandom, rng, sizes)
from ecomlake.ops.sources.generator.catalog import (  # noqa: F401
    BRANDS, CATEGORY_SHARE, COLORS, COUNTRY_WEIGHT, EMAIL_DOMAINS, FIRST_NAMES, LAST_NAMES,
    PLATFORMS, TYPES, _attributes, _dim_names, categories, countries, make_catalog, make_product,
    object_id)
from ecomlake.ops.sources.generator.loading import (  # noqa: F401
    LOAD_COLUMNS, MYSQL_TABLES, STATE_TABLES, Loader, State, batched, load_catalog, load_data_sql,
    load_state, reset_mysql, save_state, table_counts, write_csv)
from ecomlake.ops.sources.generator.tables import (  # noqa: F401
    CATEGORY_SEASON, DISCOUNT_P, DISCOUNTS, HOURLY, MONTH, QTY_CHEAP, QTY_DEAR, WEEKDAY,
    _special_days, customer_weights, day_weights, epoch_seconds, make_customers, make_inventory,
    popularity, quantities, sale_days, sale_prices, sales_chunks)

log = logging.getLogger(__name__)


def generate(cfg: Config, scale: float, seed: int, timings: dict | None = None) -> dict[str, int]:
    """Fill MySQL and MongoDB with the data of (scale, seed), replacing what was there.
    Returns the rows per table and documents per collection. `timings`, if given, receives
    seconds: total, mysql_load and sales_load (LOAD DATA statements), sales_wall (generating
    and loading sales_data, overlapped), mongo_load."""
    timings = {} if timings is None else timings
    sz, seed = sizes(scale), check_seed(seed)
    t0 = time.monotonic()
    log.info("generate: scale %g seed %d: %d sales lines, %d customers, %d products x %d "
             "warehouses", scale, seed, sz.sales, sz.customers, sz.products, sz.warehouses)
    mysql.connect(cfg, loader=True).close()
    mongo.check(cfg)            # both servers answer before anything is replaced
    reset_mysql(cfg)
    catalog = make_catalog(seed, sz.products)
    folder = Path(tempfile.mkdtemp(prefix="ecomlake-generate-"))
    mongo_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mongo-load")
    try:
        docs_future = mongo_pool.submit(load_catalog, cfg, catalog, timings)
        loader = Loader(cfg, folder)
        try:
            customers = make_customers(seed, sz.customers)
            signup = customers.column("created_at").cast(pa.int64()).to_numpy()
            loader.submit("customers", write_csv(customers, folder / "customers.csv"))
            inventory = make_inventory(seed, np.arange(1, sz.products + 1),
                                       popularity(seed, sz.products))
            loader.submit("inventory", write_csv(inventory, folder / "inventory.csv"))
            t_sales = time.monotonic()
            for i, chunk in enumerate(batched(sales_chunks(seed, sz, catalog, signup))):
                loader.submit("sales_data", write_csv(chunk, folder / f"sales_{i:03d}.csv"))
        finally:
            loaded = loader.finish()
        timings["sales_wall"] = time.monotonic() - t_sales
        n_docs = docs_future.result()
    finally:
        mongo_pool.shutdown(wait=True)
        shutil.rmtree(folder, ignore_errors=True)
    expected = {"customers": sz.customers, "sales_data": sz.sales,
                "inventory": sz.products * sz.warehouses}
    found = table_counts(cfg)
    if loaded != sum(expected.values()) or found != expected or n_docs != sz.products:
        raise RuntimeError(
            f"generate loaded {loaded} MySQL rows and {n_docs} documents, the tables now hold "
            f"{found}; expected {expected} and {sz.products} documents. Did something else "
            "write to the sources meanwhile (load-capstone, a test)? Run generate again")
    save_state(cfg, seed, scale, sz)
    counts = {f"mysql {cfg.mysql.database}.{t}": n for t, n in found.items()}
    counts[f"mongodb {cfg.mongo.database}.{COLLECTION}"] = n_docs
    timings.update(total=time.monotonic() - t0, mysql_load=sum(loader.seconds.values()),
                   sales_load=loader.seconds.get("sales_data", 0.0))
    log.info("generate: done in %.1fs (MySQL LOAD DATA %.1fs, MongoDB %.1fs)", timings["total"],
             timings["mysql_load"], timings["mongo_load"])
    return counts
