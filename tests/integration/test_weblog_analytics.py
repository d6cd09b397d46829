"""The web-log job and the analytics on the course's files, against answers computed straight
from the files with plain Python."""
import collections
import csv
import datetime as dt
import glob
import gzip
from decimal import Decimal

import pyarrow.parquet as pq
import pytest

from ecomlake import analytics, weblog
from ecomlake.config import load_config
from ecomlake.io import delta

from tests.conftest import CAPSTONE

DROP = "198.46.149.143"


@pytest.fixture
def lake(tmp_path):
    return load_config("local", overrides={
        "lake": {"root": str(tmp_path / "lake")},
        "weblog": {"archive": str(tmp_path / "archive")}})


def weblog_cfg(lake, log_input):
    return load_config("local", overrides={"lake": {"root": lake.lake_root},
                                           "weblog": {"input": str(log_input),
                                                      "archive": lake.weblog.archive}})


def run_weblog(spark, cfg, day: str) -> dict:
    return weblog.run(spark, cfg, day, dt.date.fromisoformat(day), dt.datetime(2026, 12, 2))


def expected_lines(*files) -> dict:
    """The answer from the files' bytes in plain Python: a line (split on newlines, as written)
    is usable when its first field and its [time] are there and the time is a real one."""
    out = {"lines": 0, "kept": 0, "dropped_ip": 0, "unusable": 0, "hits": collections.Counter(),
           "unusable_raw": []}
    for f in files:
        data = open(f, "rb").read()
        for raw in data.split(b"\n")[:-1] if data.endswith(b"\n") else data.split(b"\n"):
            line = raw.decode("utf-8", errors="replace")     # as Hadoop's Text decodes it
            out["lines"] += 1
            fields, when = line.split(" ", 3), None
            if len(fields) == 4 and fields[3].startswith("[") and "]" in fields[3]:
                try:
                    when = dt.datetime.strptime(fields[3][1:fields[3].index("]")],
                                                "%d/%b/%Y:%H:%M:%S %z")
                except ValueError:
                    pass
            if when is None:
                out["unusable"] += 1
                out["unusable_raw"].append(line)
            elif fields[0] == DROP:
                out["dropped_ip"] += 1
            else:
                out["kept"] += 1
                out["hits"][(when.astimezone(dt.timezone.utc).date(), fields[0])] += 1
    return out


def lake_state(spark, cfg) -> dict:
    """Every weblog table's rows, without the audit timestamp of the attempt that wrote them."""
    return {t: sorted(map(tuple, delta.read(spark, cfg, t).drop("_ingested_at", "modified")
                          .collect()), key=repr)
            for t in ("bronze.access_log", weblog.FILES_TABLE, "silver.access_log",
                      "gold.hits_per_ip_day")}


def gold_hits(spark, cfg) -> dict:
    return {(r.day, r.client_ip): r.hits
            for r in delta.read(spark, cfg, "gold.hits_per_ip_day").collect()}


def test_weblog_course_log_on_three_run_dates_counts_each_line_once(spark, lake):
    cfg = weblog_cfg(lake, CAPSTONE / "accesslog.txt")
    want = expected_lines(CAPSTONE / "accesslog.txt")
    assert (want["lines"], want["kept"], want["unusable"]) == (10_000, 9_918, 0)   # the course's

    counts = [run_weblog(spark, cfg, d) for d in ("2026-11-25", "2026-11-26", "2026-11-27")]
    assert [c["kept"] for c in counts] == [want["kept"], 0, 0]
    assert counts[0]["dropped_ip"] == want["dropped_ip"] > 0
    assert [c["files_unchanged"] for c in counts] == [0, 1, 1]
    assert gold_hits(spark, cfg) == want["hits"]
    assert sum(want["hits"].values()) == want["kept"]
    # the course's line 8,899 (unterminated user agent) is a hit with its client and time
    silver = delta.read(spark, cfg, "silver.access_log")
    assert silver.count() == want["kept"]
    assert silver.filter("user_agent IS NULL AND client_ip = '46.118.127.106'").count() == 1

    archived = []
    for part in glob.glob(f"{cfg.weblog.archive}/run_date=2026-11-25/*.gz"):
        archived += gzip.open(part, "rt").read().split()
    assert sorted(archived) == sorted(ip for (_, ip), n in want["hits"].items() for _ in range(n))


def test_weblog_malformed_lines_succeed_with_every_line_accounted_for(spark, lake, tmp_path):
    from ecomlake.ops.sources import weblogs

    folder = tmp_path / "logs"
    log_file = weblogs.generate_logs(folder, "2026-11-25", 300, seed=5, broken_share=0.1,
                                     kinds=weblogs.ALL_KINDS)
    data = log_file.read_bytes()
    assert b"\n\n" in data and b"\xe9" in data and max(map(len, data.split(b"\n"))) > 65_536
    with open(log_file, "ab") as f:                  # the time, and a huge byte count
        f.write(b'1.2.3.4 - - [32/Foo/2015:99:99:99 +0000] "GET / HTTP/1.1" 200 5 "-" "x"\n'
                b'1.2.3.4 - - [25/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 '
                b'99999999999999999999 "-" "x"\n')
    want = expected_lines(log_file)
    assert want["unusable"] >= 4 and want["kept"] + want["dropped_ip"] + want["unusable"] == 302

    cfg = weblog_cfg(lake, folder)
    counts = run_weblog(spark, cfg, "2026-11-25")        # returns: nothing in a line can fail it
    assert {k: counts[k] for k in ("lines", "kept", "dropped_ip", "unusable")} == {
        k: want[k] for k in ("lines", "kept", "dropped_ip", "unusable")}
    batch = delta.read(spark, cfg, "bronze.access_log")
    usable = "client_ip IS NOT NULL AND requested_at IS NOT NULL"
    assert batch.count() == want["lines"]
    assert sorted(r._raw for r in batch.filter(f"NOT ({usable})").collect()) == sorted(
        want["unusable_raw"])
    assert batch.filter(f"{usable} AND client_ip = '{DROP}'").count() == want["dropped_ip"]
    assert delta.read(spark, cfg, "silver.access_log").count() == want["kept"]
    assert gold_hits(spark, cfg) == want["hits"]


