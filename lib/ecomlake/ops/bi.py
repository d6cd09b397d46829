"""BI: Apache Superset on the warehouse, with its dashboards provisioned from files (as code).

    ecomlake bi up           start Superset on http://127.0.0.1:18089 (in the background), wait
                             until /health answers, then provision (below). Needs
                             stack/superset/install.sh (`make bi` runs both) and `stack up`
    ecomlake bi provision    (re)apply the database connections, datasets, charts and
                             dashboards of stack/superset/assets/ through Superset's REST API;
                             applying twice changes nothing (stable UUIDs, overwrite)
    ecomlake bi status       does Superset answer; how many charts and dashboards it has
    ecomlake bi down         stop Superset (its metadata database stays)
    ecomlake bi screenshots  headless Chromium (Debian's `chromium`, DevTools protocol on a
                             pipe) logs in, opens each dashboard, waits for its charts, fails if
                             one shows an error, and saves a PNG per dashboard (--out DIR,
                             default .local/artifacts/bi)

Superset lives in its own virtualenv (.local/superset/venv) with a SQLite metadata database
(.local/superset/superset.db); its log is .local/log/superset.log. The admin user is `admin`;
its password (ECOMLAKE_SUPERSET_PASSWORD) and Superset's SECRET_KEY
(ECOMLAKE_SUPERSET_SECRET_KEY) are generated once into .local/stack.env, like the stack's
passwords, and never printed. The PostgreSQL connection comes from conf/<env>.yaml
(`postgres`); a DB2 connection (ibm_db_sa) is added when DB2_URL, DB2_USER and DB2_PASSWORD
are set.
"""
from __future__ import annotations

import argparse
import base64
import fcntl
import hashlib
import http.cookiejar
import io
import json
import logging
import os
import queue
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from ecomlake.config import PROJECT_ROOT, Config
from ecomlake.ops.stack import _alive, ensure_secrets

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
PORT = 18089                    # not 8088: YARN's ResourceManager web UI is there
ADMIN = "admin"
PASSWORD_VAR = "ECOMLAKE_SUPERSET_PASSWORD"
SECRET_KEY_VAR = "ECOMLAKE_SUPERSET_SECRET_KEY"
STACK_DIR = PROJECT_ROOT / "stack" / "superset"
ASSETS_DIR = STACK_DIR / "assets"
CONFIG_FILE = STACK_DIR / "superset_config.py"
START_TIMEOUT_S = 180
DB_NAME_DB2 = "ecomlake production warehouse (DB2)"
# All UUIDs of provisioned objects derive from their keys in the asset files.
UUID_NS = uuid.UUID("6f0c9a52-3c1e-4d7b-9a8e-ec01a4e0b100")


# -- where things are ----------------------------------------------------------------------
@dataclass(frozen=True)
class Paths:
    home: Path          # .local/superset

    @property
    def venv(self) -> Path:
        return self.home / "venv"

    @property
    def bin(self) -> Path:
        return self.venv / "bin"

    @property
    def log_file(self) -> Path:
        return self.home.parent / "log" / "superset.log"

    @property
    def pid_file(self) -> Path:
        return self.home.parent / "run" / "superset.pid"

    @property
    def init_stamp(self) -> Path:
        return self.home / "metadata-initialized"


def paths(cfg: Config) -> Paths:
    return Paths(cfg.stack_dir / "superset")


def base_url() -> str:
    return f"http://{HOST}:{PORT}"


def credentials(cfg: Config) -> tuple[str, str]:
    """(user, password) of Superset's admin; the password from the environment, else generated
    once into .local/stack.env."""
    values = ensure_secrets(cfg.stack_dir, [PASSWORD_VAR, SECRET_KEY_VAR])
    return ADMIN, os.environ.get(PASSWORD_VAR) or values[PASSWORD_VAR]


