"""notebooks/explore_gold.ipynb, run top to bottom as a reader would (a real Jupyter kernel,
through nbclient) against the course data's pipeline output: no cell may fail, and the answers
it prints must equal those computed here, from the course files with plain Python and from the
gold tables read with the test's own Spark session. The executed notebook is kept under
.local/artifacts/notebooks/ to look at."""
import collections
import csv
import json
import os
from decimal import Decimal
from unittest import mock

import nbformat
import pyarrow.parquet as pq
import pytest
from nbclient import NotebookClient

from ecomlake.config import PROJECT_ROOT
from ecomlake.io import delta

from tests.conftest import CAPSTONE

NOTEBOOK = PROJECT_ROOT / "notebooks" / "explore_gold.ipynb"
ARTIFACTS = PROJECT_ROOT / ".local" / "artifacts" / "notebooks"
STAR = ["DimDate", "DimCountry", "DimCategory", "DimItem", "FactSales"]


@pytest.fixture(scope="module")
def executed(course_lake):
    """The notebook executed in a fresh kernel pointed at the course lake. The kernel starts its
    own Spark driver beside the tests' one: 1 GiB is plenty for the course data."""
    overrides = json.loads(course_lake.env["ECOMLAKE_OVERRIDES"])
    overrides["spark"] = {**overrides.get("spark", {}), "driver_memory": "1g"}
    env = {"ECOMLAKE_OVERRIDES": json.dumps(overrides), "ECOMLAKE_ENV": "local",
           "SPARK_LOCAL_IP": "127.0.0.1"}
    nb = nbformat.read(NOTEBOOK, as_version=4)
    with mock.patch.dict(os.environ, env):
        NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=True,
                       resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, ARTIFACTS / NOTEBOOK.name)
    return nb


def outputs(nb):
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            yield i, out


def answers(nb) -> dict:
    lines = [line for _, out in outputs(nb) if out.output_type == "stream"
             for line in out.text.splitlines() if line.startswith("ANSWERS ")]
    assert len(lines) == 1, "the notebook must print exactly one ANSWERS line"
    return json.loads(lines[0][len("ANSWERS "):])


def test_stored_notebook_has_no_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)
    # the notebook imports the package's helper instead of carrying its own session set-up
    source = "\n".join(c.source for c in code)
    assert "from ecomlake.explore import Lake" in source and "SparkSession" not in source


def test_notebook_runs_top_to_bottom_without_error(executed):
    errors = [(i, out.ename, out.evalue) for i, out in outputs(executed) if out.output_type == "error"]
    assert errors == []
    code = [c for c in executed.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code)
    plots = [i for i, out in outputs(executed) if "image/png" in out.get("data", {})]
    assert len(plots) >= 5   # countries, months, years, search terms, forecast


def course_sales():
    with open(CAPSTONE / "oltpdata.csv", newline="") as f:
        rows = [r for r in csv.reader(f) if r]
    return len(rows), sum(Decimal(price) * int(qty) for _p, _c, price, qty, _ts in rows)


def course_searchterms():
    with open(CAPSTONE / "searchterms.csv", newline="", encoding="utf-8-sig") as f:
        return collections.Counter(r["searchterm"] for r in csv.DictReader(f))


def course_model_predicts(year: int) -> float:
    """The course's pretrained linear model applied by hand: intercept + coefficient * year,
    read from the model's own parquet (not through Spark ML)."""
    (part,) = (CAPSTONE / "sales_prediction.model" / "data").glob("*.parquet")
    model = pq.read_table(part).to_pylist()[0]
    (coefficient,) = model["coefficients"]["values"]
    return model["intercept"] + coefficient * year


def test_notebook_answers_equal_course_files_and_gold(executed, course_lake, spark):
    got = answers(executed)
    cfg = course_lake.cfg

    rows, total = course_sales()
    assert got["fact_sales_rows"] == rows
    assert Decimal(got["grand_total"]) == total
    assert Decimal(got["rollup_grand_total"]) == total

    per_country = sorted(((r.country, r.total_sales) for r in
                          delta.read(spark, cfg, "gold.total_sales_per_country").collect()),
                         key=lambda r: (-r[1], r[0]))
    assert [(c, Decimal(t)) for c, t in got["total_sales_per_country_top5"]] == per_country[:5]
    assert got["countries_with_sales"] == len(per_country)
    assert sum(t for _, t in per_country) == total
    assert got["per_country_equals_gold"] and got["grouping_sets_equals_gold"]
    assert got["rollup_equals_gold"] and got["cube_equals_gold"]

    terms = course_searchterms()
    top5 = sorted(terms.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
    assert got["searchterm_rows"] == sum(terms.values())
    assert got["gaming_laptop_searches"] == terms["gaming laptop"]
    assert [tuple(t) for t in got["top5_searchterms"]] == top5
    assert (got["top_searchterm"], got["top_searchterm_searches"]) == top5[0]

    assert got["forecast_2023"]["course_pretrained"] == pytest.approx(course_model_predicts(2023))
    retrained = delta.read(spark, cfg, "gold.sales_forecast").filter(
        "year = 2023 AND model = 'retrained_on_gold'").collect()
    assert got["forecast_2023"]["retrained_on_gold"] == pytest.approx(retrained[0].predicted_sales)


def test_lake_helper_lists_and_reads_the_lake(course_lake, spark):
    from ecomlake.explore import Lake

    lake = Lake(overrides={"lake": {"root": course_lake.cfg.lake_root}}, spark=spark)
    try:
        check_lake(lake, course_lake.cfg, spark)
    finally:   # the tests share one session: leave no temp views behind
        for view in lake.views:
            spark.catalog.dropTempView(view)


def check_lake(lake, cfg, spark):
    gold = lake.tables("gold")["gold"]
    assert set(STAR) | {"total_sales_per_country", "searchterm_counts", "sales_forecast"} <= set(gold)
    assert lake.tables("bronze")["bronze"]
    assert lake.gold("FactSales").count() == course_sales()[0]
    assert lake.sql("SELECT count(*) AS n FROM DimCountry").first().n == \
        delta.read(spark, cfg, "gold.DimCountry").count()
    with pytest.raises(LookupError, match="no Delta table gold.NoSuchTable"):
        lake.gold("NoSuchTable")
