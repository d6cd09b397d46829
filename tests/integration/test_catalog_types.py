"""No catalog document can fail the read: bronze keeps every document as it is (fields as text
with their BSON types), silver types the known fields and quarantines a document whose field
has the wrong type under the field's rule. Against the real FerretDB, in a database of this
module's own (`<mongo.database>_types`), so it never touches the catalog other tests load.

Expected values are computed here from the documents inserted with pymongo, never read back
from an output."""
import datetime as dt
import json
from decimal import Decimal

import bson
import pytest
from chispa import assert_df_equality
from pyspark.sql import types as T

from ecomlake import pipeline
from ecomlake.config import load_config
from ecomlake.io import delta, mongo
from ecomlake.ops.sources import capstone, changes, generator

RUN_DATE = dt.date(2026, 12, 2)
WHEN = dt.datetime(2022, 3, 4, 5, 6, 7, 123000)
LONG = "x" * 60_000 + "ü✓日本🚀" * 8_000          # > 100 kB of UTF-8, 4-byte characters included


def oid(n: int) -> bson.ObjectId:
    return bson.ObjectId(f"{n:024x}")


def deep(depth: int):
    """A document nested `depth` levels, with arrays of documents (FerretDB 1.x refuses
    arrays directly inside arrays)."""
    node = {"leaf": ["a", 1, 2.5, None, True, {"k": "ü"}]}
    for i in range(depth):
        node = {f"level{i}": node, "list": [i, {"x": [i, {"y": i}]}]}
    return node


def product(n: int, **fields) -> dict:
    doc = {"_id": oid(n), "product_id": n, "type": "laptop", "model": f"m{n}",
           "screen size": 15.6, "category": "Electronics", "brand": "Acme", "price": 999.99,
           "attributes": {"ram_gb": 16, "ports": ["usb-c", "hdmi"]}, "updated_at": WHEN}
    doc.update(fields)
    return {k: v for k, v in doc.items() if v is not ...}     # `...`: leave the field out


# Documents silver must keep, typed. The course's documents have only type, model and screen size.
GOOD = [
    product(1),
    {"_id": oid(2), "type": "smart phone", "model": "platina", "screen size": 6},   # an int
    product(3, type="  télévision 📺 ", model="Ünïcødé ✓ 日本語", brand="Müller & Söhne",
            attributes={"名前": "テレビ", "emoji": "🚀", "nested": {"ß": ["ä", "ö"]}}),
    product(4, model=LONG, attributes=deep(40), warranty_note=LONG),
    product(5, **{"screen size": ...}, energy_label="A", tags=["new", {"promo": 1}],
            dims={"w": 1.5, "h": [2, 3]}),
    product(6, product_id=6.0, price=100),                         # an integral double; an int price
    product(7, product_id=bson.Int64(7)),                          # a long
    product(8, **{"screen size": None}, category=None, brand=None, attributes=None),  # nulls
    product(9, model="[not an array]", brand="true", type="{not json"),  # text that looks like JSON
    {"_id": "string-id-10", "product_id": 10, "type": "tv", "model": "t10"},          # a string _id
] + [product(n) for n in range(1000, 1500)]    # bad documents are rare: under max_bad_fraction

# Documents each breaking one type rule: (document, the rule it must break).
BAD = [
    (product(101, **{"screen size": "fifteen"}), "screen_size_is_number"),
    (product(102, **{"screen size": "15.6"}), "screen_size_is_number"),     # a number as text
    (product(103, **{"screen size": [15.6]}), "screen_size_is_number"),
    (product(104, type=["laptop", "tablet"]), "type_is_text"),
    (product(105, type=42), "type_is_text"),
    (product(106, model={"name": "m106", "year": 2022}), "model_is_text"),
    (product(107, model=True), "model_is_text"),
    (product(108, product_id="108"), "product_id_is_integer"),
    (product(109, product_id=109.5), "product_id_is_integer"),
    (product(110, product_id=bson.Int64(2 ** 40)), "product_id_is_integer"),
    (product(111, product_id=[111]), "product_id_is_integer"),
    (product(112, category=["Electronics"]), "category_is_text"),
    (product(113, category=7), "category_is_text"),
    (product(114, brand={"name": "Acme", "country": "DE"}), "brand_is_text"),
    (product(115, brand=False), "brand_is_text"),
    (product(116, price="twelve"), "price_is_number"),
    (product(117, price="12.99"), "price_is_number"),
    (product(118, price={"amount": 12.99}), "price_is_number"),
    (product(119, attributes="n/a"), "attributes_is_document"),
    (product(120, attributes=[1, 2]), "attributes_is_document"),
    (product(121, updated_at="2022-03-04T05:06:07Z"), "updated_at_is_timestamp"),
    (product(122, updated_at=1646370367000), "updated_at_is_timestamp"),
    ({**product(123), "_id": 123}, "id_is_object_id_or_string"),
    ({**product(124), "_id": {"a": 1}}, "id_is_object_id_or_string"),
]
KNOWN = {"_id", "product_id", "type", "model", "screen size", "category", "brand", "price",
         "attributes", "updated_at"}