def _superset_env(cfg: Config) -> dict[str, str]:
    p = paths(cfg)
    values = ensure_secrets(cfg.stack_dir, [PASSWORD_VAR, SECRET_KEY_VAR])
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECOMLAKE_")}
    env.update({
        "SUPERSET_CONFIG_PATH": str(CONFIG_FILE),
        "SUPERSET_HOME": str(p.home / "home"),
        "ECOMLAKE_SUPERSET_HOME": str(p.home),
        "ECOMLAKE_SUPERSET_PORT": str(PORT),
        "SUPERSET_SECRET_KEY": os.environ.get(SECRET_KEY_VAR) or values[SECRET_KEY_VAR],
        "FLASK_APP": "superset",
        "PATH": f"{p.bin}:{env.get('PATH', '')}",
        "PYTHONUNBUFFERED": "1",
    })
    return env


def _run_superset(cfg: Config, args: list[str], *, input: str | None = None,
                  extra_env: dict | None = None, what: str = "") -> str:
    p = paths(cfg)
    p.log_file.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(args, input=input, text=True, capture_output=True,
                          env={**_superset_env(cfg), **(extra_env or {})}, cwd=p.home)
    with open(p.log_file, "a") as f:
        f.write(f"--- {what or args[0]} (rc {proc.returncode})\n{proc.stdout}{proc.stderr}")
    if proc.returncode != 0:
        raise RuntimeError(f"superset: {what or ' '.join(args[:3])} failed ({proc.returncode}); "
                           f"see {p.log_file}:\n{proc.stderr[-1500:]}")
    return proc.stdout


# -- server lifecycle -----------------------------------------------------------------------
def healthy(timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url()}/health", timeout=timeout) as r:
            return r.status == 200
    except (OSError, urllib.error.URLError):
        return False


def _installed_version(cfg: Config) -> str:
    p = paths(cfg)
    if not (p.bin / "superset").exists():
        raise RuntimeError(f"Superset is not installed at {p.venv}: run stack/superset/install.sh "
                           "(`make bi` does it)")
    meta = sorted((p.venv / "lib").glob("python3*/site-packages/apache_superset-*.dist-info"))
    return meta[-1].name.split("-")[1] if meta else "unknown"


def _init_metadata(cfg: Config) -> None:
    """`superset db upgrade` + `superset init` when the metadata DB is new or Superset changed
    (a stamp remembers the version); then make sure the admin user has the current password."""
    p = paths(cfg)
    want = f"{_installed_version(cfg)} {hashlib.sha256(CONFIG_FILE.read_bytes()).hexdigest()}"
    if p.init_stamp.exists() and p.init_stamp.read_text().strip() == want \
            and (p.home / "superset.db").exists():
        return
    t0 = time.monotonic()
    log.info("superset: initializing the metadata database %s", p.home / "superset.db")
    _run_superset(cfg, [str(p.bin / "superset"), "db", "upgrade"], what="superset db upgrade")
    _run_superset(cfg, [str(p.bin / "superset"), "init"], what="superset init")
    _ensure_admin(cfg)
    p.init_stamp.write_text(want + "\n")
    log.info("superset: metadata database ready in %.1fs", time.monotonic() - t0)


_ADMIN_SCRIPT = """
import os, sys
from superset.app import create_app
app = create_app()
with app.app_context():
    from superset.extensions import security_manager as sm
    user, pw = os.environ["BI_ADMIN_USER"], sys.stdin.read()
    found = sm.find_user(username=user)
    if found is None:
        if not sm.add_user(user, "ecomlake", "admin", f"{user}@localhost",
                           sm.find_role("Admin"), password=pw):
            sys.exit("could not create the admin user")
        print("created")
    else:
        sm.reset_password(found.id, pw)
        print("password set")
"""


def _ensure_admin(cfg: Config) -> None:
    user, pw = credentials(cfg)
    out = _run_superset(cfg, [str(paths(cfg).bin / "python"), "-c", _ADMIN_SCRIPT], input=pw,
                        extra_env={"BI_ADMIN_USER": user}, what="admin user")
    log.info("superset: admin user `%s`: %s", user, out.strip().splitlines()[-1] if out else "")


