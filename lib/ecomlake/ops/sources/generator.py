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

import csv
import datetime as dt
import hashlib
import logging
import random
import shutil
import tempfile
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
from bson import ObjectId

from ecomlake.config import Config
from ecomlake.io import mongo, mysql
from ecomlake.ops.sources.capstone import CAPSTONE_DIR, apply_mysql_schema

log = logging.getLogger(__name__)

MIN_SCALE, MAX_SCALE = 0.0001, 100.0
MAX_SEED = 2**63 - 1                 # generator_state.seed is a BIGINT
FIRST_DAY, LAST_DAY = dt.date(2019, 1, 1), dt.date(2021, 12, 31)   # as DimDate.csv
CATALOG_SINCE = dt.datetime(2018, 1, 1)   # generated documents were last changed in 2018
COLLECTION = "electronics"
MONGO_BATCH = 10_000
FILE_ROWS = 250_000         # sales lines per LOAD DATA file (at least)
WAREHOUSES = 3
EPOCH = dt.datetime(1970, 1, 1)

# Random streams: each purpose draws from its own, so adding a draw to one changes no other.
S_PRODUCTS, S_POPULARITY, S_CUSTOMERS, S_DAYS, S_SALES, S_INVENTORY = range(1, 7)


@dataclass(frozen=True)
class Sizes:
    sales: int
    customers: int
    products: int
    warehouses: int = WAREHOUSES


def check_scale(scale: float) -> float:
    if not isinstance(scale, (int, float)) or isinstance(scale, bool) or not \
            MIN_SCALE <= scale <= MAX_SCALE:
        raise ValueError(f"scale must be a number from {MIN_SCALE} to {MAX_SCALE:g} "
                         f"(1 = a million sales lines), got {scale!r}")
    return float(scale)


def check_seed(seed: int) -> int:
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= MAX_SEED:
        raise ValueError(f"seed must be an integer from 0 to {MAX_SEED}, got {seed!r}")
    return seed


def sizes(scale: float) -> Sizes:
    scale = check_scale(scale)
    return Sizes(sales=max(100, round(1_000_000 * scale)),
                 customers=max(20, round(100_000 * scale)),
                 products=max(10, round(10_000 * scale)))


def rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, *keys])))


def pyrandom(seed: int, *keys: int) -> random.Random:
    return random.Random(int(np.random.SeedSequence([seed, *keys]).generate_state(1, np.uint64)[0]))


# ---------------------------------------------------------------- reference data (course files)

def _dim_names(file: str) -> list[str]:
    with open(CAPSTONE_DIR / file, newline="", encoding="utf-8-sig") as f:
        return [row[1] for row in list(csv.reader(f))[1:] if row]


def countries() -> list[str]:
    return _dim_names("DimCountry.csv")


def categories() -> list[str]:
    return _dim_names("DimCategory.csv")


# Bigger markets get more customers; every other DimCountry name has weight 1.
COUNTRY_WEIGHT = {"United States": 9, "India": 6, "United Kingdom": 5, "Germany": 4,
                  "Japan": 3, "France": 3, "Brazil": 3, "Canada": 3, "Australia": 2,
                  "Italy": 2, "Spain": 2, "Mexico": 2, "South Korea": 2, "Netherlands": 2}

# ---------------------------------------------------------------- the catalog

CATEGORY_SHARE = {"Electronics": 0.40, "Books": 0.20, "Toys": 0.15, "Sports": 0.15,
                  "Software": 0.10}
