"""The star schema and marts, on tiny inline data whose answers are worked out by hand."""
import csv
import datetime as dt
from decimal import Decimal

from chispa import assert_df_equality

from ecomlake import gold
from ecomlake.silver import BEGINNING, history_changes

from tests.conftest import CAPSTONE

B = dt.datetime.fromisoformat(BEGINNING)
HIST = "customer_id int, country string, valid_from timestamp, valid_to timestamp, is_current boolean"
PHIST = "product_id int, category string, valid_from timestamp, valid_to timestamp, is_current boolean"
SALES = ("id bigint, product_id int, customer_id int, price decimal(12,2), quantity int, "
         "timestamp timestamp, updated_at timestamp, _batch_id string")


def test_to_dim_date_matches_the_course_calendar(spark):
    ours = {r.date.isoformat(): r for r in gold.to_dim_date(
        spark, dt.date(2019, 1, 1), dt.date(2021, 12, 31)).collect()}
    with open(CAPSTONE / "DimDate.csv", newline="") as f:
        course = list(csv.DictReader(f))
    assert len(ours) == len(course) == 1096
    mismatches = []
    for row in course:
        r = ours[row["date"]]
        got = [str(r.dateid), str(r.Year), str(r.Quarter), r.QuarterName, str(r.Month),
               r.Monthname, str(r.Day), str(r.Weekday), r.WeekdayName]
        want = [row[k] for k in ("dateid", "Year", "Quarter", "QuarterName", "Month",
                                 "Monthname", "Day", "Weekday", "WeekdayName")]
        if got != want:
            mismatches.append((row["date"], got, want))
    # The course file puts the last day of each quarter in the next quarter (2019-03-31 is
    # "Q2", 2021-12-31 "Q1"); a calendar does not. Every other field of every day agrees.
    quarter_ends = {f"{y}-{md}" for y in (2019, 2020, 2021)
                    for md in ("03-31", "06-30", "09-30", "12-31")}
    assert {m[0] for m in mismatches} == quarter_ends
    for _, got, want in mismatches:
        assert got[:2] == want[:2] and got[4:] == want[4:]


def test_to_reference_dim_keeps_course_ids_and_adds_unknown(spark):
    dim = {r.countryid: r.country for r in gold.to_reference_dim(spark, "country").collect()}
    with open(CAPSTONE / "DimCountry.csv", newline="", encoding="utf-8-sig") as f:
        course = {int(r["countryid"]): r["country"] for r in csv.DictReader(f)}
    assert dim == {0: "Unknown", **course}


def test_to_fact_sales_uses_the_country_that_held_at_sale_time(spark):
    t = dt.datetime
    sales = spark.createDataFrame([
        (1, 10, 7, Decimal("2.00"), 3, t(2020, 1, 1), t(2020, 1, 1), "b"),   # before the move
        (2, 10, 7, Decimal("5.00"), 1, t(2020, 6, 1), t(2020, 6, 1), "b"),   # after the move
        (3, 11, 8, Decimal("1.50"), 2, t(2020, 6, 1), t(2020, 6, 1), "b"),   # unknown customer
    ], SALES)
    customers = spark.createDataFrame([
        (7, "Argentina", B, t(2020, 3, 1), False),
        (7, "Austria", t(2020, 3, 1), None, True),
    ], HIST)
    products = spark.createDataFrame([(10, "Books", B, None, True)], PHIST)
    fact = gold.to_fact_sales(sales, customers, products, gold.to_reference_dim(spark, "country"),
                              gold.to_reference_dim(spark, "category"))
    got = {r.orderid: (r.countryid, r.categoryid, r.amount, r.dateid) for r in fact.collect()}
    # ids from the course's reference files: Argentina 1, Austria 3, Books 2; 0 = Unknown
    assert got == {1: (1, 2, Decimal("6.00"), 366), 2: (3, 2, Decimal("5.00"), 518),
                   3: (0, 0, Decimal("3.00"), 518)}


def test_history_changes_opens_versions_for_new_and_changed_keys(spark):
    t = dt.datetime
    current = spark.createDataFrame([(7, "Argentina", B, None, True),
                                     (8, "Brazil", B, None, True)], HIST)
    batch = spark.createDataFrame([
        (7, "Austria", t(2022, 1, 2)),    # moved
        (8, "Brazil", t(2022, 1, 2)),     # unchanged: no new version
        (9, "Chile", t(2022, 1, 2)),      # new customer
    ], "customer_id int, country string, updated_at timestamp")
    expected = spark.createDataFrame([(7, "Austria", t(2022, 1, 2), False),
                                      (9, "Chile", B, True)],
                                     "customer_id int, country string, valid_from timestamp, _is_new boolean")
    assert_df_equality(history_changes(current, batch, ["customer_id"], ["country"]), expected,
                       ignore_row_order=True, ignore_nullable=True)


