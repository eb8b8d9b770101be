"""Reruns: a completion marker from an earlier run says nothing about this one. Before, a rerun
with `train_steps` raised from 40 to 60 had its evaluator stop at once on the old marker, and
the new checkpoints were never evaluated; the sensor already ignored such markers."""

from __future__ import annotations

import logging
import time

from airflow_tfexp.experiment import RunConfig
from airflow_tfexp.experiment.evaluation.coordination import (
    completions_after,
    current_completion,
    read_completion_marker,
)
from airflow_tfexp.experiment.evaluation.results import evaluated_steps
from tests.experiment.tiny_experiment import experiment_fn

PARAMS = {"save_checkpoints_steps": 20, "keep_checkpoint_max": None}


def test_a_rerun_with_more_train_steps_is_evaluated_to_its_end(tmp_path, caplog, capsys):
    caplog.set_level(logging.INFO)
    model_dir = str(tmp_path / "model")
    config = RunConfig(model_dir=model_dir)
    experiment_fn(config, {**PARAMS, "train_steps": 40}).train()
    assert read_completion_marker(model_dir)["global_step"] == 40
    rerun = experiment_fn(config, {**PARAMS, "train_steps": 60})
    rerun_started = time.time()
    with completions_after(rerun_started):  # what the operators set: their DAG run's start
        # the rerun's evaluator looks before its trainer cleared the old marker
        first = rerun.continuous_eval_pass(name="c")
        assert first.finished is None, first.finished  # not "training complete" at step 40
        assert "before this run started" in caplog.text + capsys.readouterr().out
        assert current_completion(model_dir) is None
        rerun.train()
        last = rerun.continuous_eval_pass(name="c", first=False)
    assert last.finished is not None
    assert evaluated_steps(model_dir, "c") >= {40, 60}
    # outside a run (no start time) the marker is the marker
    assert current_completion(model_dir)["global_step"] == 60
