"""Pure DataFrame transforms, on tiny inline DataFrames with explicit schemas (chispa)."""
import datetime as dt
from decimal import Decimal

from chispa import assert_df_equality
from pyspark.sql import types as T

from ecomlake.bronze import with_audit_columns, with_delta_safe_names
from ecomlake.quality import split_valid, with_failed_rules
from ecomlake.silver import latest_per_key, typed_sales

SALES = T.StructType([
    T.StructField("id", T.LongType()),
    T.StructField("product_id", T.IntegerType()),
    T.StructField("customer_id", T.IntegerType()),
    T.StructField("price", T.DecimalType(12, 2)),
    T.StructField("quantity", T.IntegerType()),
    T.StructField("timestamp", T.TimestampType()),
    T.StructField("updated_at", T.TimestampType()),
    T.StructField("_batch_id", T.StringType()),
])
TS = dt.datetime(2020, 9, 5, 16, 20, 3)
UPD = dt.datetime(2026, 1, 1)


def sale(id_, product, price, qty, ts=TS, upd=UPD, customer=7):
    return (id_, product, customer, None if price is None else Decimal(price), qty, ts, upd, "b1")


def test_with_failed_rules_names_every_broken_rule(spark):
    df = spark.createDataFrame([sale(1, 10, "5.00", 1), sale(2, None, "5.00", -1),
                                sale(3, 11, None, 2)], SALES)
    rules = {"product_id_not_null": "product_id IS NOT NULL", "quantity_positive": "quantity > 0",
             "price_positive": "price > 0"}
    clean, bad = split_valid(df.transform(with_failed_rules(rules)))
    assert [r.id for r in clean.collect()] == [1]
    got = {r.id: r._failed_rules for r in bad.collect()}
    # a NULL predicate (price > NULL) counts as broken
    assert got == {2: ["product_id_not_null", "quantity_positive"], 3: ["price_positive"]}
    assert clean.columns == df.columns


def test_split_valid_loses_no_row(spark):
    df = spark.createDataFrame([sale(i, i % 3 or None, "1.00", i % 4 - 1) for i in range(40)], SALES)
    clean, bad = split_valid(df.transform(with_failed_rules(
        {"p": "product_id IS NOT NULL", "q": "quantity > 0"})))
    expected_clean = sum(1 for i in range(40) if i % 3 and i % 4 - 1 > 0)
    assert clean.count() == expected_clean
    assert clean.count() + bad.count() == 40


def test_latest_per_key_keeps_the_newest_version(spark):
    df = spark.createDataFrame([
        sale(1, 10, "5.00", 1, upd=dt.datetime(2026, 1, 1)),
        sale(1, 10, "5.00", 3, upd=dt.datetime(2026, 1, 2)),   # the correction wins
        sale(2, 11, "7.00", 2),
    ], SALES)
    expected = spark.createDataFrame([
        sale(1, 10, "5.00", 3, upd=dt.datetime(2026, 1, 2)), sale(2, 11, "7.00", 2)], SALES)
    assert_df_equality(df.transform(latest_per_key(["id"], ["updated_at"])), expected,
                       ignore_row_order=True)


def test_latest_per_key_is_deterministic_on_ties(spark):
    rows = [sale(1, 10, "5.00", q) for q in (1, 2, 3)]
    a = spark.createDataFrame(rows, SALES).transform(latest_per_key(["id"], ["updated_at"]))
    b = spark.createDataFrame(rows[::-1], SALES).repartition(3).transform(
        latest_per_key(["id"], ["updated_at"]))
    assert a.collect() == b.collect()


def test_typed_sales_casts_jdbc_types(spark):
    raw = spark.createDataFrame(
        [(Decimal(1), 6739, 76305, Decimal("230.00"), 1, TS, UPD, "b1", "x")],
        "id decimal(20,0), product_id int, customer_id int, price decimal(12,2), quantity int, "
        "timestamp timestamp, updated_at timestamp, _batch_id string, _source string")
    assert typed_sales(raw).schema == SALES


