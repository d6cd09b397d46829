"""Dashboards as code: the asset files (stack/superset/assets: datasets.yaml, dashboards.yaml)
compiled into Superset's own import bundle (a zip of YAML files, its export format), with
UUIDs derived from the keys in the files so that re-applying updates the same objects.

Also the saved query context of each chart (what /api/v1/chart/<id>/data/ runs): the same
columns, metrics, filter, order and limit as the chart shows in the browser."""
from __future__ import annotations

import io
import json
import os
import re
import urllib.parse
import uuid
import zipfile
from pathlib import Path

import yaml

from ecomlake.config import Config, ConfigError
from ecomlake.ops.bi.server import STACK_DIR

ASSETS_DIR = STACK_DIR / "assets"
DB_NAME_DB2 = "ecomlake production warehouse (DB2)"
# All UUIDs of provisioned objects derive from their keys in the asset files.
UUID_NS = uuid.UUID("6f0c9a52-3c1e-4d7b-9a8e-ec01a4e0b100")
# A paged table's row limit: the header of a chart warns when its rows reach the row limit,
# so a table that pages through its rows (`page_length`) asks for at most this many.
PAGED_ROW_LIMIT = 50000


def _uuid(kind: str, key: str) -> str:
    return str(uuid.uuid5(UUID_NS, f"ecomlake:{kind}:{key}"))


def load_assets(assets_dir: Path = ASSETS_DIR) -> dict:
    spec = yaml.safe_load((assets_dir / "datasets.yaml").read_text())
    spec.update(yaml.safe_load((assets_dir / "dashboards.yaml").read_text()))
    for key, chart in spec["charts"].items():
        if chart["dataset"] not in spec["datasets"]:
            raise ValueError(f"dashboards.yaml: chart `{key}` reads unknown dataset "
                             f"`{chart['dataset']}`")
    for key, dash in spec["dashboards"].items():
        for row in dash["rows"]:
            for chart in row:
                if chart not in spec["charts"]:
                    raise ValueError(f"dashboards.yaml: dashboard `{key}` shows unknown chart "
                                     f"`{chart}`")
    return spec


def _metric(m: dict) -> dict:
    return {"expressionType": "SQL", "sqlExpression": m["sql"], "label": m["label"],
            "hasCustomLabel": True,
            "optionName": "metric_" + re.sub(r"\W+", "_", m["label"].lower())}


def _where(chart: dict) -> list[dict]:
    if not chart.get("where"):
        return []
    return [{"expressionType": "SQL", "sqlExpression": chart["where"], "clause": "WHERE",
             "subject": None, "operator": None, "comparator": None, "isExtra": False,
             "isNew": False, "filterOptionName": "filter_where"}]


VIZ_TYPES = {"line": "echarts_timeseries_line", "bar": "echarts_timeseries_bar", "pie": "pie",
             "big_number": "big_number_total", "table": "table"}


