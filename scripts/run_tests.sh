#!/bin/sh
# make test / make test-fast: Chromium for the UI tests, ruff, then pytest with the given
# arguments; prints the whole wall time last (the suite's budget is checked by it).
set -u
started=$(date +%s)
status=0
if [ "${TFEXP_SKIP_CHROMIUM:-}" != 1 ]; then
    sh scripts/install_chromium.sh || status=$?
fi
if [ "$status" -eq 0 ]; then
    .venv/bin/ruff check airflow_tfexp tests dags scripts bench || status=$?
fi
if [ "$status" -eq 0 ]; then
    .venv/bin/python -m pytest "$@" || status=$?
fi
elapsed=$(( $(date +%s) - started ))
echo "make test: wall time $((elapsed / 60)) min $((elapsed % 60)) s (exit status $status)"
exit "$status"