def test_with_delta_safe_names_maps_spaces_explicitly(spark):
    df = spark.createDataFrame([("a", 6.5)], "`type` string, `screen size` double")
    out = df.transform(with_delta_safe_names({"screen size": "screen_size"}))
    assert out.columns == ["type", "screen_size"]
    assert out.collect()[0].screen_size == 6.5


def test_with_audit_columns_marks_the_batch(spark):
    df = spark.createDataFrame([(1,)], "id int")
    out = df.transform(with_audit_columns("mysql:sales.t", "2026-11-25", dt.date(2026, 11, 25),
                                          dt.datetime(2026, 11, 25, 3, 0))).collect()[0]
    assert (out._batch_id, out._source, out._ingest_date) == (
        "2026-11-25", "mysql:sales.t", dt.date(2026, 11, 25))
    assert out._ingested_at == dt.datetime(2026, 11, 25, 3, 0)


def test_parse_access_log_matches_a_plain_python_parse(spark):
    from ecomlake.weblog import parse_access_log
    from tests.conftest import CAPSTONE

    lines = (CAPSTONE / "accesslog.txt").read_text().splitlines()[:200] + ["garbage line"]
    got = parse_access_log(spark.createDataFrame([(l,) for l in lines], "value string")).collect()
    assert [r._parsed for r in got] == [True] * 200 + [False]
    first = lines[0].split('"')
    assert got[0].client_ip == lines[0].split()[0]
    assert got[0].method + " " + got[0].path + " " + got[0].protocol == first[1]
    assert (got[0].status, got[0].bytes) == tuple(int(x) for x in first[2].split())
    assert got[0].requested_at == dt.datetime(2015, 5, 17, 10, 5, 3)   # +0000, session in UTC
    assert got[-1].client_ip is None and got[-1]._raw == "garbage line"


def test_parse_access_log_weblog_keeps_client_and_time_of_malformed_lines(spark):
    """ANSI mode is on in the session: an impossible time or a huge byte count is null, not an
    error; a cut request or agent costs those fields, not the line's client and time."""
    from ecomlake.weblog import parse_access_log
    from tests.conftest import CAPSTONE

    course_8899 = (CAPSTONE / "accesslog.txt").read_text().splitlines()[8898]
    t = "[20/May/2015:12:05:17 +0000]"
    lines = [course_8899,                                                 # unterminated agent
             f'1.2.3.4 - - {t} "GET /a b HTTP/1.1" 200 5 "-" "x"',        # spaces in the request
             f'1.2.3.4 - - {t} "GE',                                       # cut inside the request
             f'1.2.3.4 - - {t} "GET / HTTP/1.1" 200 99999999999999999999 "-" "x"',
             '1.2.3.4 - - [32/Foo/2015:99:99:99 +0000] "GET / HTTP/1.1" 200 5 "-" "x"',
             "", "#\x7f?? 0123abcd"]
    got = parse_access_log(spark.createDataFrame([(l,) for l in lines], "value string"))
    when = dt.datetime(2015, 5, 20, 12, 5, 17)
    expected = spark.createDataFrame([
        (course_8899, False, "46.118.127.106", when, "GET", 200, 235, None),
        (lines[1], False, "1.2.3.4", when, None, None, None, None),
        (lines[2], False, "1.2.3.4", when, None, None, None, None),
        (lines[3], True, "1.2.3.4", when, "GET", 200, None, "x"),
        (lines[4], True, "1.2.3.4", None, "GET", 200, 5, "x"),
        ("", False, None, None, None, None, None, None),
        (lines[6], False, None, None, None, None, None, None)],
        "_raw string, _parsed boolean, client_ip string, requested_at timestamp, method string, "
        "status int, bytes long, user_agent string")
    assert_df_equality(got.select(*expected.columns), expected, ignore_nullable=True)


def test_line_counts_weblog_partition_the_lines(spark):
    from ecomlake.weblog import line_counts

    df = spark.createDataFrame(
        [("1.1.1.1", TS), ("9.9.9.9", TS), ("1.1.1.1", None), (None, TS), (None, None)],
        "client_ip string, requested_at timestamp")
    assert line_counts(df, "9.9.9.9") == {"lines": 5, "kept": 1, "dropped_ip": 1, "unusable": 3}