def chart_params(chart: dict, datasets: dict) -> dict:
    """Superset form data (a chart's `params`) for one chart of dashboards.yaml."""
    viz = chart["viz"]
    common = {"viz_type": VIZ_TYPES[viz], "adhoc_filters": _where(chart),
              "color_scheme": "supersetColors", "extra_form_data": {}, "dashboards": []}
    if viz in ("line", "bar"):
        m = _metric(chart["metric"])
        temporal = _is_temporal(datasets[chart["dataset"]], chart["x"])
        p = {"x_axis": chart["x"], "metrics": [m], "groupby": [], "row_limit": 10000,
             "order_desc": True, "truncate_metric": True, "show_legend": False,
             "rich_tooltip": True, "y_axis_format": "SMART_NUMBER", "zoomable": False,
             "x_axis_title_margin": 15, "y_axis_title_margin": 30, "truncateYAxis": False,
             "comparison_type": "values", "annotation_layers": [], "sort_series_type": "sum",
             "only_total": True}
        if temporal:
            p.update(time_grain_sqla=chart.get("time_grain", "P1D"),
                     x_axis_time_format="smart_date", markerEnabled=True, markerSize=6)
            common["adhoc_filters"] = [
                {"clause": "WHERE", "subject": chart["x"], "operator": "TEMPORAL_RANGE",
                 "comparator": "No filter", "expressionType": "SIMPLE"}] + _where(chart)
        else:
            p.update(x_axis_sort=m["label"] if chart.get("sort_by_metric") else chart["x"],
                     x_axis_sort_asc=not chart.get("sort_by_metric"))
        if viz == "bar":
            p.update(orientation="horizontal" if chart.get("horizontal") else "vertical",
                     show_value=True, stack=None)
        return {**common, **p}
    if viz == "pie":
        return {**common, "groupby": [chart["group"]], "metric": _metric(chart["metric"]),
                "row_limit": 100, "sort_by_metric": True, "show_labels": True,
                "labels_outside": True, "label_type": "key_percent",
                "number_format": "SMART_NUMBER", "show_legend": True, "legendType": "scroll",
                "legendOrientation": "top", "outerRadius": 70, "innerRadius": 30,
                "donut": False, "show_total": True}
    if viz == "big_number":
        return {**common, "metric": _metric(chart["metric"]), "header_font_size": 0.4,
                "subheader_font_size": 0.15, "y_axis_format": "SMART_NUMBER",
                "time_format": "smart_date"}
    if viz == "table":
        # A table with `page_length` pages through its rows on the server (the top rows
        # first); one with `limit` shows at most that many rows.
        paged = "page_length" in chart
        p = {"row_limit": chart.get("limit", PAGED_ROW_LIMIT if paged else 100),
             "server_pagination": paged, "server_page_length": chart.get("page_length", 10),
             "include_search": False, "show_cell_bars": True,
             "color_pn": True, "table_timestamp_format": "%Y-%m-%d %H:%M:%S",
             "percent_metrics": [], "order_desc": True}
        if "metrics" in chart:
            ms = [_metric(m) for m in chart["metrics"]]
            p.update(query_mode="aggregate", groupby=chart["group"], metrics=ms,
                     all_columns=[], timeseries_limit_metric=ms[0], order_by_cols=[])
        else:
            col, direction = chart["order_by"]
            p.update(query_mode="raw", all_columns=chart["columns"], groupby=[], metrics=[],
                     order_by_cols=[json.dumps([col, direction == "asc"])])
        return {**common, **p}
    raise ValueError(f"unknown viz `{viz}` (known: {', '.join(VIZ_TYPES)})")


def _is_temporal(dataset: dict, column: str) -> bool:
    return str(dataset["columns"][column]).upper().startswith(("DATE", "TIMESTAMP"))


def chart_query(chart: dict, datasets: dict) -> dict:
    """The query object of a chart's saved query context (what /api/v1/chart/<id>/data/
    runs): the same columns, metrics, filter and order as the chart's form data."""
    viz = chart["viz"]
    q = {"filters": [], "extras": {"having": "", "where": chart.get("where") and
                                   f"({chart['where']})" or ""},
         "applied_time_extras": {}, "annotation_layers": [], "series_limit": 0,
         "order_desc": True, "url_params": {}, "custom_params": {}, "custom_form_data": {}}
    if viz in ("line", "bar"):
        m = _metric(chart["metric"])
        if _is_temporal(datasets[chart["dataset"]], chart["x"]):
            x = {"timeGrain": chart.get("time_grain", "P1D"), "columnType": "BASE_AXIS",
                 "sqlExpression": chart["x"], "label": chart["x"], "expressionType": "SQL"}
            q["extras"]["time_grain_sqla"] = chart.get("time_grain", "P1D")
            q["time_range"] = "No filter"
        else:
            x = chart["x"]
        q.update(columns=[x], metrics=[m], row_limit=10000,
                 orderby=[[m, False]] if chart.get("sort_by_metric") else [[chart["x"], True]])
    elif viz == "pie":
        m = _metric(chart["metric"])
        q.update(columns=[chart["group"]], metrics=[m], row_limit=100, orderby=[[m, False]])
    elif viz == "big_number":
        q.update(columns=[], metrics=[_metric(chart["metric"])], row_limit=1)
    elif "metrics" in chart:
        ms = [_metric(m) for m in chart["metrics"]]
        q.update(columns=chart["group"], metrics=ms, orderby=[[ms[0], False]],
                 row_limit=_table_rows(chart))
    else:
        col, direction = chart["order_by"]
        q.update(columns=chart["columns"], metrics=[], orderby=[[col, direction == "asc"]],
                 row_limit=_table_rows(chart))
    if not q["extras"]["where"]:
        q["extras"].pop("where")
    return q


def _table_rows(chart: dict) -> int:
    """The rows a table shows at first: its first page, or all of them up to its limit."""
    return chart["page_length"] if "page_length" in chart else chart.get("limit", 100)


