"""BI: Superset brought up by `ecomlake bi up`'s code path on the course data's warehouse.

- provisioning from stack/superset/assets is idempotent (applied twice: same objects, same ids);
- the dashboards exist through Superset's REST API with the charts of dashboards.yaml;
- every chart's saved query (/api/v1/chart/<id>/data/) returns the numbers computed here,
  independently, from the gold Delta tables of the same pipeline run (FactSales and its
  dimensions, not the marts Superset reads);
- headless chromium (Debian's chromium + chromium-driver, driven by Selenium) logs in, opens
  each dashboard, and every chart renders with no error and no warning icon (such as Superset's
  "row limit reached"); the data each chart received in the browser matches gold too, with and without the
  dashboards' native filters (year, country) applied. The screenshots are kept as test
  artifacts in .local/artifacts/bi/ (look at them).

Needs stack/superset/install.sh (Superset's virtualenv, chromium and chromium-driver; CI runs it) and
`ecomlake stack up`. It does not skip without Superset. Superset is left running if it was
running before the module, and stopped otherwise.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from ecomlake.ops import bi
from ecomlake.config import PROJECT_ROOT, load_config
from ecomlake.gold import GOLD_TABLES
from ecomlake.io import delta

ARTIFACTS = PROJECT_ROOT / ".local" / "artifacts" / "bi"
MOBILE_PHONE_TYPE = "smart phone"     # the catalog's type of the course's "mobile phones"


def money(x) -> float:
    return round(float(x), 2)


@pytest.fixture(scope="module")
def warehouse(course_lake, spark):
    """The warehouse holds exactly the course run's tables (other tests publish there too)."""
    course_lake.publish(spark, "postgres")
    return course_lake


@pytest.fixture(scope="module")
def superset(warehouse):
    cfg = load_config("local")
    assert (bi.paths(cfg).bin / "superset").exists(), (
        f"no Superset at {bi.paths(cfg).venv}: run stack/superset/install.sh (make bi)")
    was_running = bi.healthy()
    bi.up(cfg)
    yield cfg
    if not was_running:
        bi.stop(cfg)


@pytest.fixture(scope="module")
def client(superset):
    return bi.Client(superset)


@pytest.fixture(scope="module")
def spec():
    return bi.load_assets()


@pytest.fixture(scope="module")
def gold(spark, warehouse):
    """What each chart should show, computed from gold's star schema with Spark."""
    cfg = warehouse.cfg
    t = {n: delta.read(spark, cfg, f"gold.{n}") for n in
         ("FactSales", "DimDate", "DimCountry", "DimCategory", "DimItem", "inventory_on_hand")}
    wide = (t["FactSales"].join(t["DimDate"], "dateid").join(t["DimCountry"], "countryid")
            .join(t["DimCategory"].withColumnRenamed("category", "category_name"),
                  "categoryid")
            .join(t["DimItem"].select("itemid", "item", "type"), "itemid", "left")).cache()

    def totals(*keys, df=wide, value="amount"):
        return {tuple(r[:-1]) if len(keys) > 1 else r[0]: money(r[-1])
                for r in df.groupBy(*keys).agg(F.sum(value)).collect()}

    top = (wide.groupBy("itemid").agg(F.sum("amount").alias("sales"),
                                       F.sum("quantity").alias("units"))
           .orderBy(F.desc("sales")).collect())
    inventory = {(r["category"], r["type"]): (int(r[2]), int(r[3])) for r in
                 t["inventory_on_hand"].groupBy("category", "type")
                 .agg(F.sum("quantity_on_hand"), F.countDistinct("itemid")).collect()}
    mobile = wide.filter(F.col("type") == MOBILE_PHONE_TYPE)
    years = sorted(r[0] for r in wide.select("Year").distinct().collect())
    return {
        "monthly": totals("Year", "Month"),
        "category": totals("category_name"),
        "mobile_quarterly": {f"{y} Q{q}": v for (y, q), v in
                             totals("Year", "Quarter", df=mobile).items()},
        "country": totals("country"),
        "total": money(wide.agg(F.sum("amount")).collect()[0][0] or 0),
        "top_items": [(r["itemid"], money(r["sales"]), int(r["units"])) for r in top],
        "inventory": inventory,
        "row_counts": {name: delta.read(spark, cfg, f"gold.{name}").count()
                       for name in GOLD_TABLES},
        "years": years,
        "year_total": {y: money(wide.filter(F.col("Year") == y).agg(F.sum("amount"))
                                .collect()[0][0]) for y in years},
        "year_monthly": totals("Year", "Month"),
        "wide": wide,
    }