def _pid(cfg: Config) -> int | None:
    f = paths(cfg).pid_file
    if not f.exists():
        return None
    pid = int(f.read_text().split()[0])
    return pid if _alive(pid) else None


def start(cfg: Config) -> str:
    """Start Superset (gunicorn, one worker with threads: 2 cores) unless it answers already."""
    p = paths(cfg)
    if healthy():
        return "already running"
    for d in (p.log_file.parent, p.pid_file.parent, p.home / "home"):
        d.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    _init_metadata(cfg)
    if _pid(cfg):
        log.info("superset: pid %s is starting already; waiting for it", _pid(cfg))
    else:
        cmd = [str(p.bin / "gunicorn"), "--bind", f"{HOST}:{PORT}", "--workers", "1",
               "--worker-class", "gthread", "--threads", "8", "--timeout", "120",
               "--limit-request-line", "0", "--limit-request-field_size", "0",
               "superset.app:create_app()"]
        with open(p.log_file, "ab") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=p.home,
                                    stdin=subprocess.DEVNULL, env=_superset_env(cfg),
                                    start_new_session=True)
        p.pid_file.write_text(str(proc.pid))
    deadline = time.monotonic() + START_TIMEOUT_S
    while not healthy():
        if time.monotonic() > deadline or not _pid(cfg):
            tail = p.log_file.read_text(errors="replace")[-2000:] if p.log_file.exists() else ""
            raise RuntimeError(f"Superset did not answer on {base_url()}/health within "
                               f"{START_TIMEOUT_S}s (log {p.log_file}):\n{tail}")
        time.sleep(0.5)
    return f"started in {time.monotonic() - t0:.1f}s"


def stop(cfg: Config) -> bool:
    pid = _pid(cfg)
    if pid is None:
        paths(cfg).pid_file.unlink(missing_ok=True)
        return False
    os.killpg(pid, signal.SIGTERM)          # gunicorn's master and its worker (own session)
    deadline = time.monotonic() + 30
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.3)
    if _alive(pid):
        os.killpg(pid, signal.SIGKILL)
    paths(cfg).pid_file.unlink(missing_ok=True)
    return True


# -- REST API client (stdlib only: runs in the project's .venv) -----------------------------
class ApiError(RuntimeError):
    pass


class Client:
    """Superset's REST API as the admin user: JWT bearer token + CSRF token + session cookie."""

    def __init__(self, cfg: Config, url: str | None = None):
        self.url = url or base_url()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        self.headers: dict[str, str] = {"Referer": self.url}
        user, pw = credentials(cfg)
        try:
            token = self.call("POST", "/api/v1/security/login",
                              {"username": user, "password": pw, "provider": "db",
                               "refresh": True})["access_token"]
        except ApiError as exc:
            if "401" not in str(exc):
                raise
            _ensure_admin(cfg)   # the stored password changed (or the user is new): set it
            token = self.call("POST", "/api/v1/security/login",
                              {"username": user, "password": pw, "provider": "db",
                               "refresh": True})["access_token"]
        self.headers["Authorization"] = f"Bearer {token}"
        self.headers["X-CSRFToken"] = self.call("GET", "/api/v1/security/csrf_token/")["result"]

    def call(self, method: str, path: str, body=None, *, raw: bytes | None = None,
             content_type: str = "application/json", timeout: float = 120):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None
                                            else None)
        headers = dict(self.headers)
        if data is not None:
            headers["Content-Type"] = content_type
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with self.opener.open(req, timeout=timeout) as r:
                text = r.read().decode()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:2000]
            raise ApiError(f"{method} {path}: HTTP {exc.code}: {detail}") from None
        return json.loads(text) if text else {}

    def get(self, path: str, **rison):
        if rison:
            path += "?q=" + urllib.parse.quote(_rison(rison))
        return self.call("GET", path)

    def list_all(self, resource: str, columns: list[str]) -> list[dict]:
        out, page = [], 0
        while True:
            res = self.get(f"/api/v1/{resource}/", columns=columns, page=page, page_size=100)
            out += res["result"]
            if len(out) >= res["count"] or not res["result"]:
                return out
            page += 1

    def upload(self, path: str, files: dict[str, tuple[str, bytes]], fields: dict[str, str]):
        boundary = "----ecomlake" + uuid.uuid4().hex
        buf = io.BytesIO()
        for name, value in fields.items():
            buf.write(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\""
                      f"\r\n\r\n{value}\r\n".encode())
        for name, (filename, content) in files.items():
            buf.write(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; "
                      f"filename=\"{filename}\"\r\nContent-Type: application/zip\r\n\r\n".encode())
            buf.write(content + b"\r\n")
        buf.write(f"--{boundary}--\r\n".encode())
        return self.call("POST", path, raw=buf.getvalue(),
                         content_type=f"multipart/form-data; boundary={boundary}")