def test_weblog_grown_file_is_read_from_where_it_was_left(spark, lake, tmp_path):
    from ecomlake.ops.sources import weblogs

    full = weblogs.generate_logs(tmp_path / "gen", "2026-11-25", 400, seed=7, broken_share=0.05,
                                 kinds=weblogs.ALL_KINDS).read_bytes()
    folder = tmp_path / "logs"
    folder.mkdir()
    log_file = folder / "access.log"
    cut = full.index(b"\n", len(full) // 2) + 40    # half the file and a line written in part
    log_file.write_bytes(full[:cut])
    cfg = weblog_cfg(lake, folder)

    first = run_weblog(spark, cfg, "2026-11-25")
    assert first["files_new"] == 1 and first["bytes_pending"] == 40 - 1
    assert first["lines"] == full[:cut].count(b"\n")          # the unfinished line waits
    log_file.write_bytes(full)                                 # the writer carries on
    second = run_weblog(spark, cfg, "2026-11-26")
    assert second["files_grown"] == 1 and second["bytes_pending"] == 0
    assert first["lines"] + second["lines"] == full.count(b"\n")

    want = expected_lines(log_file)
    assert gold_hits(spark, cfg) == want["hits"]
    assert delta.read(spark, cfg, "silver.access_log").count() == want["kept"]
    bronze = delta.read(spark, cfg, "bronze.access_log")
    assert bronze.count() == bronze.select("_file", "_offset").distinct().count() == want["lines"]

    # a file whose read part changed is reported, not read again; the others still are
    log_file.write_bytes(b"X" + full[1:])
    (folder / "access.log.1").write_bytes(full[:cut])
    third = run_weblog(spark, cfg, "2026-11-27")
    assert (third["files_changed"], third["files_new"]) == (1, 1)
    assert third["lines"] == full[:cut].count(b"\n")
    assert gold_hits(spark, cfg) == want["hits"] + expected_lines(folder / "access.log.1")["hits"]


def test_weblog_retried_run_dates_change_nothing(spark, lake, tmp_path):
    from ecomlake.ops.sources import weblogs

    full = weblogs.generate_logs(tmp_path / "gen", "2026-11-25", 200, seed=9, broken_share=0.05,
                                 kinds=weblogs.ALL_KINDS).read_bytes()
    log_file = tmp_path / "access.log"
    half = full.index(b"\n", len(full) // 2) + 1
    log_file.write_bytes(full[:half])
    cfg = weblog_cfg(lake, log_file)
    run_weblog(spark, cfg, "2026-11-25")
    log_file.write_bytes(full)
    run_weblog(spark, cfg, "2026-11-26")
    before = lake_state(spark, cfg)
    assert sum(r[2] for r in before["gold.hits_per_ip_day"]) == expected_lines(log_file)["kept"]

    for day in ("2026-11-26", "2026-11-25"):                  # the latest, then an older one
        retried = run_weblog(spark, cfg, day)
        assert lake_state(spark, cfg) == before, day
    assert retried["lines"] == full[:half].count(b"\n")


def test_analytics_search_terms_and_forecasts(spark, lake):
    # a tiny gold: two years of sales
    delta.overwrite(spark.createDataFrame(
        [(1, 366, Decimal("100.00")), (2, 367, Decimal("50.00")), (3, 731, Decimal("300.00"))],
        "orderid long, dateid int, amount decimal(18,2)"), lake, "gold.FactSales")
    delta.overwrite(spark.createDataFrame([(366, 2020), (367, 2020), (731, 2021)],
                                          "dateid int, Year int"), lake, "gold.DimDate")
    counts = analytics.run(spark, lake)

    with open(CAPSTONE / "searchterms.csv", newline="", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    expected = collections.Counter(r["searchterm"] for r in rows)
    got = {r.searchterm: r.searches for r in delta.read(spark, lake, "gold.searchterm_counts").collect()}
    assert got == expected
    assert counts["searchterm_counts"] == len(expected)
    top = delta.read(spark, lake, "gold.top_searchterms").filter("rank = 1").collect()
    per_month = collections.defaultdict(collections.Counter)
    for r in rows:
        per_month[(int(r["year"]), int(r["month"]))][r["searchterm"]] += 1
    for r in top:
        c = per_month[(r.year, r.month)]
        assert r.searches == max(c.values())
        assert r.searchterm == min(t for t, n in c.items() if n == r.searches)

    # the pretrained model: intercept + coefficient * year, read from its parquet with pyarrow
    params = pq.read_table(glob.glob(str(CAPSTONE / "sales_prediction.model/data/*.parquet"))[0]).to_pylist()[0]
    forecasts = {(r.model, r.year): r.predicted_sales
                 for r in delta.read(spark, lake, "gold.sales_forecast").collect()}
    assert forecasts[("course_pretrained", 2023)] == pytest.approx(
        params["intercept"] + params["coefficients"]["values"][0] * 2023)
    # retrained on 2020 = 150 and 2021 = 300: a line through both, shrunk a little by regParam
    assert ("retrained_on_gold", 2022) in forecasts
    assert 300 < forecasts[("retrained_on_gold", 2022)] < 460