BRANDS = {
    "Electronics": ("Samsung", "Apple", "Xiaomi", "Lenovo", "Dell", "HP", "Asus", "Acer", "Sony",
                    "LG", "Bose", "JBL", "Garmin", "Huawei"),
    "Books": ("Penguin", "HarperCollins", "Macmillan", "Hachette", "Scholastic", "Wiley"),
    "Toys": ("Lego", "Hasbro", "Mattel", "Ravensburger", "Playmobil"),
    "Sports": ("Adidas", "Nike", "Puma", "Wilson", "Decathlon", "Trek", "Asics"),
    "Software": ("Microsoft", "Adobe", "Norton", "Kaspersky", "Ubisoft", "EA", "Corel"),
}
# type -> (category, share within its category, list price range, screen sizes or ())
TYPES = {
    "smart phone": ("Electronics", 0.28, (149, 1299), (5.5, 6.0, 6.1, 6.5, 6.7)),
    "laptop": ("Electronics", 0.20, (399, 2999), (13.3, 14.0, 15.6, 16.0, 17.3)),
    "tablet": ("Electronics", 0.12, (129, 1199), (8.0, 10.2, 10.9, 11.0, 12.9)),
    "tv": ("Electronics", 0.12, (249, 3999), (32.0, 43.0, 50.0, 55.0, 65.0, 75.0)),
    "headphones": ("Electronics", 0.14, (19, 449), ()),
    "smart watch": ("Electronics", 0.08, (79, 799), (1.2, 1.4, 1.6, 1.9)),
    "camera": ("Electronics", 0.06, (199, 2999), ()),
    "novel": ("Books", 0.45, (6, 30), ()),
    "cookbook": ("Books", 0.20, (12, 45), ()),
    "biography": ("Books", 0.20, (10, 40), ()),
    "textbook": ("Books", 0.15, (25, 180), ()),
    "board game": ("Toys", 0.30, (15, 90), ()),
    "puzzle": ("Toys", 0.25, (8, 45), ()),
    "action figure": ("Toys", 0.25, (10, 60), ()),
    "building blocks": ("Toys", 0.20, (20, 250), ()),
    "football": ("Sports", 0.25, (15, 150), ()),
    "tennis racket": ("Sports", 0.20, (30, 280), ()),
    "yoga mat": ("Sports", 0.20, (15, 90), ()),
    "bicycle": ("Sports", 0.15, (250, 3000), ()),
    "running shoes": ("Sports", 0.20, (50, 220), ()),
    "antivirus": ("Software", 0.30, (20, 90), ()),
    "office suite": ("Software", 0.20, (60, 440), ()),
    "video game": ("Software", 0.35, (20, 70), ()),
    "photo editor": ("Software", 0.15, (50, 300), ()),
}
FIRST_NAMES = ("James", "Mary", "Wei", "Aisha", "Carlos", "Sofia", "Yuki", "Olga", "Ahmed", "Emma",
               "Liam", "Priya", "Noah", "Fatima", "Lucas", "Chen", "Anna", "Mateo", "Zara", "Ivan",
               "Elena", "Omar", "Hana", "David", "Maria", "Kenji", "Lea", "Ravi", "Nora", "Pedro",
               "Sara", "Tomas", "Amara", "Jonas", "Mia", "Ali", "Ines", "Hugo", "Leila", "Arjun")
LAST_NAMES = ("Smith", "Garcia", "Wang", "Khan", "Muller", "Rossi", "Tanaka", "Ivanova", "Silva",
              "Kim", "Nguyen", "Patel", "Johnson", "Lopez", "Martin", "Novak", "Cohen", "Santos",
              "Yilmaz", "Dubois", "Jensen", "Kowalski", "Haddad", "Costa", "Sato", "Brown",
              "Fischer", "Ali", "Perez", "Larsen", "Moreau", "Singh", "Popescu", "Okafor")
EMAIL_DOMAINS = ("example.com", "mail.example.org", "post.example.net", "inbox.example.com")
COLORS = ("black", "white", "silver", "blue", "red", "green", "gold")
PLATFORMS = ("windows", "macos", "linux", "android", "ios")