def _rison(value) -> str:
    """The subset of Rison (Superset's query-string JSON) that list calls need."""
    if isinstance(value, dict):
        return "(" + ",".join(f"{k}:{_rison(v)}" for k, v in value.items()) + ")"
    if isinstance(value, (list, tuple)):
        return "!(" + ",".join(_rison(v) for v in value) + ")"
    if isinstance(value, bool):
        return "!t" if value else "!f"
    if isinstance(value, (int, float)):
        return str(value)
    s = str(value)
    if re.fullmatch(r"[A-Za-z_][\w.\-/]*", s):
        return s
    return "'" + s.replace("!", "!!").replace("'", "!'") + "'"


# -- dashboards as code: asset files -> Superset import bundle ------------------------------
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
        p = {"row_limit": chart.get("limit", 100), "server_pagination": False,
             "server_page_length": 10, "include_search": False, "show_cell_bars": True,
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
                 row_limit=chart.get("limit", 100))
    else:
        col, direction = chart["order_by"]
        q.update(columns=chart["columns"], metrics=[], orderby=[[col, direction == "asc"]],
                 row_limit=chart.get("limit", 100))
    if not q["extras"]["where"]:
        q["extras"].pop("where")
    return q


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
    from ecomlake.config import ConfigError

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


def counts(client: Client) -> dict[str, int]:
    return {r: client.get(f"/api/v1/{r}/", page_size=1)["count"]
            for r in ("database", "dataset", "chart", "dashboard")}


def provision(cfg: Config, client: Client | None = None) -> dict[str, int]:
    """Apply stack/superset/assets to the running Superset; return the object counts."""
    client = client or Client(cfg)
    spec = load_assets()
    bundle, passwords = build_bundle(cfg, spec)
    client.upload("/api/v1/assets/import/", {"bundle": ("ecomlake_assets.zip", bundle)},
                  {"passwords": json.dumps(passwords)})
    # What the import format cannot say: each chart's saved query context (needed by
    # /api/v1/chart/<id>/data/) names the dataset by its database id, and each native filter
    # lists the ids of the charts in its scope. Both are known only now.
    for key, dash in spec["dashboards"].items():
        d = client.get(f"/api/v1/dashboard/{dash['slug']}")["result"]
        position = json.loads(d["position_json"])
        ids = {m["meta"]["uuid"]: m["meta"]["chartId"] for m in position.values()
               if isinstance(m, dict) and m.get("type") == "CHART"}
        by_key = {c: ids[_uuid("chart", c)] for row in dash["rows"] for c in row}
        charts = {c["id"]: c for c in client.get(f"/api/v1/dashboard/{d['id']}/charts")["result"]}
        for chart_key, chart_id in by_key.items():
            chart = spec["charts"][chart_key]
            form_data = charts[chart_id]["form_data"]
            ds_id = int(str(form_data["datasource"]).split("__")[0])
            qc = {"datasource": {"id": ds_id, "type": "table"}, "force": False,
                  "queries": [chart_query(chart, spec["datasets"])],
                  "form_data": {**form_data, "slice_id": chart_id},
                  "result_format": "json", "result_type": "full"}
            client.call("PUT", f"/api/v1/chart/{chart_id}",
                        {"query_context": json.dumps(qc), "query_context_generation": True})
        metadata = json.loads(d["json_metadata"])
        all_ids = list(by_key.values())
        for flt in metadata.get("native_filter_configuration", []):
            excluded = set(flt.get("scope", {}).get("excluded", []))
            flt["chartsInScope"] = [i for i in all_ids if i not in excluded]
        metadata.setdefault("global_chart_configuration", {})["chartsInScope"] = all_ids
        metadata.pop("positions", None)   # the API's response adds them; PUT rejects them
        client.call("PUT", f"/api/v1/dashboard/{d['id']}",
                    {"json_metadata": json.dumps(metadata)})
    return counts(client)