@pytest.fixture(scope="module")
def charts(client, spec):
    """chart key (dashboards.yaml) -> Superset chart id, from the provisioned dashboards."""
    ids = {}
    for d in bi.dashboards(client):
        by_name = {c["slice_name"]: c["id"] for c in d["charts"]}
        for row in spec["dashboards"][d["key"]]["rows"]:
            for key in row:
                ids[key] = by_name[spec["charts"][key]["name"]]
    return ids


def chart_rows(client, chart_id: int) -> list[dict]:
    res = client.call("GET", f"/api/v1/chart/{chart_id}/data/")["result"]
    assert len(res) == 1 and not res[0].get("error"), res
    return res[0]["data"]


# -- provisioning ---------------------------------------------------------------------------
def test_provision_twice_changes_nothing(superset, client, spec):
    before = {c["id"]: c["slice_name"] for c in client.list_all("chart", ["id", "slice_name"])}
    first = bi.provision(superset, client)
    second = bi.provision(superset, client)
    after = {c["id"]: c["slice_name"] for c in client.list_all("chart", ["id", "slice_name"])}
    assert first == second
    assert before == after                     # same charts, same ids: updated in place
    titles = [d["dashboard_title"] for d in client.list_all("dashboard", ["dashboard_title"])]
    for dash in spec["dashboards"].values():
        assert titles.count(dash["title"]) == 1
    names = list(after.values())
    for chart in spec["charts"].values():
        assert names.count(chart["name"]) == 1
    databases = [d["database_name"] for d in client.list_all("database", ["database_name"])]
    assert databases.count(spec["database"]["name"]) == 1


def test_dashboards_have_their_charts(client, spec):
    boards = {d["key"]: d for d in bi.dashboards(client)}
    assert set(boards) == {"course_sales", "operations"}
    assert boards["course_sales"]["title"] == "Course sales"
    assert boards["operations"]["title"] == "Operations"
    for key, d in boards.items():
        want = {spec["charts"][c]["name"] for row in spec["dashboards"][key]["rows"] for c in row}
        assert {c["slice_name"] for c in d["charts"]} == want
    viz = {c["slice_name"]: c["form_data"]["viz_type"] for c in boards["course_sales"]["charts"]}
    assert viz == {"Monthly total sales": "echarts_timeseries_line",
                   "Total sales per category": "pie",
                   "Quarterly sales of mobile phones": "echarts_timeseries_bar"}


# -- each chart's query against gold ----------------------------------------------------------
def _month(epoch_ms) -> tuple[int, int]:
    d = dt.datetime.fromtimestamp(epoch_ms / 1000, dt.timezone.utc)
    return d.year, d.month


def check(key: str, rows: list[dict], gold: dict) -> None:
    """Assert that a chart's rows (from the API or from the browser) show gold's numbers."""
    if key == "monthly_sales":
        assert {_month(r["month_start"]): money(r["Total sales"]) for r in rows} \
            == gold["monthly"]
    elif key == "sales_per_category":
        assert {r["category"]: money(r["Total sales"]) for r in rows} == gold["category"]
    elif key == "mobile_phone_sales":
        assert {r["year_quarter"]: money(r["Total sales"]) for r in rows} \
            == gold["mobile_quarterly"]
    elif key == "sales_per_country":
        assert {r["country"]: money(r["Total sales"]) for r in rows} == gold["country"]
    elif key == "total_sales":
        assert [money(r["Total sales"]) for r in rows] == [gold["total"]]
    elif key == "top_items":
        want = gold["top_items"]
        assert len(rows) == min(10, len(want))
        # Ties at the 10th place may be ordered either way: compare amounts in order, and
        # each item shown against its own gold total.
        assert [money(r["Sales"]) for r in rows] == [s for _, s, _ in want[:len(rows)]]
        by_item = {i: (s, u) for i, s, u in want}
        for r in rows:
            assert by_item[r["itemid"]] == (money(r["Sales"]), r["Units"])
    elif key == "inventory_on_hand":
        assert {(r["category"], r["type"]): (r["Units on hand"], r["Items"]) for r in rows} \
            == gold["inventory"]
    elif key == "data_freshness":
        last = {r["table_name"]: r["row_count"] for r in rows}
        assert {n: last.get(n) for n in GOLD_TABLES} == gold["row_counts"]
    else:
        raise AssertionError(f"no gold check for chart `{key}`")


