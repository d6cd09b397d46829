"""The rows of the MySQL tables as pyarrow tables: who buys what (product popularity, customer
weights), when (seasonality), the customers, the sales lines by month, and the stock."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa

from ecomlake.ops.sources.generator.base import (EPOCH, FIRST_DAY, LAST_DAY, S_CUSTOMERS, S_DAYS,
                                                 S_INVENTORY, S_POPULARITY, S_SALES, WAREHOUSES,
                                                 Sizes, rng)
from ecomlake.ops.sources.generator.catalog import (CATEGORY_SHARE, COUNTRY_WEIGHT,
                                                    EMAIL_DOMAINS, FIRST_NAMES, LAST_NAMES,
                                                    countries)


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