def test_file_status_weblog_reads_new_bytes_only_and_reports_changed_prefixes():
    from ecomlake.weblog import FileState, file_status, needs_prefix_check

    new = FileState("f", 100, 1)
    same = FileState("f", 100, 1, recorded_to=100, recorded_sha="h", recorded_size=100,
                     recorded_modified=1)
    grown = FileState("f", 150, 2, 100, "h", 100, 1)
    shrunk = FileState("f", 50, 3, 100, "h", 100, 1)
    assert [needs_prefix_check(f) for f in (new, same, grown, shrunk)] == [False, False, True, True]
    assert file_status(new, None) == ("new", 0)
    assert file_status(same, None) == ("unchanged", 100)
    assert file_status(grown, "h") == ("grown", 100)
    assert file_status(grown, "other") == ("changed", 100)
    assert file_status(shrunk, "") == ("changed", 100)


def test_silver_checks_guard_keys_and_rules_in_delta(spark, tmp_path):
    import pytest
    from ecomlake.config import load_config, load_tables
    from ecomlake.io import delta
    from ecomlake.silver import silver_checks

    spec = load_tables()["electronics"]
    checks = silver_checks(spec)
    assert checks["key_id_not_null"] == "`_id` IS NOT NULL"
    assert checks["price_is_number"] == spec.rules["price_is_number"]
    assert "duplicate_document" not in checks       # reads a column silver does not keep
    cfg = load_config("local", overrides={"lake": {"root": str(tmp_path)}})
    schema = "_id string, screen_size double"
    delta.overwrite(spark.createDataFrame([("a", 6.1)], schema), cfg, "silver.t")
    guard = {"id_not_null": "`_id` IS NOT NULL", "screen_size_positive": "screen_size > 0"}
    assert delta.ensure_checks(spark, cfg, "silver.t", guard) == list(guard)
    assert delta.ensure_checks(spark, cfg, "silver.t", guard) == []       # idempotent
    bad = spark.createDataFrame([("b", -1.0)], schema)
    with pytest.raises(Exception, match="DELTA_VIOLATE_CONSTRAINT"):
        bad.write.format("delta").mode("append").save(delta.path(cfg, "silver.t"))
    assert delta.read(spark, cfg, "silver.t").count() == 1


def test_merge_creates_a_table_with_its_checks_in_the_first_commit(spark, lake_cfg):
    import pytest
    from delta.tables import DeltaTable
    from ecomlake.io import delta

    schema = "_id string, screen_size double"
    guard = {"Key_Not_Null": "`_id` IS NOT NULL", "screen_size_positive": "screen_size > 0"}
    bad = spark.createDataFrame([("a", 6.1), ("b", -1.0)], schema)
    with pytest.raises(Exception, match="DELTA_VIOLATE_CONSTRAINT"):
        delta.merge(spark, lake_cfg, "silver.t", bad, ["_id"], checks=guard)
    assert not delta.exists(spark, lake_cfg, "silver.t")     # a refused creation leaves nothing
    delta.merge(spark, lake_cfg, "silver.t", bad.filter("screen_size > 0"), ["_id"], checks=guard)
    table = DeltaTable.forPath(spark, delta.path(lake_cfg, "silver.t"))
    assert [r["version"] for r in table.history().collect()] == [0]       # one commit
    props = table.detail().collect()[0]["properties"]
    assert {k: v for k, v in props.items() if k.startswith("delta.constraints.")} == {
        "delta.constraints.key_not_null": "`_id` IS NOT NULL",
        "delta.constraints.screen_size_positive": "screen_size > 0"}
    assert delta.ensure_checks(spark, lake_cfg, "silver.t", guard) == []   # nothing left to add
    with pytest.raises(Exception, match="DELTA_VIOLATE_CONSTRAINT"):
        delta.merge(spark, lake_cfg, "silver.t", bad, ["_id"], checks=guard)
    assert delta.read(spark, lake_cfg, "silver.t").count() == 1


