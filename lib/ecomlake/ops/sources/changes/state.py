"""Reading the sources' current state before a batch: that the batch is the next one, that
nothing else changed the generated data, the catalog's clean documents, sale lines to change."""
from __future__ import annotations

from collections import Counter

import numpy as np

from ecomlake.ops.sources import generator as gen
from ecomlake.ops.sources.changes.kinds import BatchRefused


def _scalar(cur, sql: str, params=()) -> int:
    cur.execute(sql, params)
    return int(cur.fetchone()[0])   # MariaDB gives DECIMAL for COALESCE(MAX(bigint), 0)


def _manifest_counts(cur) -> Counter:
    cur.execute("SELECT entity, kind, COUNT(*) FROM change_manifest GROUP BY entity, kind")
    return Counter({(e, k): n for e, k, n in cur.fetchall()})


def check_order(cur, batch: int) -> None:
    cur.execute("SELECT batch, applied_at FROM applied_batches WHERE batch = %s", (batch,))
    row = cur.fetchone()
    if row:
        raise BatchRefused(f"batch {batch} was already applied (at {row[1]} UTC); each batch "
                           "applies once. To start over, run `ecomlake generate` again")
    last = _scalar(cur, "SELECT COALESCE(MAX(batch), 0) FROM applied_batches")
    if batch != last + 1:
        raise BatchRefused(f"batch {batch} is out of order: the last batch applied is {last}, "
                           f"so the next one is {last + 1}")


def check_untouched(cur, n_docs: int, state: gen.State) -> None:
    """The sources hold the generated data plus the applied batches, nothing else (e.g. not
    the course data that `load-capstone` put in sales_data since)."""
    done = _manifest_counts(cur)
    s = state.sizes
    inserted = lambda entity: done[(entity, "insert")] + done[(entity, "bad")]   # noqa: E731
    expected = {
        "sales_data": s.sales + inserted("sales_data") - done[("sales_data", "delete")],
        "customers": s.customers + inserted("customers"),
        "inventory": s.products * s.warehouses + inserted("inventory"),
    }
    for table, n in expected.items():
        found = _scalar(cur, f"SELECT COUNT(*) FROM `{table}`")
        if found != n:
            raise BatchRefused(
                f"sales.{table} holds {found} rows where the generated data and the batches "
                f"applied would hold {n}: it was changed by something else (load-capstone?). "
                "Run `ecomlake generate --scale S --seed N` to start over")
    found = n_docs
    n = s.products + inserted("electronics")
    if found != n:
        raise BatchRefused(
            f"catalog.{gen.COLLECTION} holds {found} documents where the generated data and the "
            f"batches applied would hold {n}: it was changed by something else (load-capstone, "
            "or a batch that failed half-way). Run `ecomlake generate` to start over")


def read_catalog(cur, coll) -> tuple[dict[int, dict], int, set[int], int]:
    """The clean documents by product_id, the largest product_id used, the product_ids that
    ever got a duplicate document (left alone by later changes, so the original stays the first
    version of its product), and the number of documents. One scan: FerretDB counts by
    scanning too."""
    cur.execute("SELECT record_key, detail FROM change_manifest "
                "WHERE system = 'mongo' AND kind = 'bad'")
    bad = cur.fetchall()
    bad_ids = {k for k, _ in bad}
    duplicated = {int(d.split(":")[1]) for _, d in bad if d and d.startswith("product_id:")}
    clean: dict[int, dict] = {}
    max_pid = n_docs = 0
    for doc in coll.find({}, batch_size=10_000):
        n_docs += 1
        pid = doc.get("product_id")
        if not isinstance(pid, int):
            continue
        max_pid = max(max_pid, pid)
        if str(doc["_id"]) in bad_ids or not isinstance(doc.get("price"), (int, float)):
            continue
        if pid not in clean or str(doc["_id"]) < str(clean[pid]["_id"]):
            clean[pid] = doc
    return clean, max_pid, duplicated, n_docs


def pick_sales(cur, r: np.random.Generator, max_id: int, bad: set[int], n: int) -> list[tuple]:
    """(id, price, quantity) of `n` existing clean lines, recent ones more likely."""
    want = 3 * n + 20
    ids = max_id - np.floor(r.random(want) ** 3 * max_id).astype(np.int64)
    ordered = [int(i) for i in dict.fromkeys(ids.tolist()) if i >= 1 and int(i) not in bad]
    rows = {}
    for i in range(0, len(ordered), 10_000):
        part = ordered[i:i + 10_000]
        cur.execute(f"SELECT id, price, quantity FROM sales_data WHERE id IN "
                    f"({','.join(map(str, part))})")
        rows.update({row[0]: row for row in cur.fetchall()})
    return [rows[i] for i in ordered if i in rows][:n]