def key_text(value) -> str:
    """_id as bronze's text: an ObjectId's hex, a string itself, anything else as JSON."""
    if isinstance(value, bson.ObjectId):
        return str(value)
    return value if isinstance(value, str) else json.dumps(value)


def as_json(text):
    return json.loads(text)


@pytest.fixture(scope="module")
def catalog_lake(spark, tmp_path_factory):
    """GOOD and BAD documents in a database of this module's own, through bronze and silver."""
    base = load_config("local").mongo.database
    cfg = load_config("local", overrides={
        "lake": {"root": str(tmp_path_factory.mktemp("catalog_types") / "lake")},
        "mongo": {"database": f"{base}_types"}})
    with mongo.client(cfg) as c:
        coll = c[cfg.mongo.database]["electronics"]
        coll.drop()
        coll.insert_many(GOOD + [d for d, _ in BAD], ordered=True)
    run = pipeline.Run(run_date=RUN_DATE, ingested_at=dt.datetime(2026, 12, 2),
                       sources=("mongo",))
    summary = pipeline.run_stages(spark, cfg, run, ["bronze", "silver"])   # must not raise
    yield cfg, summary
    with mongo.client(cfg) as c:
        c.drop_database(cfg.mongo.database)


def test_ingest_mongo_keeps_every_document_as_it_is(catalog_lake, spark):
    cfg, summary = catalog_lake
    bronze = {r["_id"]: r for r in delta.read(spark, cfg, "bronze.electronics").collect()}
    docs = GOOD + [d for d, _ in BAD]
    assert summary["bronze.electronics"] == len(docs)
    assert set(bronze) == {key_text(d["_id"]) for d in docs}
    for doc in docs:
        row = bronze[key_text(doc["_id"])]
        # the BSON type of every field the document has, unknown fields included
        assert set(row["_bson_types"]) == set(doc), doc["_id"]
        assert row["_bson_types"]["_id"] == {bson.ObjectId: "objectId", str: "string",
                                             int: "int", dict: "object"}[type(doc["_id"])]
        extra = {k: v for k, v in doc.items() if k not in KNOWN}
        assert set(row["_extra"]) == set(extra)
        for k, v in extra.items():
            got = row["_extra"][k]
            assert (got == v) if isinstance(v, str) else (as_json(got) == v), k
    # strings of every kind kept intact; nested documents and arrays as JSON, whole
    assert bronze[key_text(oid(3))]["model"] == "Ünïcødé ✓ 日本語"
    assert bronze[key_text(oid(4))]["model"] == LONG
    assert len(LONG.encode()) > 100_000
    assert as_json(bronze[key_text(oid(4))]["attributes"]) == deep(40)
    assert as_json(bronze[key_text(oid(104))]["type"]) == ["laptop", "tablet"]
    assert as_json(bronze[key_text(oid(106))]["model"]) == {"name": "m106", "year": 2022}
    assert bronze[key_text(oid(102))]["screen_size"] == "15.6"
    assert bronze[key_text(oid(102))]["_bson_types"]["screen size"] == "string"
    assert bronze[key_text(oid(1))]["_bson_types"]["screen size"] == "double"


