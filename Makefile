# The README's two commands: `make demo` (runs the main job on the embedded default) and
# `make test` (the whole suite; .ci/run calls it). Both set up whatever is missing first, and
# reuse what is already there, so a second run is much faster.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
ECOMLAKE := $(VENV)/bin/ecomlake
RUN_DATE ?= $(shell date -u +%F)
export SPARK_LOCAL_IP := 127.0.0.1

AIRFLOW_PY := .local/airflow/venv/bin/python

.PHONY: setup demo test stack-up stack-down stack-status clean-lake help airflow airflow-up airflow-dags-test notebook superset bi bi-down

help:
	@echo "make demo    set up, start the local stack, load the course data, run the pipeline"
	@echo "make test    set up, start the local stack, run the whole test suite"
	@echo "make setup   only install: virtualenv, Python packages, Spark jars"
	@echo "make stack-up | stack-down | stack-status"
	@echo "make airflow | airflow-up | airflow-dags-test   Airflow in its own virtualenv"
	@echo "make bi        Superset on http://127.0.0.1:18089 with the dashboards (after make demo); make bi-down"
	@echo "make notebook  Jupyter Lab on 127.0.0.1:18888 over notebooks/ (gold tables, after make demo)"

# Python packages (pinned in setup.py) and the Spark jars (pinned in stack/jars/pom.xml).
# The stamp files make a second run skip what is already installed.
setup: .local/stamps/venv .local/stamps/jars

.local/stamps/venv: setup.py
	@mkdir -p .local/stamps
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@touch $@

.local/stamps/jars: stack/jars/pom.xml
	@mkdir -p .local/stamps
	rm -rf .local/jars/spark
	mvn -q -B -f stack/jars/pom.xml dependency:copy-dependencies -DoutputDirectory=$(CURDIR)/.local/jars/spark
	@touch $@

stack-up: setup
	$(ECOMLAKE) stack up

stack-down:
	$(ECOMLAKE) stack down

stack-status:
	$(ECOMLAKE) stack status

demo: stack-up
	$(ECOMLAKE) load-capstone
	./spark-submit.sh pipeline --run-date $(RUN_DATE)
	@echo
	@echo "Lake (Delta tables):      .local/warehouse/{bronze,silver,gold}/<table>"
	@echo "PostgreSQL (staging):     psql -h 127.0.0.1 -p 15432 -U ecomlake warehouse   (password: .local/stack.env)"
	@echo "DB2 path (Derby DRDA):    jdbc:db2://127.0.0.1:1527/ecomdb, schema APP"

# Airflow in its own virtualenv (its Spark provider pulls pyspark-client, which would overwrite
# pyspark's files in .venv). Idempotent.
airflow:
	stack/airflow/install.sh

airflow-up: airflow stack-up
	stack/airflow/run.sh up

airflow-dags-test: airflow stack-up
	stack/airflow/run.sh dags-test $(RUN_DATE)

# The DAG tests run in Airflow's virtualenv (--confcutdir keeps tests/conftest.py, which needs
# pyspark, out of it); everything else in the project's. Prints the suite's wall time (set-up
# excluded) and, through pytest.ini, the ten slowest tests.
test: stack-up airflow superset
	@start=$$(date +%s); rc=0; \
	$(AIRFLOW_PY) -m pytest -p no:cacheprovider --confcutdir=tests/dags tests/dags || rc=$$?; \
	if [ $$rc -eq 0 ]; then $(PY) -m pytest tests || rc=$$?; fi; \
	s=$$(( $$(date +%s) - start )); \
	echo "make test: test suite wall time $$((s / 60)) min $$((s % 60)) s ($$s s), exit $$rc"; \
	exit $$rc

# Apache Superset in its own virtualenv (pins in stack/superset/requirements.txt), plus Debian's
# chromium and chromium-driver (Selenium's WebDriver) for the dashboard tests. Idempotent.
superset:
	stack/superset/install.sh

bi: superset stack-up
	$(ECOMLAKE) bi up

bi-down:
	$(ECOMLAKE) bi down

NOTEBOOK_PORT ?= 18888

.local/stamps/notebook: setup.py .local/stamps/venv
	$(PY) -m pip install -q -e '.[test,notebook]'
	@touch $@

# Jupyter Lab on 127.0.0.1 over notebooks/, reading the lake of conf/local.yaml
# (ECOMLAKE_OVERRIDES / ECOMLAKE_ENV point it elsewhere). --allow-root: CI and these machines run as root.
notebook: .local/stamps/notebook .local/stamps/jars
	$(VENV)/bin/jupyter lab --no-browser --allow-root --ServerApp.ip=127.0.0.1 \
	  --ServerApp.port=$(NOTEBOOK_PORT) --ServerApp.root_dir=notebooks

clean-lake:
	rm -rf .local/warehouse