def dashboards(client: Client) -> list[dict]:
    """The provisioned dashboards (those of dashboards.yaml), each with its charts."""
    spec = load_assets()
    out = []
    for key, dash in spec["dashboards"].items():
        d = client.get(f"/api/v1/dashboard/{dash['slug']}")["result"]
        charts = client.get(f"/api/v1/dashboard/{d['id']}/charts")["result"]
        out.append({"key": key, "id": d["id"], "slug": dash["slug"],
                    "title": d["dashboard_title"], "charts": charts})
    return out


# -- headless Chromium over the DevTools protocol (on a pipe: no extra Python package) -------
def chromium_binary() -> str:
    for candidate in ("/usr/lib/chromium/chromium", shutil.which("chromium") or "",
                      shutil.which("chromium-browser") or ""):
        if candidate and Path(candidate).exists():
            return candidate
    raise RuntimeError("no chromium: run stack/superset/install.sh (apt-get install chromium)")


def _above_10(fd: int) -> int:
    high = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return high


class Browser:
    """A headless Chromium driven through the Chrome DevTools Protocol over
    --remote-debugging-pipe (fd 3: commands in, fd 4: replies out, NUL-separated JSON)."""

    def __init__(self, width: int = 1400, height: int = 1000, stderr=None):
        self.profile = tempfile.mkdtemp(prefix="ecomlake-chromium-")
        cmd_r, self._cmd_w = os.pipe()
        self._res_r, res_w = os.pipe()
        # The child's ends move above fd 10 first, so that placing them on 3 and 4 cannot
        # clobber one another.
        cmd_r, res_w = _above_10(cmd_r), _above_10(res_w)
        args = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--no-default-browser-check",
                "--disable-extensions", "--hide-scrollbars", "--mute-audio",
                f"--window-size={width},{height}", f"--user-data-dir={self.profile}",
                "--remote-debugging-pipe", "about:blank"]
        self.proc = subprocess.Popen(
            ["/bin/bash", "-c", f'exec "$0" "$@" 3<&{cmd_r} 4>&{res_w} {cmd_r}<&- {res_w}>&-',
             chromium_binary(), *args],
            pass_fds=(cmd_r, res_w), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=stderr or subprocess.DEVNULL, start_new_session=True)
        os.close(cmd_r)
        os.close(res_w)
        self._next = 0
        self._replies: dict[int, queue.Queue] = {}
        self.events: list[dict] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._reader, daemon=True).start()
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.send("Target.attachToTarget",
                                 {"targetId": target, "flatten": True})["sessionId"]
        for method in ("Page.enable", "Runtime.enable", "Network.enable"):
            self.send(method, session=True)
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
                  session=True)

    def _reader(self) -> None:
        buf = b""
        while True:
            try:
                chunk = os.read(self._res_r, 1 << 16)
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                msg = json.loads(raw)
                if "id" in msg:
                    with self._lock:
                        q = self._replies.get(msg["id"])
                    if q:
                        q.put(msg)
                else:
                    self.events.append(msg)

    def send(self, method: str, params: dict | None = None, *, session: bool = False,
             timeout: float = 60):
        with self._lock:
            self._next += 1
            msg_id = self._next
            self._replies[msg_id] = q = queue.Queue()
        msg = {"id": msg_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = self.session
        os.write(self._cmd_w, json.dumps(msg).encode() + b"\0")
        try:
            reply = q.get(timeout=timeout)
        except queue.Empty:
            raise RuntimeError(f"chromium: no reply to {method} within {timeout}s") from None
        finally:
            with self._lock:
                self._replies.pop(msg_id, None)
        if "error" in reply:
            raise RuntimeError(f"chromium: {method}: {reply['error']}")
        return reply.get("result", {})

    def eval(self, expression: str):
        res = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                             "awaitPromise": True}, session=True)
        if "exceptionDetails" in res:
            raise RuntimeError(f"chromium: script failed: {res['exceptionDetails']}")
        return res["result"].get("value")

    def goto(self, url: str) -> None:
        self.send("Page.navigate", {"url": url}, session=True)

    def wait_for(self, expression: str, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = self.eval(expression)
            except RuntimeError:
                value = None        # navigating: the context is being replaced
            if value:
                return value
            if time.monotonic() > deadline:
                raise RuntimeError(f"chromium: timed out after {timeout:.0f}s waiting for {what}")
            time.sleep(0.5)

    def screenshot(self, path: Path, height: int | None = None, width: int = 1400) -> None:
        if height:
            self.send("Emulation.setDeviceMetricsOverride",
                      {"width": width, "height": height, "deviceScaleFactor": 1,
                       "mobile": False}, session=True)
            time.sleep(1.0)
        data = self.send("Page.captureScreenshot", {"format": "png"}, session=True)["data"]
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=5)
        except Exception:  # noqa: BLE001 - closing anyway
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        for fd in (self._cmd_w, self._res_r):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self.profile, ignore_errors=True)