def expected_silver(doc: dict) -> tuple:
    def text(k):
        v = doc.get(k)
        return v if isinstance(v, str) else None
    price = doc.get("price")
    raw_price = None if price is None else (str(price) if not isinstance(price, str) else price)
    return (key_text(doc["_id"]),
            None if doc.get("product_id") is None else int(doc["product_id"]),
            None if text("type") is None else text("type").strip(),
            None if text("model") is None else text("model").strip(),
            None if doc.get("screen size") is None else float(doc["screen size"]),
            text("category"), text("brand"), raw_price,
            None if price is None else Decimal(str(price)).quantize(Decimal("0.01")),
            doc.get("updated_at"))


SILVER_SCHEMA = T.StructType([
    T.StructField("_id", T.StringType()), T.StructField("product_id", T.IntegerType()),
    T.StructField("type", T.StringType()), T.StructField("model", T.StringType()),
    T.StructField("screen_size", T.DoubleType()), T.StructField("category", T.StringType()),
    T.StructField("brand", T.StringType()), T.StructField("price_raw", T.StringType()),
    T.StructField("price", T.DecimalType(12, 2)), T.StructField("updated_at", T.TimestampType())])


def test_typed_electronics_keeps_good_documents_typed_and_intact(catalog_lake, spark):
    cfg, _ = catalog_lake
    silver = delta.read(spark, cfg, "silver.electronics")
    assert silver.columns == ["_id", "product_id", "type", "model", "screen_size", "category",
                              "brand", "price_raw", "price", "attributes", "_extra",
                              "updated_at", "_batch_id"]      # the columns gold reads, as before
    expected = spark.createDataFrame([expected_silver(d) for d in GOOD], SILVER_SCHEMA)
    assert_df_equality(silver.select(SILVER_SCHEMA.fieldNames()), expected,
                       ignore_row_order=True, ignore_nullable=True)
    rows = {r["_id"]: r for r in silver.collect()}
    for doc in GOOD:
        row = rows[key_text(doc["_id"])]
        attrs = doc.get("attributes")
        assert (row["attributes"] is None) if attrs is None else as_json(row["attributes"]) == attrs
        extra = {k: v for k, v in doc.items() if k not in KNOWN}
        assert set(row["_extra"]) == set(extra)
        for k, v in extra.items():
            got = row["_extra"][k]
            assert (got == v) if isinstance(v, str) else (as_json(got) == v), k
    assert rows[key_text(oid(4))]["model"] == LONG and rows[key_text(oid(4))]["_extra"][
        "warranty_note"] == LONG


def test_typed_electronics_quarantines_each_type_mismatch_with_its_rule(catalog_lake, spark):
    cfg, _ = catalog_lake
    quarantine = {r["_id"]: r for r in
                  delta.read(spark, cfg, "silver.electronics_quarantine").collect()}
    silver_ids = {r[0] for r in delta.read(spark, cfg, "silver.electronics").select("_id").collect()}
    assert set(quarantine) == {key_text(d["_id"]) for d, _ in BAD}
    for doc, rule in BAD:
        row = quarantine[key_text(doc["_id"])]
        assert rule in row["_failed_rules"], (doc["_id"], rule, row["_failed_rules"])
        assert key_text(doc["_id"]) not in silver_ids
    # the offending value stays visible in quarantine, as the source had it
    assert quarantine[key_text(oid(101))]["_source_text"]["screen_size"] == "fifteen"
    assert as_json(quarantine[key_text(oid(104))]["_source_text"]["type"]) == ["laptop", "tablet"]
    assert quarantine[key_text(oid(108))]["_bson_types"]["product_id"] == "string"
    # no good document breaks a type rule (NULL and missing fields are not mismatches)
    assert not set(quarantine) & {key_text(d["_id"]) for d in GOOD}


def bad_catalog_manifest(cfg) -> dict:
    from ecomlake.io import mysql
    conn = mysql.connect(cfg)
    try:
        cur = conn.cursor()
        cur.execute("SELECT record_key, rule FROM change_manifest "
                    "WHERE kind = 'bad' AND entity = 'electronics'")
        return dict(cur.fetchall())
    finally:
        conn.close()


