#!/usr/bin/env bash
# Airflow against the local stack: SQLite metadata DB, DAGs from airflow_dags/, loopback only.
#
#   stack/airflow/run.sh up                     scheduler, DAG processor, triggerer and the API
#                                               server/UI on http://127.0.0.1:$AIRFLOW_PORT (Ctrl-C stops)
#   stack/airflow/run.sh dags-test [DATE]       one whole run of ecommerce_daily for DATE (default
#                                               today, UTC), in this process, no scheduler needed
#   stack/airflow/run.sh <airflow args...>      any airflow command in this environment,
#                                               e.g. `run.sh dags list-import-errors`
#
# Environment: AIRFLOW_HOME (default .local/airflow/home), AIRFLOW_PORT (default 18080). Needs
# stack/airflow/install.sh (Airflow's virtualenv) and `ecomlake stack up` (servers, passwords).
#
# Connections are passed as AIRFLOW_CONN_* environment variables, never written to the DB:
#   spark_default      master local[*]
#   ecomlake_mysql, ecomlake_postgres, ecomlake_db2
#                      the local servers from conf/<env>.yaml; passwords from the environment
#                      (ECOMLAKE_*_PASSWORD) or else from .local/stack.env
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="$ROOT/.local/airflow/venv"
if [[ ! -x "$VENV/bin/airflow" ]]; then
  echo "run.sh: no Airflow at $VENV. Run stack/airflow/install.sh first." >&2; exit 2
fi

export AIRFLOW_HOME="${AIRFLOW_HOME:-$ROOT/.local/airflow/home}"
mkdir -p "$AIRFLOW_HOME"
export AIRFLOW__CORE__DAGS_FOLDER="$ROOT/airflow_dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
# 2 cores, and each Spark driver takes 4g: a few task slots are plenty (the default is 32).
export AIRFLOW__CORE__PARALLELISM="${AIRFLOW__CORE__PARALLELISM:-4}"
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="sqlite:///$AIRFLOW_HOME/airflow.db"
export AIRFLOW__API__HOST=127.0.0.1
export AIRFLOW__API__PORT="${AIRFLOW_PORT:-18080}"
export AIRFLOW__API__BASE_URL="http://127.0.0.1:${AIRFLOW_PORT:-18080}"
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="http://127.0.0.1:${AIRFLOW_PORT:-18080}/execution/"
export ECOMLAKE_ENV="${ECOMLAKE_ENV:-local}"
export SPARK_LOCAL_IP=127.0.0.1
export PATH="$VENV/bin:$PATH"

# The connections, from the project's config (one source for hosts, ports, users).
eval "$("$VENV/bin/python" - <<'PYEOF'
import json, os, shlex
from ecomlake.config import load_config

cfg = load_config(os.environ["ECOMLAKE_ENV"])
conns = {"spark_default": {"conn_type": "spark", "host": "local[*]"}}
for server, conn_type in (("mysql", "mysql"), ("postgres", "postgres"), ("db2", "db2")):
    s = getattr(cfg, server)
    conns[f"ecomlake_{server}"] = {"conn_type": conn_type, "host": s.host, "port": s.port,
                                   "schema": s.database, "login": s.user,
                                   "password": cfg.secret(server)}
for conn_id, conn in conns.items():
    print(f"export AIRFLOW_CONN_{conn_id.upper()}={shlex.quote(json.dumps(conn))}")
PYEOF
)"

# Create or upgrade the metadata DB (a no-op when current).
migrate() { airflow db migrate >"$AIRFLOW_HOME/db-migrate.log" 2>&1 \
  || { cat "$AIRFLOW_HOME/db-migrate.log" >&2; exit 1; }; }

case "${1:-}" in
  ""|-h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//' ;;
  up)
    # What `airflow standalone` starts, minus its log servers: those listen on every interface
    # (serve-logs binds "" with no setting), and one machine reads its logs from disk anyway.
    # Each component runs in its own session, so that Ctrl-C reaches only this script, which
    # then stops them in order (LocalExecutor's workers ignore SIGTERM: the group gets SIGKILL
    # if it is still there after 20 s).
    migrate
    groups=()
    start() { setsid "$@" & groups+=($!); }
    stop() {
      trap - EXIT INT TERM
      echo "run.sh: stopping Airflow (process groups ${groups[*]})"
      for g in "${groups[@]}"; do kill -TERM -- "-$g" 2>/dev/null || true; done
      for _ in $(seq 20); do
        local alive=0
        for g in "${groups[@]}"; do kill -0 -- "-$g" 2>/dev/null && alive=1; done
        [[ $alive == 0 ]] && return 0
        sleep 1
      done
      for g in "${groups[@]}"; do kill -KILL -- "-$g" 2>/dev/null || true; done
    }
    trap stop EXIT
    trap 'exit 130' INT TERM
    start airflow api-server --host 127.0.0.1 --port "$AIRFLOW__API__PORT"
    start airflow scheduler --skip-serve-logs
    start airflow dag-processor
    start airflow triggerer --skip-serve-logs
    echo "run.sh: Airflow UI on http://127.0.0.1:$AIRFLOW__API__PORT (user admin, password in" \
         "$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated); Ctrl-C stops"
    wait -n; exit $? ;;
  dags-test)
    migrate
    exec airflow dags test ecommerce_daily "${2:-$(date -u +%F)}" ;;
  *) exec airflow "$@" ;;
esac
