"""BI: Apache Superset on the warehouse, with its dashboards provisioned from files (as code).

    ecomlake bi up           start Superset on http://127.0.0.1:18089 (in the background), wait
                             until /health answers, then provision (below). Needs
                             stack/superset/install.sh (`make bi` runs both) and `stack up`
    ecomlake bi provision    (re)apply the database connections, datasets, charts and
                             dashboards of stack/superset/assets/ through Superset's REST API;
                             applying twice changes nothing (stable UUIDs, overwrite)
    ecomlake bi status       does Superset answer; how many charts and dashboards it has
    ecomlake bi down         stop Superset (its metadata database stays)
    ecomlake bi screenshots  headless chromium (Debian's `chromium` + `chromium-driver`, driven
                             by Selenium) logs in, opens each dashboard, waits for its charts,
                             fails if one shows an error or a warning, and saves a PNG per
                             dashboard (--out DIR, default .local/artifacts/bi)

Superset lives in its own virtualenv (.local/superset/venv) with a SQLite metadata database
(.local/superset/superset.db); its log is .local/log/superset.log. The admin user is `admin`;
its password (ECOMLAKE_SUPERSET_PASSWORD) and Superset's SECRET_KEY
(ECOMLAKE_SUPERSET_SECRET_KEY) are generated once into .local/stack.env, like the stack's
passwords, and never printed. The PostgreSQL connection comes from conf/<env>.yaml
(`postgres`); a DB2 connection (ibm_db_sa) is added when DB2_URL, DB2_USER and DB2_PASSWORD
are set.

The package, by responsibility: `server` (Superset's process and metadata database, under
ecomlake.ops.supervise), `assets` (the asset files -> Superset's import bundle), `client` (the
REST API on requests), `provision` (apply the bundle, read back dashboards), `browser` (the
Selenium checks and screenshots) and `cli` (`ecomlake bi ...`).
"""
from ecomlake.ops.bi.assets import (ASSETS_DIR, build_bundle, chart_params, chart_query,
                                    load_assets)
from ecomlake.ops.bi.cli import add_cli, cmd_bi
from ecomlake.ops.bi.client import ApiError, Client
from ecomlake.ops.bi.provision import counts, dashboards, provision, up
from ecomlake.ops.bi.server import (ADMIN, PASSWORD_VAR, base_url, credentials, healthy, paths,
                                    start, stop)

__all__ = ["ADMIN", "ASSETS_DIR", "ApiError", "Client", "PASSWORD_VAR", "add_cli", "base_url",
           "build_bundle", "chart_params", "chart_query", "cmd_bi", "counts", "credentials",
           "dashboards", "filter_url_param", "healthy", "load_assets", "paths", "provision",
           "screenshots", "start", "stop", "up"]


def __getattr__(name: str):
    """`screenshots` and `filter_url_param` load Selenium (about a second): only when used."""
    if name in ("screenshots", "filter_url_param"):
        from ecomlake.ops.bi import browser
        return getattr(browser, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
