#!/usr/bin/env bash
# The one way to run a job:  ./spark-submit.sh <job> [--env local|yarn] [job args]
#
#   ./spark-submit.sh --list              the jobs under jobs/
#   ./spark-submit.sh --help              this text
#   ./spark-submit.sh <job> --help        the job's own arguments
#
# It uses the project's virtualenv (.venv, made by `make setup`), ships the ecomlake package to
# the executors with --py-files, passes the jars resolved into .local/jars/spark, and takes the
# master, memory and Spark conf from conf/<env>.yaml. Passwords never go through these
# arguments: jobs read them from the environment or a 600 file (README, "Configuration").
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"

usage() { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; }
jobs_list() { (cd "$ROOT/jobs" && ls *.py | sed 's/\.py$//' | grep -v '^_'); }
envs_list() { (cd "$ROOT/conf" && ls *.yaml | sed 's/\.yaml$//' | grep -v '^_' | grep -v '^tables$'); }

case "${1:-}" in
  ""|-h|--help) usage; echo; echo "jobs: $(jobs_list | tr '\n' ' ')"; echo "envs: $(envs_list | tr '\n' ' ')"; exit 0 ;;
  --list) for j in $(jobs_list); do
            printf '%-10s %s\n' "$j" "$(sed -n '1{s/^"""//;s/"""$//;p}' "$ROOT/jobs/$j.py")"; done; exit 0 ;;
esac

JOB="$1"; shift
if [[ ! -f "$ROOT/jobs/$JOB.py" ]]; then
  echo "spark-submit.sh: unknown job '$JOB'. Valid jobs: $(jobs_list | tr '\n' ' ')" >&2; exit 2
fi

ENV_NAME="${ECOMLAKE_ENV:-local}"
ARGS=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --env) ENV_NAME="${2:-}"; shift 2 ;;
    --env=*) ENV_NAME="${1#--env=}"; shift ;;
    *) ARGS+=("$1"); shift ;;
  esac
done
if [[ ! -f "$ROOT/conf/$ENV_NAME.yaml" || "$ENV_NAME" == tables ]]; then
  echo "spark-submit.sh: unknown env '$ENV_NAME'. Valid envs: $(envs_list | tr '\n' ' ')" >&2; exit 2
fi
if [[ ! -x "$PY" ]]; then
  echo "spark-submit.sh: no virtualenv at $VENV. Run 'make setup' first." >&2; exit 2
fi

if [[ "$ENV_NAME" == yarn ]]; then
  # The local Hadoop's client config (`ecomlake hadoop up`), unless a real cluster's is given.
  export HADOOP_CONF_DIR="${HADOOP_CONF_DIR:-$ROOT/.local/hadoop/conf}"
fi

# Loopback only on these machines; executors must run the virtualenv's python.
export SPARK_LOCAL_IP=127.0.0.1
export PYSPARK_PYTHON="$PY" PYSPARK_DRIVER_PYTHON="$PY"
export ECOMLAKE_ENV="$ENV_NAME" ECOMLAKE_HOME="$ROOT"

# The package as a zip for --py-files, built for this run (cheap, never stale). One file per run:
# Python reads a zip lazily, so a job must never see its zip replaced by a concurrent job's.
# Zips of runs older than two days are removed.
mkdir -p "$ROOT/.local/dist"
find "$ROOT/.local/dist" -name 'ecomlake-*.zip' -mmin +2880 -delete 2>/dev/null || true
ZIP="$ROOT/.local/dist/ecomlake-$(date -u +%Y%m%dT%H%M%S)-$$.zip"
"$PY" -m ecomlake.ops.pyzip "$ZIP" >/dev/null   # the runtime package only (no ecomlake.ops)

# Passwords: from the environment or the mode-600 file $ECOMLAKE_SECRETS_FILE (default
# .local/stack.env). On YARN that file travels with --files into the application's own
# containers; never as --conf (spark.yarn.appMasterEnv.* would put them in argv and the event log).
FILES=()
if [[ "$ENV_NAME" == yarn && -n "${ECOMLAKE_SECRETS_FILE:-}" ]]; then
  FILES=(--files "$ECOMLAKE_SECRETS_FILE")
fi

mapfile -t SUBMIT < <("$PY" -m ecomlake.spark submit-args "$ENV_NAME")
exec "$VENV/bin/spark-submit" "${SUBMIT[@]}" "${FILES[@]}" --name "ecomlake-$JOB" \
  --py-files "$ZIP" "$ROOT/jobs/$JOB.py" --env "$ENV_NAME" "${ARGS[@]}"
