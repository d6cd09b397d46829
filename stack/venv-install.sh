#!/usr/bin/env bash
# Shared by stack/airflow/install.sh and stack/superset/install.sh: build a tool's own virtualenv
# and install its pinned requirements. Idempotent: a second run compares the sha256 of the
# requirements file with the one recorded at the last install and does nothing if they match.
#
#   stack/venv-install.sh NAME REQUIREMENTS BASE_DIR PYTHON
#
# Leaves BASE_DIR/venv, BASE_DIR/installed.sha256 and BASE_DIR/requirements.lock.txt (what pip
# resolved). No constraints file: the tools publish theirs on GitHub, unreachable here; the pins
# are in the requirements file.
set -euo pipefail
NAME="$1" REQ="$2" BASE="$3" PYTHON="$4"
VENV="$BASE/venv"
STAMP="$BASE/installed.sha256"

say() { echo "$NAME-install: $*"; }

if [[ ! -x "$VENV/bin/python" ]]; then
  say "creating virtualenv $VENV ($($PYTHON --version))"
  mkdir -p "$BASE"
  "$PYTHON" -m venv "$VENV"
fi

want="$(sha256sum "$REQ" | cut -d' ' -f1)"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
  say "requirements unchanged since the last install ($REQ): nothing to install"
else
  say "installing $REQ"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -r "$REQ"
  "$VENV/bin/python" -m pip check
  "$VENV/bin/python" -m pip freeze > "$BASE/requirements.lock.txt"
  echo "$want" > "$STAMP"
  say "installed; resolved versions in $BASE/requirements.lock.txt"
fi