def _attributes(kind: str, brand: str, r: random.Random) -> dict:
    """The nested, per-type attributes of a product document."""
    c = r.choice
    if kind == "smart phone":
        return {"storage_gb": c((64, 128, 256, 512)), "ram_gb": c((4, 6, 8, 12)),
                "color": c(COLORS), "os": "ios" if brand == "Apple" else "android"}
    if kind == "laptop":
        return {"ram_gb": c((8, 16, 32)), "storage_gb": c((256, 512, 1024, 2048)),
                "cpu": c(("i5", "i7", "ryzen 5", "ryzen 7", "m2"))}
    if kind == "tablet":
        return {"storage_gb": c((32, 64, 128, 256)), "cellular": r.random() < 0.4}
    if kind == "tv":
        return {"resolution": c(("full hd", "4k", "8k")), "panel": c(("led", "oled", "qled")),
                "smart": r.random() < 0.9}
    if kind == "headphones":
        return {"wireless": r.random() < 0.7, "noise_cancelling": r.random() < 0.4,
                "battery_hours": c((20, 30, 40))}
    if kind == "smart watch":
        return {"gps": r.random() < 0.6, "battery_days": c((1, 2, 7, 14)), "water_resistant_m": 50}
    if kind == "camera":
        return {"megapixels": c((20, 24, 33, 45, 61)), "mount": c(("e", "rf", "z", "x"))}
    if kind in ("novel", "cookbook", "biography", "textbook"):
        attrs = {"author": f"{c(FIRST_NAMES)} {c(LAST_NAMES)}", "pages": r.randint(90, 900),
                 "language": c(("en", "en", "en", "es", "de", "fr"))}
        if kind == "textbook":
            attrs["edition"] = r.randint(1, 9)
        return attrs
    if kind == "board game":
        lo = r.randint(1, 3)
        return {"players_min": lo, "players_max": lo + r.randint(1, 6),
                "age_min": c((6, 8, 10, 12))}
    if kind in ("puzzle", "building blocks"):
        return {"pieces": c((100, 250, 500, 1000, 2000)), "age_min": c((3, 6, 9, 12))}
    if kind == "action figure":
        return {"franchise": c(("space", "heroes", "dinosaurs", "knights")),
                "age_min": c((4, 6, 8))}
    if kind == "football":
        return {"size": c((3, 4, 5)), "material": c(("pu", "pvc", "leather"))}
    if kind == "tennis racket":
        return {"weight_g": r.randint(250, 330), "head_size_sq_in": c((95, 98, 100, 105))}
    if kind == "yoga mat":
        return {"thickness_mm": c((3, 4, 6, 8)), "material": c(("tpe", "pvc", "rubber", "cork"))}
    if kind == "bicycle":
        return {"frame_size_cm": c((48, 52, 54, 56, 58)), "gears": c((1, 8, 11, 21, 24)),
                "kind": c(("road", "mountain", "city", "gravel"))}
    if kind == "running shoes":
        return {"gender": c(("men", "women", "unisex")), "drop_mm": c((4, 6, 8, 10))}
    # software
    attrs = {"platform": c(PLATFORMS), "license": c(("perpetual", "subscription"))}
    if kind == "antivirus":
        attrs.update(devices=c((1, 3, 5, 10)), license_years=c((1, 2)))
    if kind == "video game":
        attrs.update(pegi=c((3, 7, 12, 16, 18)))
    return attrs


def object_id(seed: int, product_id: int, when: dt.datetime, salt: str = "") -> ObjectId:
    """A deterministic ObjectId: `when` as its timestamp, a hash of (seed, product, salt) after."""
    tail = hashlib.blake2b(f"{seed}/{product_id}/{salt}".encode(), digest_size=8).digest()
    return ObjectId(int((when - EPOCH).total_seconds()).to_bytes(4, "big") + tail)


def make_product(seed: int, product_id: int, r: random.Random, when: dt.datetime,
                 salt: str = "") -> dict:
    """One catalog document; `r` decides everything but the _id."""
    category = r.choices(list(CATEGORY_SHARE), weights=list(CATEGORY_SHARE.values()))[0]
    kinds = [k for k, spec in TYPES.items() if spec[0] == category]
    kind = r.choices(kinds, weights=[TYPES[k][1] for k in kinds])[0]
    _, _, (lo, hi), screens = TYPES[kind]
    brand = r.choice(BRANDS[category])
    # log-uniform list price, ending in .99 (stored as a double, exactly cents/100)
    cents = max(99, round(np.exp(r.uniform(np.log(lo), np.log(hi)))) * 100 - 1)
    doc = {"_id": object_id(seed, product_id, when, salt), "product_id": product_id,
           "type": kind, "model": f"{brand[:2].lower()}{r.randint(1, 99)}{r.choice('abcxz')}"}
    if screens:
        doc["screen size"] = float(r.choice(screens))
    doc.update(category=category, brand=brand, price=cents / 100,
               attributes=_attributes(kind, brand, r), updated_at=when)
    return doc


def make_catalog(seed: int, n: int) -> list[dict]:
    r = pyrandom(seed, S_PRODUCTS)
    span = int((dt.datetime(2018, 12, 31) - CATALOG_SINCE).total_seconds())
    return [make_product(seed, pid, r, CATALOG_SINCE + dt.timedelta(seconds=r.randrange(span)))
            for pid in range(1, n + 1)]


def popularity(seed: int, n: int) -> np.ndarray:
    """Zipf-like weights of products 1..n (rank order shuffled so id 1 is not the best seller)."""
    ranks = rng(seed, S_POPULARITY).permutation(n) + 1
    w = 1.0 / ranks ** 1.05
    return w / w.sum()


