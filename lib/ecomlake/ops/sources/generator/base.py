"""What every part of the generator shares: the scale and seed (their checks and the Sizes they
give), the date range, and the seeded random streams. The package docstring
(ecomlake.ops.sources.generator) describes the data."""
from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass

import numpy as np

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