def test_change_batches_make_every_catalog_kind_and_each_is_quarantined(spark, tmp_path):
    """Scale 0.1 (1,000 products, 9 catalog writes a batch): at --bad-fraction 0.5, five bad
    documents a batch, so three batches make every kind of CATALOG_RULES and stay under the
    table's max_bad_fraction."""
    src = load_config("local")
    cfg = load_config("local", overrides={"lake": {"root": str(tmp_path / "lake")}})
    try:
        generator.generate(src, 0.1, seed=17)
        for k in (1, 2, 3):
            changes.apply_batch(src, k, bad_fraction=0.5)
        expected = bad_catalog_manifest(src)
        # every type rule of BAD, the word price and the duplicate
        assert set(expected.values()) == {rule for _, rule in BAD} | {"duplicate_document"}
        with mongo.client(src) as c:
            docs = {key_text(d["_id"]): d for d in c[src.mongo.database]["electronics"].find(
                {}, {"_id": 1, "product_id": 1})}
        run = pipeline.Run(run_date=RUN_DATE, ingested_at=dt.datetime(2026, 12, 2),
                           sources=("mongo",))
        pipeline.run_stages(spark, cfg, run, ["bronze", "silver"])     # must not raise
    finally:
        capstone.load(src)    # leave the course data in the sources for the other tests
    quarantine = {r["_id"]: r["_failed_rules"] for r in
                  delta.read(spark, cfg, "silver.electronics_quarantine").collect()}
    assert set(quarantine) == set(expected)
    for key, rule in expected.items():
        assert rule in quarantine[key], (key, rule, quarantine[key])
    silver = delta.read(spark, cfg, "silver.electronics").select("_id").collect()
    assert {r[0] for r in silver} == set(docs) - set(expected)


def test_typed_electronics_types_a_field_only_from_the_bson_types_that_fit_it(spark):
    """The pure transform on bronze-shaped rows (no servers): the same text typed or not by
    the BSON type beside it, and the type rules named in conf/tables.yaml."""
    from ecomlake.config import load_tables
    from ecomlake.quality import with_failed_rules
    from ecomlake.silver import typed_electronics

    def row(_id, types, **text):
        cols = ["product_id", "type", "model", "screen_size", "category", "brand", "price",
                "attributes", "updated_at"]
        return (_id, *[text.get(c) for c in cols], {}, {"_id": "objectId", **types}, "b1")
    schema = ("_id string, product_id string, type string, model string, screen_size string, "
              "category string, brand string, price string, attributes string, "
              "updated_at string, _extra map<string,string>, _bson_types map<string,string>, "
              "_batch_id string")
    bronze = spark.createDataFrame([
        row("a", {"product_id": "int", "screen size": "double", "type": "string",
                  "model": "string", "updated_at": "date"},
            product_id="15", screen_size="15.0", type="tv", model="m",
            updated_at="2022-03-04T05:06:07.123Z"),
        row("b", {"product_id": "string", "screen size": "string", "type": "array",
                  "model": "string", "updated_at": "string"},
            product_id="15", screen_size="15.0", type='["tv"]', model="m",
            updated_at="2022-03-04T05:06:07.123Z"),
        row("c", {"product_id": "double", "screen size": "int", "type": "string",
                  "model": "object"},
            product_id="16.5", screen_size="6", type="tv", model='{"n": 1}'),
    ], schema)
    rules = load_tables()["electronics"].rules
    out = bronze.transform(typed_electronics).transform(with_failed_rules(rules))
    expected = spark.createDataFrame([
        ("a", 15, "tv", "m", 15.0, dt.datetime(2022, 3, 4, 5, 6, 7, 123000), []),
        ("b", None, None, "m", None, None,
         ["product_id_is_integer", "type_is_text", "type_not_null", "screen_size_is_number",
          "updated_at_is_timestamp"]),
        ("c", None, "tv", None, 6.0, None,
         ["product_id_is_integer", "model_is_text", "model_not_null"]),
    ], "_id string, product_id int, type string, model string, screen_size double, "
       "updated_at timestamp, _failed_rules array<string>")
    assert_df_equality(out.select(expected.columns), expected, ignore_row_order=True,
                       ignore_nullable=True)