def test_holds_no_rows_only_for_a_table_without_data_files(spark, lake_cfg):
    from ecomlake.io import delta

    empty = spark.createDataFrame([], "k int, _batch_id string")
    delta.replace_batch(empty, lake_cfg, "silver.q", "b1", "_batch_id", "b1")
    assert delta.read(spark, lake_cfg, "silver.q").count() == 0
    assert delta.holds_no_rows(spark, lake_cfg, "silver.q")
    delta.replace_batch(spark.createDataFrame([(1, "b2")], empty.schema), lake_cfg, "silver.q",
                        "b2", "_batch_id", "b2")
    assert not delta.holds_no_rows(spark, lake_cfg, "silver.q")


def test_replace_batch_appends_then_replaces_only_its_own_batch(spark, lake_cfg):
    from ecomlake.io import delta

    schema = "k int, _batch_id string, _ingest_date date"
    d1, d2 = dt.date(2026, 1, 1), dt.date(2026, 1, 2)

    def batch(keys, batch_id, day):
        return spark.createDataFrame([(k, batch_id, day) for k in keys], schema)

    name = "bronze.t"
    delta.replace_batch(batch([1, 2], "b1", d1), lake_cfg, name, "b1", "_ingest_date", d1)
    delta.replace_batch(batch([3], "b2", d2), lake_cfg, name, "b2", "_ingest_date", d2)
    # no directory for the date: known absent without reading the table
    assert not delta.has_batch(spark, lake_cfg, name, "b3", ("_ingest_date", dt.date(2026, 1, 3)))
    assert delta.has_batch(spark, lake_cfg, name, "b2", ("_ingest_date", d2))
    # the directory is there, the batch is not: the table answers
    assert not delta.has_batch(spark, lake_cfg, name, "b9", ("_ingest_date", d2))
    # a rerun of b2 replaces b2 only (two appends and one replace: three commits, no duplicate)
    delta.replace_batch(batch([3, 4], "b2", d2), lake_cfg, name, "b2", "_ingest_date", d2)
    got = sorted((r.k, r._batch_id) for r in delta.read(spark, lake_cfg, name).collect())
    assert got == [(1, "b1"), (2, "b1"), (3, "b2"), (4, "b2")]
    assert delta.version(spark, lake_cfg, name) == 2
    # a rerun that now has no rows clears the batch; its directory stays, the answer is no
    delta.replace_batch(batch([], "b2", d2), lake_cfg, name, "b2", "_ingest_date", d2)
    assert not delta.has_batch(spark, lake_cfg, name, "b2", ("_ingest_date", d2))
    assert sorted(r.k for r in delta.read(spark, lake_cfg, name).collect()) == [1, 2]


def test_replace_batch_keeps_a_rerun_that_brings_exactly_the_same_rows(spark, lake_cfg):
    """Same rows (another order, another _ingested_at): no commit. A NULL moved to another
    column, or one row more, is a change: the batch is replaced."""
    from ecomlake.io import delta

    schema = ("k int, v string, w string, m map<string,string>, _ingested_at timestamp, "
              "_batch_id string, _ingest_date date")
    d1 = dt.date(2026, 1, 1)

    def batch(rows, at):
        return spark.createDataFrame([(*r, dt.datetime(2026, 1, at), "b1", d1) for r in rows],
                                     schema)

    name = "bronze.t"
    rows = [(1, None, "x", {"a": "1"}), (2, "y", "z", {})]
    assert delta.replace_batch(batch(rows, 1), lake_cfg, name, "b1", "_ingest_date", d1) is None
    assert delta.replace_batch(batch(rows[::-1], 2), lake_cfg, name, "b1", "_ingest_date",
                               d1) == 2
    assert delta.version(spark, lake_cfg, name) == 0
    moved_null = [(1, "x", None, {"a": "1"}), rows[1]]
    assert delta.replace_batch(batch(moved_null, 3), lake_cfg, name, "b1", "_ingest_date",
                               d1) is None
    assert delta.version(spark, lake_cfg, name) == 1
    assert delta.replace_batch(batch(moved_null + [(3, "", "", {})], 4), lake_cfg, name, "b1",
                               "_ingest_date", d1) is None
    assert sorted(r.k for r in delta.read(spark, lake_cfg, name).collect()) == [1, 2, 3]
    assert delta.version(spark, lake_cfg, name) == 2


