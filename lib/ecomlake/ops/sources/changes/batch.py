"""One change batch, planned in memory from the sources' state, then written: MongoDB first,
then MySQL and the manifest in one transaction."""
from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from decimal import Decimal

import numpy as np

from ecomlake.config import Config
from ecomlake.ops.sources import generator as gen
from ecomlake.ops.sources.changes.kinds import (
    ALT_CATEGORY, CATALOG_RULES, NEW_FIELDS, P_BAD, P_CATALOG, P_CUSTOMERS, P_INVENTORY,
    P_NEW_PRODUCTS, P_PICK, P_SALES, PRICE_WORDS, S_BATCH, SALES_RULES, _field_value,
    _mistyped, batch_day, n_bad, new_field, sizes_of)
from ecomlake.ops.sources.changes.state import _scalar, pick_sales


class Batch:
    """The changes of one batch, planned in memory, then written."""

    def __init__(self, cfg: Config, batch: int, state: gen.State, bad_fraction: float):
        self.cfg, self.batch, self.state, self.bad_fraction = cfg, batch, state, bad_fraction
        self.day = batch_day(batch)
        self.size = sizes_of(state)
        self.manifest: list[tuple] = []
        self.sql: list[tuple[str, list | None]] = []   # (statement, rows for executemany)
        self.updates: list[tuple] = []                 # (table, keys, columns, rows)
        self.mongo_updates: list[dict] = []          # new versions of existing documents
        self.mongo_inserts: list[dict] = []
        self.new_stock: list[tuple] = []

    def rng(self, purpose: int) -> np.random.Generator:
        return gen.rng(self.state.seed, S_BATCH, self.batch, purpose)

    def pyrandom(self, purpose: int):
        return gen.pyrandom(self.state.seed, S_BATCH, self.batch, purpose)

    def record(self, system: str, entity: str, key, kind: str, rule=None, detail=None) -> None:
        self.manifest.append((self.batch, system, entity, str(key), kind, rule, detail))

    # -- catalog
    def plan_catalog(self, clean: dict[int, dict], max_pid: int, duplicated: set[int]) -> dict:
        """Price and category changes, new products, bad documents. Returns the list prices
        (cents) of the clean products after the batch, for the new sales lines."""
        r, pr = self.rng(P_CATALOG), self.pyrandom(P_CATALOG)
        when = self.day
        changeable = [p for p in sorted(clean) if p not in duplicated]
        order = [changeable[i] for i in r.permutation(len(changeable))]
        n_price = min(self.size["price_changes"], len(order))
        n_cat = min(self.size["category_changes"], len(order) - n_price)
        cents = {p: round(d["price"] * 100) for p, d in clean.items()}
        for pid in order[:n_price]:
            old = cents[pid]
            factor = float(r.choice([0.85, 0.9, 0.95, 1.05, 1.1, 1.2]))
            new = max(99, round(old * factor / 100) * 100 - 1)
            if new == old:
                new = old + 100
            cents[pid] = new
            self._update_doc(clean[pid], {"price": new / 100, "updated_at": when}, "price")
        names = gen.categories()
        for pid in order[n_price:n_price + n_cat]:
            doc = clean[pid]
            new = ALT_CATEGORY.get(doc["type"])
            if new is None or new == doc["category"] or new not in names:
                new = names[(names.index(doc["category"]) + 1) % len(names)]
            self._update_doc(doc, {"category": new, "updated_at": when}, "category")
        untouched = order[n_price + n_cat:]

        # new products: the next product ids, carrying the batch's new field
        rp = self.pyrandom(P_NEW_PRODUCTS)
        fields = [new_field(b) for b in range(1, min(self.batch, len(NEW_FIELDS)) + 1)]
        if new_field(self.batch) not in fields:
            fields.append(new_field(self.batch))
        next_pid = max(max_pid, self.state.sizes.products) + 1
        r_stock = self.rng(P_INVENTORY + 10)
        for _ in range(self.size["new_products"]):
            doc = gen.make_product(self.state.seed, next_pid, rp, when, salt=f"batch{self.batch}")
            for f in fields:
                doc[f] = _field_value(f, rp)
            self.mongo_inserts.append(doc)
            self.record("mongo", gen.COLLECTION, doc["_id"], "insert",
                        detail=f"field:{new_field(self.batch)}")
            cents[next_pid] = round(doc["price"] * 100)
            self.plan_new_stock(next_pid, r_stock)
            next_pid += 1

        # bad documents: a fraction of the catalog writes of this batch, and at least one when
        # the fraction is not zero (a small catalog would otherwise never see one)
        writes = n_price + n_cat + self.size["new_products"]
        bad_docs = max(1, n_bad(self.bad_fraction, writes)) if self.bad_fraction > 0 else 0
        for i in range(bad_docs):
            rule = CATALOG_RULES[((self.batch - 1) * bad_docs + i) % len(CATALOG_RULES)]
            if rule != "price_is_number" and untouched:
                # a second document for an existing product (left alone by later batches, so
                # the original stays its first version): a duplicate, or a copy with one field
                # of the wrong type (only a text product_id adds a product id to the catalog)
                pid = untouched.pop(0)
                salt = "dup" if rule == "duplicate_document" else rule
                doc = {**clean[pid], "updated_at": when, "_id": gen.object_id(
                    self.state.seed, pid, when, salt=f"{salt}{self.batch}")}
                doc = _mistyped(doc, rule, pr, 10**9 + self.batch * 1000 + i)
                self.mongo_inserts.append(doc)
                self.record("mongo", gen.COLLECTION, doc["_id"], "bad", rule,
                            detail=f"product_id:{pid}")
            else:
                rule = "price_is_number"
                doc = gen.make_product(self.state.seed, next_pid, rp, when,
                                       salt=f"bad{self.batch}")
                doc["price"] = pr.choice(PRICE_WORDS)
                self.mongo_inserts.append(doc)
                self.record("mongo", gen.COLLECTION, doc["_id"], "bad", rule,
                            detail=f"product_id:{next_pid}")
                next_pid += 1
        if self.new_stock:
            self.sql.append(("INSERT INTO inventory (product_id, warehouse_id, quantity_on_hand) "
                             "VALUES (%s, %s, %s)", self.new_stock))
        return cents

    def _update_doc(self, doc: dict, changes: dict, what: str) -> None:
        self.mongo_updates.append({**doc, **changes})     # same _id, fields in place
        self.record("mongo", gen.COLLECTION, doc["_id"], "update", detail=what)

    # -- inventory
    def plan_new_stock(self, pid: int, r: np.random.Generator) -> None:
        for w in range(1, self.state.sizes.warehouses + 1):
            self.new_stock.append((pid, w, int(r.integers(20, 200))))
            self.record("mysql", "inventory", f"{pid}:{w}", "insert")

    def plan_stock_moves(self, cur) -> None:
        """Stock moved from one warehouse to another (or restocked when the source is empty)."""
        r = self.rng(P_INVENTORY)
        wh = self.state.sizes.warehouses
        n_products = self.state.sizes.products
        n = min(self.size["stock_moves"], n_products)
        pids = (r.choice(n_products, n, replace=False) + 1).tolist()
        cur.execute("SELECT product_id, warehouse_id, quantity_on_hand FROM inventory "
                    f"WHERE product_id IN ({','.join(map(str, pids))})")
        qoh = {(p, w): q for p, w, q in cur.fetchall()}
        rows = []
        for pid in pids:
            src, dst = (int(x) + 1 for x in r.choice(wh, 2, replace=False)) if wh > 1 else (1, 1)
            amount = int(r.integers(1, 25))
            if (pid, src) not in qoh:
                continue
            if qoh[(pid, src)] == 0 or src == dst:
                rows.append((pid, src, qoh[(pid, src)] + amount))       # restock
                continue
            amount = min(amount, qoh[(pid, src)])
            rows.append((pid, src, qoh[(pid, src)] - amount))
            if (pid, dst) in qoh:
                rows.append((pid, dst, qoh[(pid, dst)] + amount))
        self.updates.append(("inventory", ("product_id", "warehouse_id"),
                             ("quantity_on_hand",), rows))
        for p, w, _ in rows:
            self.record("mysql", "inventory", f"{p}:{w}", "update", detail="quantity_on_hand")

    # -- customers
    def plan_customers(self, cur) -> int:
        """Country changes and sign-ups; returns the largest customer_id after the batch."""
        r = self.rng(P_CUSTOMERS)
        max_cid = _scalar(cur, "SELECT COALESCE(MAX(customer_id), 0) FROM customers")
        n = min(self.size["country_changes"], max_cid)
        cids = sorted(int(c) + 1 for c in r.choice(max_cid, n, replace=False))
        cur.execute("SELECT customer_id, country FROM customers "
                    f"WHERE customer_id IN ({','.join(map(str, cids))})")
        current = dict(cur.fetchall())
        names = gen.countries()
        rows = []
        for cid in cids:
            if cid not in current:
                continue
            choices = [c for c in names if c != current[cid]]
            rows.append((cid, choices[int(r.integers(len(choices)))]))
        self.updates.append(("customers", ("customer_id",), ("country",), rows))
        for cid, _ in rows:
            self.record("mysql", "customers", cid, "update", detail="country")
        new = gen.make_customers(self.state.seed, self.size["new_customers"], first_id=max_cid + 1,
                                 since=self.day, until=self.day + dt.timedelta(seconds=86399),
                                 stream=(S_BATCH, self.batch, P_CUSTOMERS))
        rows = [(d["customer_id"], d["name"], d["email"], d["country"], d["created_at"])
                for d in new.to_pylist()]
        self.sql.append(("INSERT INTO customers (customer_id, name, email, country, created_at) "
                         "VALUES (%s, %s, %s, %s, %s)", rows))
        for row in rows:
            self.record("mysql", "customers", row[0], "insert")
        return max_cid + len(rows)

    # -- sales
    def plan_sales(self, cur, cents: dict[int, int], max_cid: int) -> None:
        state = self.state
        max_id = _scalar(cur, "SELECT COALESCE(MAX(id), 0) FROM sales_data")
        cur.execute("SELECT COALESCE(MAX(CAST(record_key AS UNSIGNED)), 0) FROM change_manifest "
                    "WHERE entity = 'sales_data' AND kind IN ('insert', 'bad')")
        next_id = max(max_id, state.sizes.sales, int(cur.fetchone()[0])) + 1

        # corrections and deletions among the existing clean lines
        cur.execute("SELECT record_key FROM change_manifest "
                    "WHERE entity = 'sales_data' AND kind = 'bad'")
        bad = {int(k) for (k,) in cur.fetchall()}
        picked = pick_sales(cur, self.rng(P_PICK), max_id, bad,
                            self.size["corrections"] + self.size["deletions"])
        r = self.rng(P_PICK + 10)
        n_corr = self.size["corrections"]
        corrections, deletions = picked[:n_corr], picked[n_corr:]
        what_changes = r.choice(3, len(corrections), p=[0.4, 0.4, 0.2])
        rows = []
        for (sid, price, qty), what in zip(corrections, what_changes):
            fields = ("quantity", "price", "quantity,price")[what]
            new_q = qty if what == 1 else (qty - 1 if qty > 1 else qty + 1)
            old_c = int(price * 100)
            new_c = old_c if what == 0 else old_c - max(1, round(old_c * 0.05))
            if new_c < 1:
                new_c = old_c + 1
            rows.append((sid, Decimal(new_c).scaleb(-2), new_q))
            self.record("mysql", "sales_data", sid, "update", detail=fields)
        self.updates.append(("sales_data", ("id",), ("price", "quantity"), rows))
        for i in range(0, len(deletions), 5000):
            ids = ",".join(str(d[0]) for d in deletions[i:i + 5000])
            self.sql.append((f"DELETE FROM sales_data WHERE id IN ({ids})", None))
        for sid, _, _ in deletions:
            self.record("mysql", "sales_data", sid, "delete")

        # new lines on the batch's day, some of them bad
        r = self.rng(P_SALES)
        n = self.size["new_sales"]
        pids = np.array(sorted(cents), dtype=np.int64)
        base = gen.popularity(state.seed, state.sizes.products)
        w = np.array([base[p - 1] if p <= len(base) else 1.0 / len(base) for p in pids])
        pid = pids[r.choice(len(pids), n, p=w / w.sum())]
        cw = gen.customer_weights(state.seed, state.sizes.customers)
        cw = np.concatenate([cw, np.full(max(0, max_cid - len(cw)), 1.0 / len(cw))])[:max_cid]
        cid = r.choice(max_cid, n, p=cw / cw.sum()) + 1
        list_c = np.array([cents[int(p)] for p in pid], dtype=np.int64)
        price_c = gen.sale_prices(r, list_c)
        qty = gen.quantities(r, list_c)
        secs = np.sort(r.choice(24, n, p=gen.HOURLY) * 3600 + r.integers(0, 3600, n))
        rows = [[next_id + i, int(pid[i]), int(cid[i]), Decimal(int(price_c[i])).scaleb(-2),
                 int(qty[i]), self.day + dt.timedelta(seconds=int(secs[i]))] for i in range(n)]
        rb = self.rng(P_BAD)
        n_b = n_bad(self.bad_fraction, n)
        bad_at = set(rb.choice(n, n_b, replace=False).tolist()) if n_b else set()
        rules = {}
        for j, i in enumerate(sorted(bad_at)):
            rule = SALES_RULES[(self.batch - 1 + j) % len(SALES_RULES)]
            row = rows[i]
            if rule == "product_id_not_null":
                row[1] = None
            elif rule == "customer_id_not_null":
                row[2] = None
            elif rule == "quantity_positive":
                row[4] = -row[4]
            elif rule == "price_positive":
                row[3] = Decimal("0.00") if j % 2 == 0 else -row[3]
            else:   # (day 28 at most: 29 February does not exist in 1900 nor 2100)
                ts = row[5]
                row[5] = ts.replace(year=1900 if j % 2 == 0 else 2100, day=min(ts.day, 28))
            rules[i] = rule
        self.sql.append(("INSERT INTO sales_data (id, product_id, customer_id, price, quantity, "
                         "`timestamp`) VALUES (%s, %s, %s, %s, %s, %s)", [tuple(x) for x in rows]))
        for i, row in enumerate(rows):
            if i in rules:
                self.record("mysql", "sales_data", row[0], "bad", rules[i])
            else:
                self.record("mysql", "sales_data", row[0], "insert")

    # -- writing
    def counts(self) -> dict[str, int]:
        c = Counter(f"{entity} {kind}" for _, _, entity, _, kind, _, _ in self.manifest)
        return dict(sorted(c.items()))

    def write_mongo(self, coll) -> None:
        """Updated documents are written as delete + insert of their new version (same _id):
        FerretDB on SQLite scans the whole collection for every update_one, even by _id
        (~0.15 s per 10,000 documents each), while one delete_many scans once."""
        if self.mongo_updates:
            ids = [d["_id"] for d in self.mongo_updates]
            deleted = coll.delete_many({"_id": {"$in": ids}}).deleted_count
            if deleted != len(ids):
                raise RuntimeError(f"catalog update: {deleted} of {len(ids)} documents found")
        docs = self.mongo_updates + self.mongo_inserts
        for i in range(0, len(docs), gen.MONGO_BATCH):
            coll.insert_many(docs[i:i + gen.MONGO_BATCH], ordered=True)

    def write_mysql(self, conn) -> None:
        """Everything MySQL in one transaction, with the manifest and the applied_batches row."""
        cur = conn.cursor()
        for table, keys, cols, rows in self.updates:
            if rows:
                update_from_rows(cur, table, keys, cols, rows)
        for statement, rows in self.sql:
            if rows is None:
                cur.execute(statement)
            for i in range(0, len(rows or ()), 5000):
                cur.executemany(statement, rows[i:i + 5000])
        for i in range(0, len(self.manifest), 5000):
            cur.executemany("INSERT INTO change_manifest (batch, system, entity, record_key, kind, "
                            "rule, detail) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                            self.manifest[i:i + 5000])
        cur.execute("INSERT INTO applied_batches (batch, seed, counts) VALUES (%s, %s, %s)",
                    (self.batch, self.state.seed, json.dumps(self.counts(), sort_keys=True)))
        conn.commit()


def update_from_rows(cur, table: str, keys: tuple, cols: tuple, rows: list[tuple]) -> None:
    """UPDATE many rows to given values in one statement: the values go into a temporary table
    (a multi-row INSERT) joined on the key."""
    tmp = f"tmp_{table}_changes"
    cur.execute(f"DROP TEMPORARY TABLE IF EXISTS {tmp}")
    cur.execute(f"CREATE TEMPORARY TABLE {tmp} AS SELECT {', '.join(keys + cols)} "
                f"FROM `{table}` WHERE 1 = 0")
    cur.executemany(f"INSERT INTO {tmp} VALUES ({', '.join(['%s'] * len(keys + cols))})", rows)
    on = " AND ".join(f"t.{k} = c.{k}" for k in keys)
    sets = ", ".join(f"t.{c} = c.{c}" for c in cols)
    cur.execute(f"UPDATE `{table}` t JOIN {tmp} c ON {on} SET {sets}")
    cur.execute(f"DROP TEMPORARY TABLE {tmp}")
