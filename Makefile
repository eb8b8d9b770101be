# `make demo` and `make test` build .venv themselves on a fresh machine; both are idempotent.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo/digits

.PHONY: venv demo test lint clean

venv: $(STAMP)

# Reinstall only when the project's requirements change. constraints.txt pins every package
# (the full tested set), pyproject.toml holds the supported ranges.
$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) is required"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip==26.3"
	$(PY) -m pip install -q -c constraints.txt -e ".[tensorflow-cpu,dev]"
	touch $(STAMP)

demo: $(STAMP)
	rm -rf $(DEMO_DIR)
	$(PY) -m airflow_tfexp.experiment \
	  --experiment-fn airflow_tfexp.examples.digits:experiment_fn \
	  --model-dir $(DEMO_DIR) --schedule train_and_evaluate

test: $(STAMP)
	$(VENV)/bin/ruff check airflow_tfexp tests dags
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check airflow_tfexp tests dags

clean:
	rm -rf $(VENV) demo test-artifacts
