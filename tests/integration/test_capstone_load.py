"""The course data loads into the real MySQL and MongoDB with the counts of the files."""
import csv
import json
from decimal import Decimal

from ecomlake.io import mongo, mysql
from ecomlake.ops.sources import capstone

from tests.conftest import CAPSTONE


def file_sales():
    with open(CAPSTONE / "oltpdata.csv", newline="") as f:
        return [r for r in csv.reader(f) if r]


def test_load_capstone_counts_match_the_files(cfg):
    counts = capstone.load(cfg)
    docs = [json.loads(l) for l in (CAPSTONE / "catalog.json").read_text().splitlines() if l.strip()]
    assert counts == {"mysql sales.sales_data": len(file_sales()),
                      f"mongodb {cfg.mongo.database}.electronics": len(docs)}


def test_load_capstone_rows_are_the_files_rows(cfg):
    capstone.load(cfg)
    conn = mysql.connect(cfg)
    cur = conn.cursor()
    cur.execute("SELECT product_id, customer_id, price, quantity, "
                "DATE_FORMAT(`timestamp`, '%Y-%m-%d %H:%i:%s') FROM sales_data ORDER BY id")
    got = [(str(p), str(c), pr, str(q), ts) for p, c, pr, q, ts in cur.fetchall()]
    conn.close()
    expected = [(p, c, Decimal(pr), q, ts) for p, c, pr, q, ts in file_sales()]
    assert got == expected


def test_load_capstone_is_repeatable_and_keeps_field_names(cfg):
    capstone.load(cfg)
    capstone.load(cfg)
    with mongo.client(cfg) as c:
        coll = c[cfg.mongo.database]["electronics"]
        laptops = coll.count_documents({"type": "laptop"})
        phones_6in = coll.count_documents({"type": "smart phone", "screen size": 6})
    docs = [json.loads(l) for l in (CAPSTONE / "catalog.json").read_text().splitlines() if l.strip()]
    assert laptops == sum(d.get("type") == "laptop" for d in docs) > 0
    assert phones_6in == sum(d.get("type") == "smart phone" and d.get("screen size") == 6 for d in docs)