@pytest.mark.parametrize("key", ["monthly_sales", "sales_per_category", "mobile_phone_sales",
                                 "total_sales", "sales_per_country", "top_items",
                                 "inventory_on_hand", "data_freshness"])
def test_chart_query_matches_gold(client, charts, gold, key):
    check(key, chart_rows(client, charts[key]), gold)


def test_every_chart_has_a_gold_check(spec):
    assert set(spec["charts"]) == {"monthly_sales", "sales_per_category", "mobile_phone_sales",
                                   "total_sales", "sales_per_country", "top_items",
                                   "inventory_on_hand", "data_freshness"}


# -- the browser --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def rendered(superset, client):
    return bi.screenshots(superset, ARTIFACTS, client=client)


def test_browser_renders_every_chart_without_error(rendered, spec):
    assert [r["slug"] for r in rendered] == [d["slug"] for d in spec["dashboards"].values()]
    for r in rendered:
        key = next(k for k, d in spec["dashboards"].items() if d["slug"] == r["slug"])
        n = sum(len(row) for row in spec["dashboards"][key]["rows"])
        assert len(r["charts"]) == n, r["charts"]
        errors = [(c["title"], c["text"]) for c in r["charts"] if c["error"]]
        assert not errors, f"{r['dashboard']}: charts showing an error: {errors}"
        warnings = [(c["title"], c["text"]) for c in r["charts"] if c["warning"]]
        assert not warnings, f"{r['dashboard']}: charts showing a warning: {warnings}"
        assert all(c["drawn"] or c["empty"] for c in r["charts"]), r["charts"]
        png = Path(r["screenshot"])
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000


def test_browser_shows_gold_numbers(rendered, charts, gold):
    received = {cid: d for r in rendered for cid, d in r["data"].items()}
    for key, chart_id in charts.items():
        assert chart_id in received, f"chart `{key}` sent no data request from the browser"
        assert not received[chart_id]["filters"] or key == "monthly_sales"
        check(key, received[chart_id]["rows"], gold)


def test_native_filters_reach_the_charts_in_their_scope(superset, client, charts, gold):
    year = gold["years"][-1]
    wide = gold["wide"]
    country = (wide.filter(F.col("Year") == year).groupBy("country").agg(F.sum("amount"))
               .orderBy(F.desc(F.col("sum(amount)"))).first()[0])
    rendered = bi.screenshots(superset, ARTIFACTS, client=client, filters={
        "course_sales": {"year": [year]}, "operations": {"year": [year], "country": [country]}})
    for r in rendered:
        assert not [c for c in r["charts"] if c["error"] or c["warning"]], r["charts"]
    received = {cid: d for r in rendered for cid, d in r["data"].items()}
    applied = {key: {(f["col"], tuple(f["val"])) for f in received[cid]["filters"]
                     if f["op"] == "IN"} for key, cid in charts.items()}
    assert applied == {
        "monthly_sales": {("year", (year,))},
        "mobile_phone_sales": {("year", (year,))},
        "sales_per_category": set(),                 # no year column: out of the filter's scope
        "total_sales": {("year", (year,)), ("country", (country,))},
        "sales_per_country": {("country", (country,))},
        "top_items": {("year", (year,)), ("country", (country,))},
        "inventory_on_hand": set(),
        "data_freshness": set()}
    monthly = {_month(r["month_start"]): money(r["Total sales"])
               for r in received[charts["monthly_sales"]]["rows"]}
    assert monthly == {k: v for k, v in gold["year_monthly"].items() if k[0] == year}
    want = money(wide.filter((F.col("Year") == year) & (F.col("country") == country))
                 .agg(F.sum("amount")).collect()[0][0])
    assert [money(r["Total sales"]) for r in received[charts["total_sales"]]["rows"]] == [want]