# One entry per chart holder on the dashboard page: its title, whether it is still loading,
# whether it shows an error, and whether something was drawn (canvas/svg/table/big number or
# Superset's "No results" empty state).
_CHART_STATES_JS = r"""
(() => {
  const holders = [...document.querySelectorAll('[data-test="dashboard-component-chart-holder"]')];
  return holders.map(h => {
    const title = (h.querySelector('[data-test="editable-title"], .header-title, [data-test="slice-header"]') || {}).innerText || '';
    const text = h.innerText || '';
    const error = !!h.querySelector('.ant-alert-error, [data-test="error-tooltip"], .alert-danger')
      || /Unexpected error|DB engine Error|An error occurred|Error:/.test(text);
    const loading = !!h.querySelector('.loading, [data-test="loading-indicator"], [aria-label="Loading"]');
    const empty = /No results|No data/.test(text);
    const drawn = !!h.querySelector('canvas, svg, table, .header-line, [data-test="big-number-total"], .superset-legacy-chart-big-number');
    const r = h.getBoundingClientRect();
    return {title: title.trim().split('\n')[0], error, loading, empty, drawn,
            bottom: r.bottom + window.scrollY, text: error ? text.slice(0, 500) : ''};
  });
})()
"""


def filter_url_param(dashboard_key: str, values: dict[str, list]) -> str:
    """The `native_filters` URL parameter (Rison) that opens a dashboard with its native
    filters on `values` ({column: [values]}), as if chosen in the filter bar."""
    parts = {}
    for column, vals in values.items():
        fid = f"NATIVE_FILTER-{dashboard_key}-{column}"
        parts[fid] = {"id": fid, "extraFormData": {"filters": [
                          {"col": column, "op": "IN", "val": list(vals)}]},
                      "filterState": {"value": list(vals)}, "ownState": {}}
    return "native_filters=" + urllib.parse.quote(_rison(parts))


