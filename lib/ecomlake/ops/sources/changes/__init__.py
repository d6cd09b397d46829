"""Change batches on top of generated data: `apply_batch(cfg, K)` applies batch K once, in order.

Batch K happens on day K of 2022 (2022-01-01 is batch 1), after every generated sale. It holds,
deterministically from the generator's seed, K and the sources' state (which is itself
deterministic when batches are applied in order):

  sales_data   new lines (~0.5 % of the generated count), corrections (~0.3 %: quantity and/or
               price UPDATEs that always change a value), hard deletions (~0.2 %, cancelled lines)
  inventory    stock moved between warehouses (UPDATEs), stock rows for new products (INSERTs)
  customers    a few customers move country (UPDATEs), a few sign up (INSERTs)
  electronics  list price and category changes (up to 40 and 15 a batch; the document is
               rewritten under the same _id with `updated_at` = the batch day), new products
               whose documents carry a field no earlier document had (energy_label in batch
               1, warranty_years in 2, ...)
  bad records  `bad_fraction` of the new sales lines, each breaking exactly one rule of
               conf/tables.yaml (NULL product_id / customer_id, negative quantity, price <= 0,
               year 1900 / 2100), and the same fraction of the catalog writes: documents whose
               price is a word ("twelve"), duplicates (a product_id inserted again under
               another _id), and copies of a product with one field of the wrong BSON type
               (a text screen size, an array type, a text product_id, a nested document for
               a model or brand, a text updated_at, an integer _id, ...: CATALOG_RULES)

Every record touched is listed in `change_manifest` (kind insert / update / delete / bad, and
for bad ones the rule), and the batch in `applied_batches`, in the same MySQL transaction as the
MySQL changes. MongoDB is written first: if the MySQL part then fails, the batch is not marked
applied and the document count no longer matches, which the next attempt reports.
"""
from __future__ import annotations

import logging

from ecomlake.config import Config
from ecomlake.io import mongo, mysql
from ecomlake.ops.sources import generator as gen
from ecomlake.ops.sources.changes.batch import Batch, update_from_rows  # noqa: F401
from ecomlake.ops.sources.changes.kinds import (  # noqa: F401
    CATALOG_RULES, FIRST_BATCH_DAY, MAX_BAD_FRACTION, MAX_BATCH, SALES_RULES, BatchRefused,
    batch_day, check_args, sizes_of)
from ecomlake.ops.sources.changes.state import check_order, check_untouched, read_catalog

log = logging.getLogger(__name__)


def apply_batch(cfg: Config, batch: int, seed: int | None = None,
                bad_fraction: float = 0.01) -> dict[str, int]:
    """Apply change batch `batch` to the generated data; returns the records changed per
    "<entity> <kind>" (the same numbers change_manifest holds for the batch)."""
    check_args(batch, bad_fraction)
    mongo.check(cfg)
    gen.apply_mysql_schema(cfg)
    state = gen.load_state(cfg)
    if state is None:
        raise BatchRefused("there is no generated data to change: run "
                           "`ecomlake generate --scale S --seed N` first")
    if seed is not None and seed != state.seed:
        raise BatchRefused(f"seed {seed} is not the seed the data was generated with "
                           f"({state.seed}); leave it out to use that one")
    conn = mysql.connect(cfg, loader=True)
    try:
        with mongo.client(cfg) as client:
            coll = client[cfg.mongo.database][gen.COLLECTION]
            cur = conn.cursor()
            check_order(cur, batch)
            clean, max_pid, duplicated, n_docs = read_catalog(cur, coll)
            check_untouched(cur, n_docs, state)
            plan = Batch(cfg, batch, state, float(bad_fraction))
            cents = plan.plan_catalog(clean, max_pid, duplicated)
            plan.plan_stock_moves(cur)
            max_cid = plan.plan_customers(cur)
            plan.plan_sales(cur, cents, max_cid)
            conn.commit()        # end the read snapshot; the writes get their own transaction
            plan.write_mongo(coll)
        plan.write_mysql(conn)
    except BaseException:
        conn.rollback()
        raise
    finally:
        conn.close()
    counts = plan.counts()
    log.info("changes: batch %d (%s) applied: %s", batch, plan.day.date(),
             ", ".join(f"{k} {v}" for k, v in counts.items()))
    return counts
