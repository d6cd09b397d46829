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

import datetime as dt
import json
import logging
from collections import Counter
from decimal import Decimal

import numpy as np

from ecomlake.config import Config
from ecomlake.errors import EcomlakeError
from ecomlake.io import mongo, mysql
from ecomlake.ops.sources import generator as gen

log = logging.getLogger(__name__)

FIRST_BATCH_DAY = dt.date(2022, 1, 1)
MAX_BAD_FRACTION = 0.5
MAX_BATCH = 10_000      # day 10,000 of the batches is in 2049, well before the 2100 rule
SALES_RULES = ("product_id_not_null", "customer_id_not_null", "quantity_positive",
               "price_positive", "timestamp_plausible")
# The bad catalog documents of a batch take the next kinds of this list, where the previous
# batch's left off (batch K's i-th bad document: kind (K - 1) * bad_docs + i). Each breaks the
# rule it is named by: a word for a price, another product's duplicate, or a value of the wrong
# BSON type (silver types fields from their BSON types: conf/tables.yaml, `<field>_is_<kind>`).
CATALOG_RULES = ("screen_size_is_number", "type_is_text", "price_is_number", "duplicate_document",
                 "product_id_is_integer", "model_is_text", "category_is_text", "brand_is_text",
                 "updated_at_is_timestamp", "attributes_is_document", "id_is_object_id_or_string")
# The field that new products of batch K introduce (later new products carry the earlier ones).
NEW_FIELDS = ("energy_label", "warranty_years", "eco_score", "country_of_origin",
              "release_year", "recycled_content_pct")
PRICE_WORDS = ("twelve", "ninety-nine", "TBD", "n/a", "call us", "free")
SCREEN_WORDS = ("fifteen", "15.6", '15.6"', "N/A")     # text where a number belongs
# Re-categorisations that happen in real catalogs; other types move to the next category.
ALT_CATEGORY = {"smart watch": "Sports", "headphones": "Sports", "video game": "Toys",
                "puzzle": "Books", "textbook": "Software", "camera": "Sports",
                "building blocks": "Software", "yoga mat": "Books"}
# Random streams of a batch: (S_BATCH, batch, purpose)
S_BATCH = 100
P_SALES, P_PICK, P_CATALOG, P_NEW_PRODUCTS, P_CUSTOMERS, P_INVENTORY, P_BAD = range(1, 8)


class BatchRefused(EcomlakeError):
    """A change batch cannot be applied: already applied, out of order, or no generated data."""


def batch_day(batch: int) -> dt.datetime:
    return dt.datetime.combine(FIRST_BATCH_DAY + dt.timedelta(days=batch - 1), dt.time())


def new_field(batch: int) -> str:
    return NEW_FIELDS[batch - 1] if batch <= len(NEW_FIELDS) else f"extra_field_{batch}"


def _field_value(name: str, r) -> object:
    if name == "energy_label":
        return r.choice("ABCDEFG")
    if name == "warranty_years":
        return r.choice((1, 2, 3, 5))
    if name == "eco_score":
        return r.randint(0, 100)
    if name == "country_of_origin":
        return r.choice(gen.countries())
    if name == "release_year":
        return 2022
    if name == "recycled_content_pct":
        return r.randint(0, 80)
    return f"v{name.rsplit('_', 1)[-1]}"


def _mistyped(doc: dict, rule: str, r, int_id: int) -> dict:
    """`doc` with the field of `rule` given a value of a BSON type that rule refuses (a
    duplicate_document is returned as it is)."""
    doc = dict(doc)
    if rule == "screen_size_is_number":
        doc["screen size"] = r.choice(SCREEN_WORDS)
    elif rule == "type_is_text":
        doc["type"] = [doc["type"], "accessory"]                        # an array
    elif rule == "product_id_is_integer":
        doc["product_id"] = str(doc["product_id"])
    elif rule == "model_is_text":
        doc["model"] = {"name": doc["model"], "year": 2022}            # a nested document
    elif rule == "category_is_text":
        doc["category"] = [doc["category"]]
    elif rule == "brand_is_text":
        doc["brand"] = {"name": doc["brand"]}
    elif rule == "updated_at_is_timestamp":
        doc["updated_at"] = doc["updated_at"].strftime("%Y-%m-%dT%H:%M:%SZ")   # text, not a date
    elif rule == "attributes_is_document":
        doc["attributes"] = "see the manufacturer's website"
    elif rule == "id_is_object_id_or_string":
        doc["_id"] = int_id                                              # an integer _id
    elif rule != "duplicate_document":
        raise ValueError(f"no bad catalog document for rule {rule!r}")
    return doc


def check_args(batch: int, bad_fraction: float) -> None:
    if not isinstance(batch, int) or isinstance(batch, bool) or not 1 <= batch <= MAX_BATCH:
        raise ValueError(f"batch must be an integer from 1 (the first batch) to {MAX_BATCH}, "
                         f"got {batch!r}")
    if not isinstance(bad_fraction, (int, float)) or not 0 <= bad_fraction <= MAX_BAD_FRACTION:
        raise ValueError(f"bad fraction must be a number from 0 to {MAX_BAD_FRACTION}, "
                         f"got {bad_fraction!r}")


def sizes_of(state: gen.State) -> dict[str, int]:
    """How many records of each kind a batch changes: ~1 % of the sales lines, at least a few."""
    s = state.sizes
    return {"new_sales": max(20, round(0.005 * s.sales)),
            "corrections": max(10, round(0.003 * s.sales)),
            "deletions": max(6, round(0.002 * s.sales)),
            "stock_moves": max(2, round(0.005 * s.products * s.warehouses)),
            # a shop reprices dozens of products a day, not 0.5 % of a big catalog
            "price_changes": min(40, max(2, round(0.005 * s.products))),
            "category_changes": min(15, max(1, round(0.002 * s.products))),
            "new_products": max(1, round(0.002 * s.products)),
            "country_changes": max(2, round(0.001 * s.customers)),
            "new_customers": max(1, round(0.001 * s.customers))}


def n_bad(fraction: float, n: int) -> int:
    return int(np.floor(fraction * n + 0.5))


# ---------------------------------------------------------------- reading the current state

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


# ---------------------------------------------------------------- the batch

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
