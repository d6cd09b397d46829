"""Superset's configuration for ecomlake (SUPERSET_CONFIG_PATH points here; lib/ecomlake/ops/bi/server.py
sets it). Loopback only, a SQLite metadata database of its own under .local/superset/, and
no secret in this file: the SECRET_KEY comes from the environment, which `ecomlake bi up`
fills from .local/stack.env (generated once, never printed)."""
import os

_HOME = os.environ["ECOMLAKE_SUPERSET_HOME"]          # .local/superset

SECRET_KEY = os.environ["SUPERSET_SECRET_KEY"]
SQLALCHEMY_DATABASE_URI = f"sqlite:///{_HOME}/superset.db?check_same_thread=false"
DATA_DIR = f"{_HOME}/data"
UPLOAD_FOLDER = f"{_HOME}/uploads/"

SUPERSET_WEBSERVER_ADDRESS = "127.0.0.1"
SUPERSET_WEBSERVER_PORT = int(os.environ.get("ECOMLAKE_SUPERSET_PORT", "18089"))
SUPERSET_WEBSERVER_TIMEOUT = 120
WEBDRIVER_BASEURL = f"http://127.0.0.1:{SUPERSET_WEBSERVER_PORT}/"

# No example data, no telemetry, nothing fetched from the internet.
SUPERSET_LOAD_EXAMPLES = False
SCARF_ANALYTICS = False
# The Content-Security-Policy Superset sets by default is fine on loopback; HTTPS is not used.
TALISMAN_ENABLED = False
SESSION_COOKIE_SECURE = False

# Dashboards are provisioned from stack/superset/assets; native filters (year, country) are the
# default filter UI in Superset 6. Cross-filtering lets a click on a bar filter the page.
FEATURE_FLAGS = {
    "DASHBOARD_CROSS_FILTERS": True,
    "ALERT_REPORTS": False,
    "THUMBNAILS": False,
}

# Small datasets, one machine: no result cache needed, but avoid the warning about it.
CACHE_CONFIG = {"CACHE_TYPE": "SimpleCache", "CACHE_DEFAULT_TIMEOUT": 300}
DATA_CACHE_CONFIG = {"CACHE_TYPE": "NullCache"}
FILTER_STATE_CACHE_CONFIG = {"CACHE_TYPE": "SimpleCache", "CACHE_DEFAULT_TIMEOUT": 86400}
EXPLORE_FORM_DATA_CACHE_CONFIG = {"CACHE_TYPE": "SimpleCache", "CACHE_DEFAULT_TIMEOUT": 86400}
RATELIMIT_STORAGE_URI = "memory://"

ROW_LIMIT = 50000
