# `make demo` and `make test` build .venv themselves on a fresh machine; both are idempotent.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo/digits_factory
AIRFLOW_ENV := AIRFLOW_HOME=$(CURDIR)/.airflow AIRFLOW__CORE__DAGS_FOLDER=$(CURDIR)/dags \
	AIRFLOW__CORE__LOAD_EXAMPLES=False

.PHONY: venv demo airflow test test-fast lint bench clean

venv: $(STAMP)

# Reinstall only when the project's requirements change. constraints.txt pins every package
# (the full tested set), pyproject.toml holds the supported ranges.
$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) is required"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip==26.3"
	$(PY) -m pip install -q -c constraints.txt -e ".[tensorflow-cpu,ray,openlineage,dev]"
	# The editable install leaves a by-product egg-info here; with this dir on PYTHONPATH,
	# Airflow then finds our plugin entry point twice, and the task SDK's plugin loader stops
	# at a duplicate, dropping every plugin after it (the OpenLineage listener among them).
	rm -rf airflow_tfexp.egg-info

	touch $(STAMP)

# The digits experiment as a factory-built DAG (dags/experiments/digits.yaml) under dag.test(),
# on its own Airflow home in .airflow/ (SQLite), then a table of evaluations and the exports.
demo: $(STAMP)
	rm -rf $(DEMO_DIR)
	$(AIRFLOW_ENV) DEMO_MODEL_DIR=$(DEMO_DIR) $(PY) scripts/demo.py

# A real Airflow (scheduler, triggerer, dag-processor, api-server) on the demo's home.
airflow: $(STAMP)
	$(AIRFLOW_ENV) $(VENV)/bin/airflow standalone

# The UI tests drive Debian's headless Chromium: installed here when missing. Tests run on
# TEST_WORKERS xdist workers (see tests/README.md); the wall time is printed last. Three: the
# suite is CPU-bound on two cores at three (both cores ~93% busy): 16-21 min here, serial 24+.
TEST_WORKERS ?= 3
test: $(STAMP)
	sh scripts/run_tests.sh -n $(TEST_WORKERS)

# The engine and the adapters: no Airflow cluster, Ray or browser (under two minutes).
test-fast: $(STAMP)
	TFEXP_SKIP_CHROMIUM=1 sh scripts/run_tests.sh -n 2 -m "not slow" \
		--ignore=tests/e2e

lint: $(STAMP)
	$(VENV)/bin/ruff check airflow_tfexp tests dags scripts bench

bench: $(STAMP)
	$(PY) bench/parse_time.py

clean:
	rm -rf $(VENV) demo .airflow test-artifacts
