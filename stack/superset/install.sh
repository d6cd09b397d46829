#!/usr/bin/env bash
# Install Apache Superset (pins in stack/superset/requirements.txt) into its own virtualenv,
# .local/superset/venv, and Debian's chromium + chromium-driver (the headless browser, driven
# through Selenium from the project's .venv, that checks the dashboards). Idempotent: a second run only checks, unless requirements.txt changed.
#
#   stack/superset/install.sh            install or check
#   SUPERSET_PYTHON=python3.11 ...       the interpreter to build the virtualenv from
#
# Superset lives apart from the project's .venv on purpose: it pins its own pandas, Flask,
# SQLAlchemy 1.4 and pyarrow. `ecomlake bi up` (lib/ecomlake/ops/bi/server.py) starts it from here.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
REQ="$ROOT/stack/superset/requirements.txt"
BASE="$ROOT/.local/superset"
VENV="$BASE/venv"
PYTHON="${SUPERSET_PYTHON:-python3.11}"

say() { echo "superset-install: $*"; }

"$ROOT/stack/venv-install.sh" superset "$REQ" "$BASE" "$PYTHON"

# The headless browser for the dashboard check: Debian's chromium and its WebDriver,
# chromium-driver (/usr/bin/chromedriver), which Selenium drives (no browser or driver
# download). --no-install-recommends keeps it to the browser and its libraries;
# fonts-liberation gives the charts' text a font.
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  say "installing Debian's chromium and chromium-driver (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  PKGS=(chromium chromium-driver fonts-liberation)
  apt-get install -y -q --no-install-recommends "${PKGS[@]}" >/dev/null \
    || { apt-get update -q >/dev/null && \
         apt-get install -y -q --no-install-recommends "${PKGS[@]}" >/dev/null; }
fi

say "superset $("$VENV/bin/python" -c 'from importlib.metadata import version; print(version("apache-superset"))') at $VENV/bin/superset; $(chromium --version 2>/dev/null | head -1); $(chromedriver --version 2>/dev/null | head -1)"
