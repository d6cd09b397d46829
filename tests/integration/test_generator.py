"""The data generator, the change batches and the web logs, against the real MySQL and MongoDB.

The module leaves the servers holding the course data again (the `course_data_restored`
finalizer), as the other tests expect.
"""
import argparse
import bson
import csv
import datetime as dt
import hashlib
import re
from collections import Counter
from decimal import Decimal

import pytest

from ecomlake.io import mongo, mysql
from ecomlake.ops.sources import capstone, changes, generator, weblogs
from ecomlake.ops.sources.cli_commands import add_commands

from tests.conftest import CAPSTONE

SALES_COLS = "id, product_id, customer_id, price, quantity, `timestamp`"
CUSTOMER_COLS = "customer_id, name, email, country, created_at"
INVENTORY_COLS = "product_id, warehouse_id, quantity_on_hand"
SCREEN_TYPES = {"smart phone", "laptop", "tablet", "tv", "smart watch"}


@pytest.fixture(scope="module", autouse=True)
def course_data_restored(cfg):
    yield
    capstone.load(cfg)


def dim_names(file):
    with open(CAPSTONE / file, newline="", encoding="utf-8-sig") as f:
        return {row[1] for row in list(csv.reader(f))[1:] if row}


def rows(cfg, sql):
    conn = mysql.connect(cfg)
    try:
        cur = conn.cursor()
        cur.execute(sql)
        return cur.fetchall()
    finally:
        conn.close()


def docs(cfg):
    with mongo.client(cfg) as c:
        return {str(d["_id"]): d for d in c[cfg.mongo.database]["electronics"].find({})}


def checksums(cfg):
    """sha256 of every generated table (all columns but the server's updated_at, in key order)
    and of the catalog documents' BSON bytes in _id order."""
    out = {}
    for table, cols, key in (("sales_data", SALES_COLS, "id"),
                             ("customers", CUSTOMER_COLS, "customer_id"),
                             ("inventory", INVENTORY_COLS, "product_id, warehouse_id")):
        out[table] = hashlib.sha256(
            repr(rows(cfg, f"SELECT {cols} FROM {table} ORDER BY {key}")).encode()).hexdigest()
    h = hashlib.sha256()
    for _, d in sorted(docs(cfg).items()):
        h.update(bson.encode(d))
    out["electronics"] = h.hexdigest()
    return out


def manifest(cfg, batch):
    got = {}
    for system, entity, key, kind, rule, detail in rows(
            cfg, f"SELECT system, entity, record_key, kind, rule, detail FROM change_manifest "
                 f"WHERE batch = {batch}"):
        got.setdefault((entity, kind), {})[key] = (rule, detail)
    return got


def snapshot(cfg):
    return {
        "sales": {r[0]: r[1:] for r in rows(cfg, f"SELECT {SALES_COLS}, updated_at FROM sales_data")},
        "customers": {r[0]: r[1:] for r in rows(cfg, f"SELECT {CUSTOMER_COLS} FROM customers")},
        "inventory": {f"{r[0]}:{r[1]}": r[2] for r in rows(cfg, f"SELECT {INVENTORY_COLS} FROM inventory")},
        "docs": docs(cfg),
    }


def changed(before: dict, after: dict) -> set:
    return {str(k) for k in before.keys() & after.keys() if before[k] != after[k]}


# ------------------------------------------------------------------------------ generate

@pytest.mark.parametrize("scale", [0.001, 0.01])
def test_generate_counts_follow_the_scale(cfg, scale):
    counts = generator.generate(cfg, scale, seed=5)
    sales, customers, products = round(1e6 * scale), round(1e5 * scale), round(1e4 * scale)
    assert counts == {"mysql sales.customers": customers, "mysql sales.sales_data": sales,
                      "mysql sales.inventory": 3 * products,
                      "mongodb catalog.electronics": products}
    assert rows(cfg, "SELECT COUNT(*), MIN(id), MAX(id) FROM sales_data")[0] == (sales, 1, sales)
    assert len(docs(cfg)) == products


