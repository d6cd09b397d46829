"""What a change batch holds: its day, its sizes, the rules its bad records break and how
each bad record is made."""
from __future__ import annotations

import datetime as dt

import numpy as np

from ecomlake.errors import EcomlakeError
from ecomlake.ops.sources import generator as gen

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
