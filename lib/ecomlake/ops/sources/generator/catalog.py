"""The course's reference names (countries, categories) and the catalog: the product documents
of MongoDB catalog.electronics, with the fixed name lists that customers use too."""
from __future__ import annotations

import csv
import datetime as dt
import hashlib
import random

import numpy as np
from bson import ObjectId

from ecomlake.ops.sources.capstone import CAPSTONE_DIR
from ecomlake.ops.sources.generator.base import CATALOG_SINCE, EPOCH, S_PRODUCTS, pyrandom


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