def test_merge_upserts_and_deletes_in_one_commit_and_counts_what_it_did(spark, lake_cfg):
    from ecomlake.io import delta

    schema = "k int, v string, _batch_id string"
    name = "silver.t"
    start = spark.createDataFrame([(1, "a", "b0"), (2, "b", "b0"), (3, "c", "b0")], schema)
    delta.merge(spark, lake_cfg, name, start, ["k"])
    before = delta.version(spark, lake_cfg, name)
    # 1 unchanged (only its batch differs), 2 updated, 3 deleted, 4 inserted, 5 in the batch and
    # deleted: the deletion wins (the key set was read after the batch)
    batch = spark.createDataFrame([(1, "a", "b1"), (2, "B", "b1"), (4, "d", "b1"), (5, "e", "b1")],
                                  schema)
    gone = spark.createDataFrame([(3,), (5,)], "k int")
    counts = delta.merge(spark, lake_cfg, name, batch, ["k"], deleted_keys=gone)
    assert counts == {"inserted": 1, "updated": 1, "deleted": 1}
    assert delta.version(spark, lake_cfg, name) == before + 1
    got = sorted((r.k, r.v) for r in delta.read(spark, lake_cfg, name).collect())
    assert got == [(1, "a"), (2, "B"), (4, "d")]
    # the same MERGE again changes nothing, makes no commit, and says so
    assert delta.merge(spark, lake_cfg, name, batch, ["k"], deleted_keys=gone) == \
        {"inserted": 0, "updated": 0, "deleted": 0}
    assert delta.version(spark, lake_cfg, name) == before + 1


def test_merge_of_rows_it_would_not_change_makes_no_commit(spark, lake_cfg):
    """Tables have no deletion vectors (copy-on-write): a MERGE rewrites and commits every file
    holding a matched row, so delta.merge must drop equal and older rows before it."""
    from ecomlake.io import delta

    schema = "k int, v string, updated_at int, _batch_id string"
    name = "silver.t_idle"
    delta.merge(spark, lake_cfg, name, spark.createDataFrame(
        [(1, "a", 5, "b0"), (2, "b", 5, "b0")], schema), ["k"], newer="updated_at")
    detail = spark.sql(f"DESCRIBE DETAIL delta.`{delta.path(lake_cfg, name)}`").collect()[0]
    assert detail["properties"].get("delta.enableDeletionVectors") != "true"
    before = delta.version(spark, lake_cfg, name)
    # 1 equal (audit column aside), 2 older than silver's: neither changes, no commit
    idle = spark.createDataFrame([(1, "a", 5, "b1"), (2, "B", 4, "b1")], schema)
    assert delta.merge(spark, lake_cfg, name, idle, ["k"], newer="updated_at") == \
        {"inserted": 0, "updated": 0, "deleted": 0}
    assert delta.version(spark, lake_cfg, name) == before
    # a newer 2 beside the same idle 1: one update, one commit, 1 untouched
    busy = spark.createDataFrame([(1, "a", 5, "b2"), (2, "B", 6, "b2")], schema)
    assert delta.merge(spark, lake_cfg, name, busy, ["k"], newer="updated_at") == \
        {"inserted": 0, "updated": 1, "deleted": 0}
    assert delta.version(spark, lake_cfg, name) == before + 1
    got = sorted((r.k, r.v, r.updated_at, r._batch_id)
                 for r in delta.read(spark, lake_cfg, name).collect())
    assert got == [(1, "a", 5, "b0"), (2, "B", 6, "b2")]