def log_in(browser: "Browser", user: str, pw: str, attempts: int = 4) -> None:
    """Log in through Superset's login form. The form is drawn by React: a value set or a click
    that lands before its handlers are attached is lost and the page stays on /login (seen once
    in CI under load), so each attempt reloads the form and tries again."""
    for attempt in range(1, attempts + 1):
        browser.goto(f"{base_url()}/login/")
        browser.wait_for("!!document.querySelector('input[type=password]') || "
                         "!location.pathname.startsWith('/login')", 60, "the login form")
        if browser.eval("!location.pathname.startsWith('/login')"):
            return   # an earlier attempt got through after all
        time.sleep(0.5 * attempt)   # give the form's scripts time to attach, more each attempt
        browser.eval("""((user, pw) => {
          const set = (el, v) => {
            Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value').set.call(el, v);
            el.dispatchEvent(new Event('input', {bubbles: true}));
            el.dispatchEvent(new Event('change', {bubbles: true}));
          };
          set(document.querySelector('input#username, input[name=username], input[autocomplete=username], input[type=text]'), user);
          set(document.querySelector('input[type=password]'), pw);
          return true;
        })(%s, %s)""" % (json.dumps(user), json.dumps(pw)))
        time.sleep(0.3)
        browser.eval("""(() => { const b = document.querySelector(
            'button[type=submit], [data-test="login-button"], form button');
            b.click(); return true; })()""")
        try:
            browser.wait_for("!location.pathname.startsWith('/login')", 20, "the login to succeed")
            return
        except RuntimeError:
            if attempt == attempts:
                raise RuntimeError(f"chromium: still on Superset's login page after {attempts} "
                                   "attempts: check the admin password in .local/stack.env and "
                                   ".local/log/superset.log") from None


def screenshots(cfg: Config, out_dir: Path | None = None, *, timeout: float = 120,
                client: Client | None = None,
                filters: dict[str, dict[str, list]] | None = None) -> list[dict]:
    """Log in with headless Chromium, open each provisioned dashboard, wait until every chart
    has rendered (or failed), save <out_dir>/<slug>.png. Returns, per dashboard, the state of
    each chart and the data each chart's query returned to the browser (by chart id)."""
    out_dir = Path(out_dir or cfg.stack_dir / "artifacts" / "bi")
    out_dir.mkdir(parents=True, exist_ok=True)
    client = client or Client(cfg)
    boards = dashboards(client)
    user, pw = credentials(cfg)
    browser = Browser()
    results = []
    try:
        log_in(browser, user, pw)
        for board in boards:
            t0 = time.monotonic()
            n_events = len(browser.events)
            query = f"?{filter_url_param(board['key'], filters[board['key']])}" \
                if filters and board["key"] in filters else ""
            browser.goto(f"{base_url()}/superset/dashboard/{board['slug']}/{query}")
            expected = len(board["charts"])
            browser.wait_for(
                f"(() => {{ const s = {_CHART_STATES_JS}; return s.length >= {expected} && "
                "s.every(c => !c.loading && (c.error || c.drawn || c.empty)); })()",
                timeout, f"the charts of dashboard `{board['title']}`")
            time.sleep(2.0)          # chart animations
            states = browser.eval(_CHART_STATES_JS)
            height = int(max([s["bottom"] for s in states] + [800])) + 40
            png = out_dir / f"{board['slug']}{'-filtered' if query else ''}.png"
            browser.screenshot(png, height=height)
            browser.send("Emulation.setDeviceMetricsOverride",
                         {"width": 1400, "height": 1000, "deviceScaleFactor": 1,
                          "mobile": False}, session=True)
            results.append({"dashboard": board["title"], "slug": board["slug"],
                            "screenshot": str(png), "charts": states,
                            "seconds": round(time.monotonic() - t0, 1),
                            "data": _chart_data(browser, browser.events[n_events:])})
    finally:
        browser.close()
    return results