def marts_input(spark):
    rows = [("Argentina", "Books", 2020, 1, 1, "novel", Decimal("10.00")),
            ("Argentina", "Toys", 2020, 2, 4, "doll", Decimal("5.00")),
            ("Austria", "Books", 2021, 3, 7, "novel", Decimal("2.50"))]
    return spark.createDataFrame(rows, "country string, category string, Year int, Quarter int, "
                                       "Month int, type string, amount decimal(18,2)")


def test_marts_totals(spark):
    wide = marts_input(spark)
    per_country = {r.country: r.total_sales for r in gold.to_total_sales_per_country(wide).collect()}
    assert per_country == {"Argentina": Decimal("15.00"), "Austria": Decimal("2.50")}
    quarterly = {(r.Year, r.Quarter, r.type): r.total_sales
                 for r in gold.to_quarterly_sales_per_item_type(wide).collect()}
    assert quarterly == {(2020, 1, "novel"): Decimal("10.00"), (2020, 2, "doll"): Decimal("5.00"),
                         (2021, 3, "novel"): Decimal("2.50")}


def test_rollup_and_cube_have_subtotals_and_grand_total(spark):
    wide = marts_input(spark)
    rollup = {(r.Year, r.country, r.grouping_level): r.total_sales
              for r in gold.to_rollup_year_country(wide).collect()}
    assert rollup[(None, None, 3)] == Decimal("17.50")
    assert rollup[(2020, None, 1)] == Decimal("15.00")
    assert (None, "Argentina", 2) not in rollup           # ROLLUP has no per-country subtotal
    cube = {(r.Year, r.country, r.grouping_level): r.total_sales
            for r in gold.to_cube_year_country(wide).collect()}
    assert cube[(None, "Argentina", 2)] == Decimal("15.00")  # CUBE does
    assert len(cube) == 2 + 2 + 2 + 1
    sets = {(r.country, r.category, r.grouping_level): r.total_sales
            for r in gold.to_grouping_sets_country_category(wide).collect()}
    assert sets[(None, "Books", 2)] == Decimal("12.50")
    assert sets[(None, None, 3)] == Decimal("17.50")


def test_to_inventory_on_hand_names_items_and_keeps_unknown_ones(spark):
    t = dt.datetime(2026, 11, 1)
    inventory = spark.createDataFrame(
        [(1, 10, 5, t), (1, 20, 0, t), (99, 10, 7, t)],
        "product_id int, warehouse_id int, quantity_on_hand int, updated_at timestamp")
    dim_item = spark.createDataFrame(
        [(1, "Galaxy", "Mobile Phone", "Samsung", 2, "Electronics", Decimal("300.00"))],
        "itemid int, item string, type string, brand string, categoryid int, category string, "
        "list_price decimal(12,2)")
    expected = spark.createDataFrame(
        [(1, "Galaxy", "Mobile Phone", "Electronics", 10, 5, t),
         (1, "Galaxy", "Mobile Phone", "Electronics", 20, 0, t),
         (99, "Unknown", "Unknown", "Unknown", 10, 7, t)],
        "itemid int, item string, type string, category string, warehouse_id int, "
        "quantity_on_hand int, updated_at timestamp")
    assert_df_equality(gold.to_inventory_on_hand(inventory, dim_item), expected,
                       ignore_row_order=True, ignore_nullable=True)


def test_every_mart_from_sales_cells_equals_the_mart_from_sale_lines(spark):
    # several lines per cell, a NULL type and a NULL country, so the cells really sum
    rows = [("Argentina", "Books", 2020, 1, 1, "novel", Decimal("10.00")),
            ("Argentina", "Books", 2020, 1, 1, "novel", Decimal("0.01")),
            ("Argentina", "Toys", 2020, 2, 4, None, Decimal("5.00")),
            ("Argentina", "Toys", 2020, 2, 4, None, Decimal("7.25")),
            (None, "Books", 2021, 3, 7, "novel", Decimal("2.50")),
            ("Austria", "Books", 2021, 3, 8, "novel", Decimal("99.99"))]
    lines = spark.createDataFrame(rows, "country string, category string, Year int, Quarter int, "
                                        "Month int, type string, amount decimal(18,2)")
    cells = gold.to_sales_cells(lines)
    assert cells.count() == 4
    for name, (fn, _) in gold.MARTS.items():
        assert_df_equality(fn(cells), fn(lines), ignore_row_order=True, ignore_nullable=True)