def _postgres_uri(cfg: Config) -> str:
    pg = cfg.postgres
    return (f"postgresql+psycopg2://{urllib.parse.quote(pg.user)}:XXXXXXXXXX@"
            f"{pg.host}:{pg.port}/{pg.database}")


def _db2_target() -> tuple[str, str] | None:
    """(SQLAlchemy URI with a masked password, password) of a real DB2 when DB2_URL, DB2_USER
    and DB2_PASSWORD are set; None otherwise (the local Derby stand-in speaks DRDA only to
    JCC, not to ibm_db: see README, "The DB2 path")."""
    url, user, pw = (os.environ.get(v) for v in ("DB2_URL", "DB2_USER", "DB2_PASSWORD"))
    if not (url and user and pw):
        return None
    m = re.match(r"jdbc:db2://([^:/]+)(?::(\d+))?/([^:;/?]+)", url)
    if not m:
        raise ValueError("DB2_URL must look like jdbc:db2://host:port/DATABASE")
    host, port, database = m.group(1), m.group(2) or "50000", m.group(3)
    return (f"db2+ibm_db://{urllib.parse.quote(user)}:XXXXXXXXXX@{host}:{port}/{database}", pw)


def _database_yaml(name: str, uri: str, key: str) -> dict:
    return {"database_name": name, "sqlalchemy_uri": uri, "cache_timeout": None,
            "expose_in_sqllab": True, "allow_run_async": False, "allow_ctas": False,
            "allow_cvas": False, "allow_dml": False, "allow_file_upload": False,
            "extra": {"allows_virtual_table_explore": True, "metadata_params": {},
                      "engine_params": {}, "schemas_allowed_for_file_upload": []},
            "uuid": _uuid("database", key), "version": "1.0.0"}


def _dataset_yaml(key: str, ds: dict, cfg: Config, db_uuid: str) -> dict:
    columns = []
    for name, type_ in ds["columns"].items():
        temporal = str(type_).upper().startswith(("DATE", "TIMESTAMP"))
        columns.append({"column_name": name, "verbose_name": None, "is_dttm": temporal,
                        "is_active": True, "type": str(type_), "advanced_data_type": None,
                        "groupby": True, "filterable": True, "expression": None,
                        "description": None, "python_date_format": None, "extra": {}})
    main_dttm = next((c["column_name"] for c in columns if c["is_dttm"]), None)
    return {"table_name": ds["table"], "main_dttm_col": main_dttm,
            "description": ds.get("description"), "default_endpoint": None, "offset": 0,
            "cache_timeout": None, "catalog": None, "schema": cfg.postgres.schema,
            "sql": ds.get("sql"), "params": None, "template_params": None,
            "filter_select_enabled": True, "fetch_values_predicate": None, "extra": None,
            "normalize_columns": False, "always_filter_main_dttm": False,
            "uuid": _uuid("dataset", key),
            "metrics": [{"metric_name": "count", "verbose_name": "COUNT(*)",
                         "metric_type": "count", "expression": "COUNT(*)", "description": None,
                         "d3format": None, "currency": None, "extra": {},
                         "warning_text": None}],
            "columns": columns, "version": "1.0.0", "database_uuid": db_uuid}


def _filter_excluded(dash: dict, flt: dict, spec: dict, chart_ids: dict[str, int]) -> list[int]:
    """Charts of the dashboard whose dataset lacks the filter's column (out of its scope)."""
    return [chart_ids[c] for row in dash["rows"] for c in row
            if flt["column"] not in spec["datasets"][spec["charts"][c]["dataset"]]["columns"]]


