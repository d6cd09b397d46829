#!/usr/bin/env bash
# Install Apache Airflow (pins in stack/airflow/requirements.txt) into its own virtualenv,
# .local/airflow/venv. Idempotent: a second run only checks, unless requirements.txt changed.
#
#   stack/airflow/install.sh            install or check
#   AIRFLOW_PYTHON=python3.11 ...       the interpreter to build the virtualenv from
#
# Airflow lives apart from the project's .venv on purpose: the Spark provider depends on
# pyspark-client, which would overwrite pyspark's files there. The DAGs still run the project's
# own spark-submit (.venv/bin/spark-submit), so Spark, Delta and the jars are the project's.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
REQ="$ROOT/stack/airflow/requirements.txt"
BASE="$ROOT/.local/airflow"
VENV="$BASE/venv"
PYTHON="${AIRFLOW_PYTHON:-python3.11}"

say() { echo "airflow-install: $*"; }

"$ROOT/stack/venv-install.sh" airflow "$REQ" "$BASE" "$PYTHON"

# The DAG files (and tests/dags) read the project's Spark settings through ecomlake.config and
# ecomlake.spark, which need only PyYAML (Airflow has it). A .pth file makes lib/ importable
# without installing the package's heavy dependencies (pyspark, delta) into this virtualenv.
SITE="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
if [[ "$(cat "$SITE/ecomlake-lib.pth" 2>/dev/null)" != "$ROOT/lib" ]]; then
  say "adding $ROOT/lib to the virtualenv's path ($SITE/ecomlake-lib.pth)"
  echo "$ROOT/lib" > "$SITE/ecomlake-lib.pth"
fi

say "$("$VENV/bin/airflow" version 2>/dev/null | tail -1 | sed 's/^/airflow /') at $VENV/bin/airflow"
"$VENV/bin/python" -c 'import ecomlake.spark' \
  || { say "ERROR: ecomlake.spark does not import in the Airflow virtualenv" >&2; exit 1; }