def test_generate_same_seed_same_data_other_seed_other_data(cfg):
    generator.generate(cfg, 0.01, seed=11)
    first = checksums(cfg)
    generator.generate(cfg, 0.01, seed=11)
    assert checksums(cfg) == first
    generator.generate(cfg, 0.01, seed=12)
    other = checksums(cfg)
    assert all(other[t] != first[t] for t in first)


def test_generate_shapes_are_realistic_and_consistent(cfg):
    generator.generate(cfg, 0.01, seed=21)
    catalog = {d["product_id"]: d for d in docs(cfg).values()}
    sales = rows(cfg, f"SELECT {SALES_COLS} FROM sales_data ORDER BY id")
    customers = {r[0]: r for r in rows(cfg, f"SELECT {CUSTOMER_COLS} FROM customers")}

    assert sorted(catalog) == list(range(1, 101))
    assert {d["category"] for d in catalog.values()} <= dim_names("DimCategory.csv")
    assert {c[3] for c in customers.values()} <= dim_names("DimCountry.csv")
    for d in catalog.values():
        assert ("screen size" in d) == (d["type"] in SCREEN_TYPES), d
        assert isinstance(d["price"], float) and isinstance(d["attributes"], dict)
    assert len({d["type"] for d in catalog.values()}) >= 10       # heterogeneous documents

    counts = Counter(r[1] for r in sales)
    by_month = Counter(r[5].month for r in sales)
    for sid, pid, cid, price, qty, ts in sales:
        assert 1 <= pid <= 100 and 1 <= cid <= 1000 and 1 <= qty <= 5
        assert dt.datetime(2019, 1, 1) <= ts < dt.datetime(2022, 1, 1)
        list_price = Decimal(str(catalog[pid]["price"]))
        assert list_price * Decimal("0.89") <= price <= list_price   # list price less <= 10 %
        assert customers[cid][4] <= ts                                # signed up before buying
    assert [r[5] for r in sales] == sorted(r[5] for r in sales)     # ids in time order
    top_decile = sum(n for _, n in counts.most_common(10))
    assert top_decile > 0.35 * len(sales)                           # skewed popularity
    assert (by_month[11] + by_month[12]) / len(sales) > 0.22        # Nov/Dec peak (2/12 flat)
    years = Counter(r[5].year for r in sales)
    assert years[2019] < years[2020] < years[2021]                  # growth


# ------------------------------------------------------------------------------ changes

@pytest.fixture(scope="module")
def batch_one(cfg):
    """Scale 0.01 (10,000 lines, 100 products), seed 3; the sources before and after batch 1."""
    generator.generate(cfg, 0.01, seed=3)
    before = snapshot(cfg)
    counts = changes.apply_batch(cfg, 1, bad_fraction=0.2)
    return before, snapshot(cfg), counts, manifest(cfg, 1)


def test_change_batch_sales_changes_are_the_manifests(cfg, batch_one):
    before, after, counts, m = batch_one
    b, a = before["sales"], after["sales"]
    inserted = {str(k) for k in a.keys() - b.keys()}
    assert inserted == set(m[("sales_data", "insert")]) | set(m[("sales_data", "bad")])
    assert {str(k) for k in b.keys() - a.keys()} == set(m[("sales_data", "delete")])
    assert changed(b, a) == set(m[("sales_data", "update")])
    assert len(m[("sales_data", "insert")]) + len(m[("sales_data", "bad")]) == 50   # 0.5 %
    assert len(m[("sales_data", "update")]) == 30 and len(m[("sales_data", "delete")]) == 20
    for key in m[("sales_data", "update")]:
        old, new = b[int(key)], a[int(key)]
        assert (old[2], old[3]) != (new[2], new[3]) and new[5] > old[5]   # value and updated_at
    last_generated = max(v[4] for v in b.values())
    for key in m[("sales_data", "insert")]:
        assert last_generated < a[int(key)][4] < dt.datetime(2022, 1, 2)
    assert counts == {f"{e} {k}": len(v) for (e, k), v in sorted(m.items())}