def _dashboard_yaml(key: str, dash: dict, spec: dict) -> dict:
    # Position ids: chartId values here are placeholders the import maps to the real ids.
    chart_ids = {c: i + 1 for i, c in enumerate(c for row in dash["rows"] for c in row)}
    position = {"DASHBOARD_VERSION_KEY": "v2",
                "ROOT_ID": {"type": "ROOT", "id": "ROOT_ID", "children": ["GRID_ID"]},
                "GRID_ID": {"type": "GRID", "id": "GRID_ID", "children": [],
                            "parents": ["ROOT_ID"]},
                "HEADER_ID": {"id": "HEADER_ID", "type": "HEADER",
                              "meta": {"text": dash["title"]}}}
    for r, row in enumerate(dash["rows"], 1):
        row_id = f"ROW-{key}-{r}"
        position["GRID_ID"]["children"].append(row_id)
        position[row_id] = {"type": "ROW", "id": row_id, "children": [],
                            "parents": ["ROOT_ID", "GRID_ID"],
                            "meta": {"background": "BACKGROUND_TRANSPARENT"}}
        for chart_key, width in row.items():
            cid = f"CHART-{chart_key}"
            position[row_id]["children"].append(cid)
            position[cid] = {"type": "CHART", "id": cid, "children": [],
                             "parents": ["ROOT_ID", "GRID_ID", row_id],
                             "meta": {"width": width,
                                      "height": spec["charts"][chart_key].get("height", 50),
                                      "chartId": chart_ids[chart_key],
                                      "uuid": _uuid("chart", chart_key),
                                      "sliceName": spec["charts"][chart_key]["name"]}}
    filters = []
    for flt in dash.get("filters", []):
        filters.append({
            "id": f"NATIVE_FILTER-{key}-{flt['column']}", "name": flt["name"],
            "filterType": "filter_select", "type": "NATIVE_FILTER", "description": "",
            "targets": [{"column": {"name": flt["column"]},
                         "datasetUuid": _uuid("dataset", flt["dataset"])}],
            "controlValues": {"enableEmptyFilter": False, "defaultToFirstItem": False,
                              "multiSelect": True, "searchAllOptions": False,
                              "inverseSelection": False, "sortAscending": True},
            "defaultDataMask": {"extraFormData": {}, "filterState": {}, "ownState": {}},
            "cascadeParentIds": [],
            "scope": {"rootPath": ["ROOT_ID"],
                      "excluded": _filter_excluded(dash, flt, spec, chart_ids)},
            "tabsInScope": []})
    metadata = {"native_filter_configuration": filters, "color_scheme": "supersetColors",
                "refresh_frequency": 0, "expanded_slices": {}, "label_colors": {},
                "shared_label_colors": [], "timed_refresh_immune_slices": [],
                "cross_filters_enabled": True, "chart_configuration": {},
                "global_chart_configuration": {"scope": {"rootPath": ["ROOT_ID"],
                                                         "excluded": []}}}
    return {"dashboard_title": dash["title"], "description": None, "css": "",
            "slug": dash["slug"], "certified_by": None, "certification_details": None,
            "published": True, "uuid": _uuid("dashboard", key), "position": position,
            "metadata": metadata, "version": "1.0.0"}


def build_bundle(cfg: Config, spec: dict) -> tuple[bytes, dict[str, str]]:
    """The Superset import bundle (a zip of YAML files, Superset's export format) and the
    passwords for its databases, keyed by file name."""
    files: dict[str, dict] = {"metadata.yaml": {"version": "1.0.0", "type": "assets",
                                                "timestamp": "2026-01-01T00:00:00+00:00"}}
    passwords: dict[str, str] = {}
    db_file = "databases/ecomlake_warehouse.yaml"
    files[db_file] = _database_yaml(spec["database"]["name"], _postgres_uri(cfg), "postgres")
    try:
        passwords[db_file] = cfg.secret("postgres")
    except ConfigError as exc:
        raise RuntimeError(f"no PostgreSQL password: {exc}") from None
    db2 = _db2_target()
    if db2:
        files["databases/ecomlake_db2.yaml"] = _database_yaml(DB_NAME_DB2, db2[0], "db2")
        passwords["databases/ecomlake_db2.yaml"] = db2[1]
    db_uuid = files[db_file]["uuid"]
    for key, ds in spec["datasets"].items():
        files[f"datasets/ecomlake_warehouse/{key}.yaml"] = _dataset_yaml(key, ds, cfg, db_uuid)
    for key, chart in spec["charts"].items():
        files[f"charts/{key}.yaml"] = {
            "slice_name": chart["name"], "description": chart.get("description"),
            "certified_by": None, "certification_details": None,
            "viz_type": VIZ_TYPES[chart["viz"]],
            "params": chart_params(chart, spec["datasets"]), "query_context": None,
            "cache_timeout": None, "uuid": _uuid("chart", key), "version": "1.0.0",
            "dataset_uuid": _uuid("dataset", chart["dataset"])}
    for key, dash in spec["dashboards"].items():
        files[f"dashboards/{key}.yaml"] = _dashboard_yaml(key, dash, spec)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, content in files.items():
            z.writestr(f"ecomlake_assets/{name}", yaml.safe_dump(content, sort_keys=False))
    return buf.getvalue(), passwords