def customer_weights(seed: int, n: int) -> np.ndarray:
    """How much each customer buys: a few buy a lot (log-normal)."""
    w = rng(seed, S_CUSTOMERS, 1).lognormal(0.0, 1.0, n)
    return w / w.sum()


# ---------------------------------------------------------------- seasonality

WEEKDAY = np.array([0.95, 0.92, 0.95, 1.0, 1.08, 1.22, 1.15])       # Monday first
MONTH = np.array([0.85, 0.8, 0.9, 0.9, 0.95, 0.95, 0.95, 1.0, 0.95, 1.05, 1.45, 1.75])
HOURLY = np.array([2, 1, 1, 1, 1, 2, 3, 5, 6, 6, 7, 8, 9, 8, 7, 7, 7, 8, 9, 11, 12, 11, 8, 4],
                  dtype=float)
HOURLY /= HOURLY.sum()
CATEGORY_SEASON = {"Toys": {11: 1.6, 12: 2.5}, "Sports": {5: 1.2, 6: 1.4, 7: 1.4, 8: 1.3},
                   "Books": {9: 1.2, 12: 1.3}, "Electronics": {11: 1.3, 12: 1.2},
                   "Software": {1: 1.2}}


def _special_days(year: int) -> dict[dt.date, float]:
    nov1 = dt.date(year, 11, 1)
    thanksgiving = nov1 + dt.timedelta(days=(3 - nov1.weekday()) % 7 + 21)
    return {thanksgiving + dt.timedelta(days=1): 2.6,        # Black Friday
            thanksgiving + dt.timedelta(days=4): 2.0,        # Cyber Monday
            dt.date(year, 12, 24): 0.7, dt.date(year, 12, 25): 0.4, dt.date(year, 12, 26): 1.4}


def day_weights(days: list[dt.date]) -> np.ndarray:
    special = {k: v for y in {d.year for d in days} for k, v in _special_days(y).items()}
    w = np.array([WEEKDAY[d.weekday()] * MONTH[d.month - 1] * special.get(d, 1.0)
                  * (1 + 0.3 * (d - FIRST_DAY).days / 365.25) for d in days])
    return w / w.sum()


def sale_days() -> list[dt.date]:
    return [FIRST_DAY + dt.timedelta(days=i) for i in range((LAST_DAY - FIRST_DAY).days + 1)]


def epoch_seconds(d: dt.date | dt.datetime) -> int:
    if not isinstance(d, dt.datetime):
        d = dt.datetime(d.year, d.month, d.day)
    return int((d - EPOCH).total_seconds())


# ---------------------------------------------------------------- customers

def make_customers(seed: int, n: int, first_id: int = 1,
                   since: dt.datetime = dt.datetime(2016, 1, 1),
                   until: dt.datetime = dt.datetime(2021, 12, 31, 23, 59, 59),
                   stream: tuple = (S_CUSTOMERS, 2)) -> pa.Table:
    """Customers first_id.., ids in sign-up order. A quarter signed up before the sales start,
    the rest at a growing pace until `until`."""
    r = rng(seed, *stream)
    lo, hi, start = epoch_seconds(since), epoch_seconds(until), epoch_seconds(FIRST_DAY)
    if since >= dt.datetime(FIRST_DAY.year, 1, 1):
        created = r.integers(lo, hi + 1, n)
    else:
        early = r.random(n) < 0.25
        late = start + ((hi - start) * np.sqrt(r.random(n))).astype(np.int64)   # growing pace
        created = np.where(early, r.integers(lo, start, n), late)
        created[0] = lo            # somebody can buy on the first day
    created.sort()
    ctry = countries()
    cw = np.array([COUNTRY_WEIGHT.get(c, 1) for c in ctry], dtype=float)
    country = np.array(ctry, dtype=object)[r.choice(len(ctry), n, p=cw / cw.sum())]
    first = r.integers(0, len(FIRST_NAMES), n)
    last = r.integers(0, len(LAST_NAMES), n)
    domain = r.integers(0, len(EMAIL_DOMAINS), n)
    ids = np.arange(first_id, first_id + n, dtype=np.int64)
    names = [f"{FIRST_NAMES[a]} {LAST_NAMES[b]}" for a, b in zip(first, last)]
    emails = [f"{FIRST_NAMES[a].lower()}.{LAST_NAMES[b].lower()}{i}@{EMAIL_DOMAINS[d]}"
              for a, b, i, d in zip(first, last, ids, domain)]
    return pa.table({"customer_id": ids, "name": names, "email": emails, "country": country,
                     "created_at": pa.array(created.astype("datetime64[s]"))})