RULES = {
    "product_id_not_null": lambda r: r[0] is not None,
    "customer_id_not_null": lambda r: r[1] is not None,
    "quantity_positive": lambda r: r[3] > 0,
    "price_positive": lambda r: r[2] > 0,
    "timestamp_plausible": lambda r: dt.datetime(2000, 1, 1) <= r[4] < dt.datetime(2100, 1, 1),
}


def test_change_batch_bad_sales_break_exactly_their_rule(batch_one):
    _, after, _, m = batch_one
    bad = m[("sales_data", "bad")]
    assert len(bad) == round(0.2 * 50)                               # --bad-fraction 0.2
    assert Counter(rule for rule, _ in bad.values()) == {r: 2 for r in RULES}
    for key, (rule, _) in bad.items():
        row = after["sales"][int(key)]
        assert {name for name, ok in RULES.items() if not ok(row)} == {rule}
    for key in m[("sales_data", "insert")]:
        assert all(ok(after["sales"][int(key)]) for ok in RULES.values())


def test_change_batch_customers_and_inventory(batch_one):
    before, after, _, m = batch_one
    b, a = before["customers"], after["customers"]
    assert changed(b, a) == set(m[("customers", "update")])
    assert {str(k) for k in a.keys() - b.keys()} == set(m[("customers", "insert")])
    assert {a[int(k)][2] for k in m[("customers", "update")]} <= dim_names("DimCountry.csv")
    bi, ai = before["inventory"], after["inventory"]
    assert changed(bi, ai) == set(m[("inventory", "update")]) != set()
    assert ai.keys() - bi.keys() == set(m[("inventory", "insert")])
    assert all(q >= 0 for q in ai.values())


def test_change_batch_catalog_changes_and_new_field(batch_one):
    before, after, _, m = batch_one
    b, a = before["docs"], after["docs"]
    assert changed(b, a) == set(m[("electronics", "update")])
    assert {d for (rule, d) in m[("electronics", "update")].values()} <= {"price", "category"}
    for key, (_, what) in m[("electronics", "update")].items():
        assert a[key][what] != b[key][what]
        assert a[key]["updated_at"] == dt.datetime(2022, 1, 1) > b[key]["updated_at"]
    new = a.keys() - b.keys()
    assert new == set(m[("electronics", "insert")]) | set(m.get(("electronics", "bad"), {}))
    assert not any("energy_label" in d for d in b.values())
    assert all("energy_label" in a[k] for k in m[("electronics", "insert")])
    assert {a[k]["category"] for k in a} <= dim_names("DimCategory.csv")


def test_change_batch_applied_twice_or_out_of_order_is_refused(cfg, batch_one):
    with pytest.raises(changes.BatchRefused, match="batch 1 was already applied"):
        changes.apply_batch(cfg, 1)
    with pytest.raises(changes.BatchRefused, match="out of order.*next one is 2"):
        changes.apply_batch(cfg, 3)
    assert len(manifest(cfg, 3)) == 0


def test_change_batch_two_bad_documents(cfg, batch_one):
    before = docs(cfg)
    changes.apply_batch(cfg, 2, bad_fraction=0.5)
    after, m = docs(cfg), manifest(cfg, 2)
    bad = m[("electronics", "bad")]
    assert sorted(rule for rule, _ in bad.values()) == ["duplicate_document", "price_is_number"]
    for key, (rule, detail) in bad.items():
        doc = after[key]
        assert key not in before and detail == f"product_id:{doc['product_id']}"
        if rule == "price_is_number":
            assert isinstance(doc["price"], str) and not re.fullmatch(r"[\d.]+", doc["price"])
        else:
            originals = [d for d in before.values() if d["product_id"] == doc["product_id"]]
            assert len(originals) == 1 and originals[0]["_id"] != doc["_id"]
    assert all("warranty_years" in after[k] and "energy_label" in after[k]
               for k in m[("electronics", "insert")])
    assert rows(cfg, "SELECT batch FROM applied_batches ORDER BY batch") == [(1,), (2,)]


