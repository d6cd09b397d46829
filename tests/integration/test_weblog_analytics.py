"""The web-log job and the analytics on the course's files, against answers computed straight
from the files with plain Python."""
import collections
import csv
import datetime as dt
import glob
import gzip
import re
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


def test_weblog_drops_the_address_and_counts_hits(spark, lake, tmp_path):
    lines = (CAPSTONE / "accesslog.txt").read_text().splitlines()
    log_file = tmp_path / "access.log"
    log_file.write_text("\n".join(lines + ["this is not a log line"]) + "\n")
    cfg = load_config("local", overrides={"lake": {"root": lake.lake_root},
                                          "weblog": {"input": str(log_file),
                                                     "archive": lake.weblog.archive}})
    counts = weblog.run(spark, cfg, "2026-11-25", dt.date(2026, 11, 25), dt.datetime(2026, 11, 25))

    # A combined-format line has exactly three quoted fields; the course file has one line whose
    # user agent was cut off (no closing quote): it must be kept raw, not parsed, not dropped.
    well_formed = [l for l in lines if l.count('"') == 6]
    truncated = [l for l in lines if l.count('"') != 6]
    ips = [l.split(" ", 1)[0] for l in well_formed]
    kept = [ip for ip in ips if ip != DROP]
    assert counts == {"lines": len(lines) + 1, "unparsed": len(truncated) + 1,
                      "dropped_ip": ips.count(DROP), "kept": len(kept)}
    assert ips.count(DROP) > 0 and len(truncated) == 1
    bad = delta.read(spark, cfg, "bronze.access_log").filter("NOT _parsed").collect()
    assert sorted(r._raw for r in bad) == sorted(truncated + ["this is not a log line"])

    archived = []
    for part in glob.glob(f"{cfg.weblog.archive}/run_date=2026-11-25/*.gz"):
        archived += gzip.open(part, "rt").read().split()
    assert sorted(archived) == sorted(kept)

    per_day = collections.Counter()
    for l in well_formed:
        ip, day = l.split(" ", 1)[0], re.search(r"\[(\d+/\w+/\d+)", l).group(1)
        if ip != DROP:
            per_day[(dt.datetime.strptime(day, "%d/%b/%Y").date(), ip)] += 1
    hits = {(r.day, r.client_ip): r.hits for r in delta.read(spark, cfg, "gold.hits_per_ip_day").collect()}
    assert hits == per_day


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