# ---------------------------------------------------------------- sales

QTY_CHEAP = np.array([0.40, 0.25, 0.15, 0.12, 0.08])
QTY_DEAR = np.array([0.80, 0.12, 0.05, 0.02, 0.01])
DISCOUNTS = np.array([1.00, 0.95, 0.90])
DISCOUNT_P = np.array([0.60, 0.25, 0.15])


def sale_prices(r: np.random.Generator, list_cents: np.ndarray) -> np.ndarray:
    """Sale price in cents: the list price less 0, 5 or 10 %."""
    disc = DISCOUNTS[r.choice(3, len(list_cents), p=DISCOUNT_P)]
    return np.maximum(1, np.rint(list_cents * disc)).astype(np.int64)


def quantities(r: np.random.Generator, list_cents: np.ndarray) -> np.ndarray:
    dear = list_cents >= 50_000
    q = np.where(dear, r.choice(5, len(list_cents), p=QTY_DEAR),
                 r.choice(5, len(list_cents), p=QTY_CHEAP))
    return (q + 1).astype(np.int32)


def sales_chunks(seed: int, sz: Sizes, catalog: list[dict], signup: np.ndarray):
    """Yield one pyarrow table of sales lines per calendar month, ids in time order."""
    days = sale_days()
    counts = rng(seed, S_DAYS).multinomial(sz.sales, day_weights(days))
    list_cents = np.array([round(d["price"] * 100) for d in catalog], dtype=np.int64)
    cat_names = list(CATEGORY_SHARE)
    product_cat = np.array([cat_names.index(d["category"]) for d in catalog])
    pop = popularity(seed, sz.products)
    cum_cw = np.cumsum(customer_weights(seed, sz.customers))
    months = sorted({(d.year, d.month) for d in days})
    next_id, offset = 1, 0
    for m, (year, month) in enumerate(months):
        n_days = sum(1 for d in days if (d.year, d.month) == (year, month))
        month_counts = counts[offset:offset + n_days]
        day0 = epoch_seconds(days[offset])
        offset += n_days
        n = int(month_counts.sum())
        if n == 0:
            continue
        r = rng(seed, S_SALES, m)
        day_idx = np.repeat(np.arange(n_days), month_counts)
        secs = r.choice(24, n, p=HOURLY) * 3600 + r.integers(0, 3600, n)
        ts = np.sort(day0 + day_idx * 86400 + secs)
        season = np.array([CATEGORY_SEASON.get(c, {}).get(month, 1.0) for c in cat_names])
        p = pop * season[product_cat]
        pid = r.choice(sz.products, n, p=p / p.sum())           # 0-based
        # only customers who had signed up by the time of the sale (ids are in sign-up order)
        eligible = np.maximum(np.searchsorted(signup, ts, side="right"), 1)
        u = r.random(n) * cum_cw[eligible - 1]
        cid = np.minimum(np.searchsorted(cum_cw, u, side="right"), eligible - 1) + 1
        cents = sale_prices(r, list_cents[pid])
        qty = quantities(r, list_cents[pid])
        ids = np.arange(next_id, next_id + n, dtype=np.int64)
        next_id += n
        yield pa.table({"id": ids, "product_id": (pid + 1).astype(np.int32),
                        "customer_id": cid.astype(np.int32), "cents": cents, "quantity": qty,
                        "timestamp": pa.array(ts.astype("datetime64[s]"))})


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


def make_inventory(seed: int, product_ids: np.ndarray, weights: np.ndarray,
                   warehouses: int = WAREHOUSES, stream: tuple = (S_INVENTORY,)) -> pa.Table:
    """Stock per product and warehouse: more of what sells more, some items out of stock."""
    r = rng(seed, *stream)
    n = len(product_ids)
    lam = 5 + 2000 * weights / max(weights.max(), 1e-12)
    qty = r.poisson(np.repeat(lam, warehouses))
    qty[r.random(n * warehouses) < 0.05] = 0
    return pa.table({"product_id": np.repeat(product_ids, warehouses).astype(np.int32),
                     "warehouse_id": np.tile(np.arange(1, warehouses + 1), n).astype(np.int16),
                     "quantity_on_hand": qty.astype(np.int32)})


# ---------------------------------------------------------------- loading

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