def test_change_batch_is_deterministic_and_refused_on_other_data(cfg):
    results = []
    for _ in range(2):
        generator.generate(cfg, 0.001, seed=8)
        changes.apply_batch(cfg, 1, bad_fraction=0.25)
        results.append((checksums(cfg), manifest(cfg, 1)))
    assert results[0] == results[1]
    with pytest.raises(changes.BatchRefused, match="not the seed"):
        changes.apply_batch(cfg, 2, seed=9)
    capstone.load(cfg)     # the sources now hold the course data, not the generated data
    with pytest.raises(changes.BatchRefused, match=r"no generated data to change"):
        changes.apply_batch(cfg, 2)


# ------------------------------------------------------------------------------ web logs

# Referrer and agent optional (the common log format), so a broken line cannot pass as one.
COMBINED = re.compile(r'^(\S+) \S+ \S+ \[(\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2}) \+0000\] '
                      r'"[A-Z]+ \S+ HTTP/1\.1" \d{3} (\d+|-)(?: "[^"]*" "[^"]*")?$')


def test_generate_logs_deterministic_with_dropped_address_and_broken_lines(tmp_path):
    a = weblogs.generate_logs(tmp_path / "a", "2022-03-04", 5000, seed=2)
    b = weblogs.generate_logs(tmp_path / "b", "2022-03-04", 5000, seed=2)
    c = weblogs.generate_logs(tmp_path / "c", "2022-03-04", 5000, seed=3)
    assert a.name == "access_2022-03-04.log"
    assert a.read_bytes() == b.read_bytes() != c.read_bytes()
    lines = a.read_text().splitlines()
    assert len(lines) == 5000
    parsed = [COMBINED.match(line) for line in lines]
    assert sum(p is None for p in parsed) == 5                        # one in a thousand
    ips = Counter(p.group(1) for p in parsed if p)
    assert ips["198.46.149.143"] == 50
    stamps = [dt.datetime.strptime(p.group(2), "%d/%b/%Y:%H:%M:%S") for p in parsed if p]
    assert {s.date() for s in stamps} == {dt.date(2022, 3, 4)} and stamps == sorted(stamps)


def test_generate_logs_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        weblogs.generate_logs(tmp_path, "04/03/2022", 10, seed=1)
    with pytest.raises(ValueError, match="lines"):
        weblogs.generate_logs(tmp_path, "2022-03-04", 0, seed=1)


# ------------------------------------------------------------------------------ commands

def commands():
    p = argparse.ArgumentParser(prog="ecomlake")
    add_commands(p.add_subparsers(dest="command", required=True))
    return p


@pytest.mark.parametrize("argv", [
    ["generate", "--scale", "0"], ["generate", "--scale", "-1"], ["generate", "--scale", "x"],
    ["generate", "--scale", "1", "--seed", "-3"], ["changes", "--batch", "0"],
    ["changes", "--batch", "1", "--bad-fraction", "2"],
    ["generate-logs", "--date", "2022-02-30", "--out", "/tmp"],
    ["generate-logs", "--date", "2022-02-03", "--out", "/tmp", "--lines", "0"]])
def test_commands_reject_bad_arguments(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        commands().parse_args(argv)
    assert exc.value.code == 2
    assert "must be" in capsys.readouterr().err


def test_commands_print_what_they_wrote(cfg, tmp_path, capsys):
    args = commands().parse_args(["generate", "--scale", "0.001", "--seed", "4"])
    assert args.func(args, cfg) == 0
    out = capsys.readouterr().out
    assert "1000 rows       mysql sales.sales_data" in out and "10 documents" in out
    args = commands().parse_args(["changes", "--batch", "1"])
    assert args.func(args, cfg) == 0
    assert "20 insert   mysql sales.sales_data" in capsys.readouterr().out
    args = commands().parse_args(["generate-logs", "--date", "2022-01-01", "--lines", "30",
                                  "--out", str(tmp_path), "--seed", "1"])
    assert args.func(args, cfg) == 0
    assert f"30 lines  {tmp_path / 'access_2022-01-01.log'}" in capsys.readouterr().out
