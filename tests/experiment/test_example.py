"""The digits example, as `make demo` runs it, reaches a meaningful accuracy."""

from __future__ import annotations

import os

import pytest

from tests.experiment.processes import last_json_line, run_cli

pytestmark = pytest.mark.slow


def test_digits_example_trains_evaluates_and_exports(tmp_path):
    result = run_cli(
        tmp_path / "digits",
        "train_and_evaluate",
        experiment_fn="airflow_tfexp.examples.digits:experiment_fn",
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = last_json_line(result.stdout)
    assert summary["metrics"]["global_step"] == 1000
    assert summary["metrics"]["accuracy"] >= 0.93  # 10 classes: chance is 0.1
    latest, best = summary["export_paths"]
    assert os.path.exists(os.path.join(latest, "saved_model.pb"))
    assert os.path.exists(os.path.join(best, "saved_model.pb"))
    assert "training step 1000/1000" in result.stderr  # progress lines reach the task log