def test_a_build_is_skipped_only_while_every_input_output_and_shape_is_as_recorded(spark,
                                                                                  lake_cfg):
    from ecomlake import builds
    from ecomlake.io import delta

    def table(name, rows):
        delta.overwrite(spark.createDataFrame([(k,) for k in rows], "k int"), lake_cfg, name)

    table("bronze.t", [1])
    reads, writes = ["bronze.t", "bronze.t_deletes"], ["silver.t"]
    # no record yet: build
    assert builds.up_to_date(spark, lake_cfg, "silver.t", reads, writes, batch="b1") is None
    table("silver.t", [1])
    builds.record(spark, lake_cfg, "silver.t", reads, writes, batch="b1")
    assert builds.up_to_date(spark, lake_cfg, "silver.t", reads, writes, batch="b1")
    # another batch, other rules, a full refresh: build
    assert builds.up_to_date(spark, lake_cfg, "silver.t", reads, writes, batch="b2") is None
    assert builds.up_to_date(spark, lake_cfg, "silver.t", reads, writes, batch="b1",
                             spec="other rules") is None
    assert builds.up_to_date(spark, lake_cfg, "silver.t", reads, writes, force=True,
                             batch="b1") is None
    # a commit to an input, or to the output by anyone: build
    table("bronze.t", [1, 2])
    assert builds.up_to_date(spark, lake_cfg, "silver.t", reads, writes, batch="b1") is None
    builds.record(spark, lake_cfg, "silver.t", reads, writes, batch="b1")
    table("silver.t", [3])
    assert builds.up_to_date(spark, lake_cfg, "silver.t", reads, writes, batch="b1") is None
    # a table that appears (the deletes table's first commit): build
    builds.record(spark, lake_cfg, "silver.t", reads, writes, batch="b1")
    table("bronze.t_deletes", [1])
    assert builds.up_to_date(spark, lake_cfg, "silver.t", reads, writes, batch="b1") is None
    # the version is the _delta_log's latest commit, as Delta itself counts it
    assert delta.latest_version(spark, lake_cfg, "silver.t") == \
        delta.version(spark, lake_cfg, "silver.t") == 1


def test_written_gives_the_last_commits_version_and_rows(spark, lake_cfg):
    from ecomlake.io import delta

    delta.overwrite(spark.range(7), lake_cfg, "gold.w")
    assert delta.written(spark, lake_cfg, "gold.w") == (0, 7)
    delta.overwrite(spark.range(3), lake_cfg, "gold.w")
    delta.append(spark.range(5).selectExpr("id", "id % 2 AS p"), lake_cfg, "gold.v", "p")
    assert delta.written(spark, lake_cfg, "gold.w") == (1, 3)
    assert delta.written(spark, lake_cfg, "gold.v") == (0, 5)


def test_changed_rows_finds_every_change_including_a_value_moving_past_a_null(spark, tmp_path):
    """publish.changed_rows: keys new, gone, changed, and a row whose value moved to the NULL's
    column (Spark's hashes skip NULLs: without hashing where they are, (NULL, 5) and (5, NULL)
    would look the same); unchanged rows are not in it. Expected values written out by hand."""
    from ecomlake.publish import GoldTable, changed_rows

    path = str(tmp_path / "t")
    schema = "k long, a int, b int"
    spark.createDataFrame([(1, None, 5), (2, 1, 1), (3, 7, 8), (4, 0, 0)], schema) \
        .write.format("delta").save(path)
    spark.createDataFrame([(1, 5, None), (2, 1, 1), (3, 7, 9), (5, 2, 2)], schema) \
        .write.format("delta").mode("overwrite").save(path)
    t = GoldTable("t", None, ["k"], 1, None, path)
    new = spark.read.format("delta").option("versionAsOf", 1).load(path)
    got = changed_rows(spark, t, 0, new)
    assert sorted(map(tuple, got.collect()), key=repr) == sorted(
        [(1, 5, None, "U"), (3, 7, 9, "U"), (5, 2, 2, "U"), (4, None, None, "D")], key=repr)
    assert changed_rows(spark, t, 7, new) is None   # a version that does not exist: go whole