def _chart_data(browser: Browser, events: list[dict]) -> dict[int, dict]:
    """What each chart asked /api/v1/chart/data for and got, by chart id: {"filters": the
    query's filters (the dashboard's native filters arrive here), "rows": the data}."""
    requests, filters = {}, {}
    for e in events:
        if e.get("method") == "Network.requestWillBeSent":
            req = e["params"]["request"]
            if "/api/v1/chart/data" in req["url"] and req.get("postData"):
                try:
                    body = json.loads(req["postData"])
                except ValueError:
                    continue
                slice_id = (body.get("form_data") or {}).get("slice_id")
                if slice_id:
                    requests[e["params"]["requestId"]] = int(slice_id)
                    filters[int(slice_id)] = [f for q in body.get("queries", [])
                                              for f in q.get("filters", [])]
    out: dict[int, dict] = {}
    for request_id, slice_id in requests.items():
        try:
            res = browser.send("Network.getResponseBody", {"requestId": request_id},
                               session=True)
            body = res["body"] if not res.get("base64Encoded") else \
                base64.b64decode(res["body"]).decode()
            out[slice_id] = {"filters": filters[slice_id],
                             "rows": json.loads(body)["result"][0]["data"]}
        except (RuntimeError, ValueError, KeyError, IndexError):
            continue
    return out


# -- the `ecomlake bi` command -------------------------------------------------------------
def up(cfg: Config) -> tuple[str, dict[str, int]]:
    started = start(cfg)
    t0 = time.monotonic()
    result = provision(cfg)
    log.info("superset: provisioned in %.1fs", time.monotonic() - t0)
    return started, result


def cmd_bi(args, cfg: Config) -> int:
    if args.action == "up":
        started, n = up(cfg)
        print(f"superset  {base_url()}  {started}")
        print(f"provisioned: {n['database']} database(s), {n['dataset']} datasets, "
              f"{n['chart']} charts, {n['dashboard']} dashboards")
        for d in load_assets()["dashboards"].values():
            print(f"  {d['title']:<14} {base_url()}/superset/dashboard/{d['slug']}/")
        print(f"login: user {ADMIN}, password {PASSWORD_VAR} in "
              f"{cfg.stack_dir / 'stack.env'}")
    elif args.action == "provision":
        n = provision(cfg)
        print(f"provisioned: {n['database']} database(s), {n['dataset']} datasets, "
              f"{n['chart']} charts, {n['dashboard']} dashboards")
    elif args.action == "down":
        print("superset  stopped" if stop(cfg) else "superset  was not running")
    elif args.action == "status":
        if not healthy():
            print(f"superset  {base_url()}  NOT ANSWERING")
            return 1
        n = counts(Client(cfg))
        print(f"superset  {base_url()}  answers; {n['database']} database(s), "
              f"{n['dataset']} datasets, {n['chart']} charts, {n['dashboard']} dashboards")
    elif args.action == "screenshots":
        bad = 0
        for r in screenshots(cfg, args.out):
            errors = [c["title"] for c in r["charts"] if c["error"]]
            bad += len(errors)
            print(f"{r['dashboard']:<14} {len(r['charts'])} charts, {len(errors)} with errors "
                  f"({r['seconds']}s)  {r['screenshot']}" +
                  (f"  ERRORS: {', '.join(errors)}" if errors else ""))
        return 1 if bad else 0
    return 0


def add_cli(subparsers) -> None:
    """Register `ecomlake bi up|down|status|provision|screenshots`."""
    b = subparsers.add_parser("bi", help="Superset dashboards on the warehouse (start, stop, "
                              "provision, screenshots)", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    b.add_argument("action", choices=["up", "down", "status", "provision", "screenshots"])
    b.add_argument("--out", type=Path, default=None,
                   help="screenshots: folder for the PNGs (default .local/artifacts/bi)")
    b.set_defaults(func=cmd_bi)
