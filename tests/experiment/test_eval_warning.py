"""An evaluation with `eval_steps=None` over an input that never ends runs forever: it warns
after `[tfexp] eval_warn_batches` batches (TFEXP_EVAL_WARN_BATCHES), and again each time as
many more pass, saying what to set."""

from __future__ import annotations

import logging

import pytest

from airflow_tfexp.experiment import RunConfig
from airflow_tfexp.experiment.hooks import TrainingHook
from tests.experiment.tiny_experiment import data, experiment_fn


def endless_eval_input():
    import tensorflow as tf

    x, y = data(seed=2)
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(10).repeat()  # a repeat() too many


class StopAfter(TrainingHook):
    def __init__(self, batches: int) -> None:
        self.batches = batches

    def after_step(self, step, logs):
        return step >= self.batches


def test_an_endless_evaluation_warns_each_time_the_count_passes(
    tmp_path, monkeypatch, caplog, capsys
):
    caplog.set_level(logging.WARNING)
    monkeypatch.setenv("TFEXP_EVAL_WARN_BATCHES", "30")
    experiment = experiment_fn(RunConfig(model_dir=str(tmp_path / "model")), {"train_steps": 5})
    experiment.train(delay_secs=0)
    estimator = experiment.estimator
    estimator.evaluate(endless_eval_input, steps=None, hooks=[StopAfter(100)])
    logged = caplog.text + capsys.readouterr().out
    assert logged.count("with eval_steps=None and its input is still producing") == 3  # 40, 60, 100
    assert "Set eval_steps, or [tfexp] eval_warn_batches" in logged
    monkeypatch.setenv("TFEXP_EVAL_WARN_BATCHES", "none")
    with pytest.raises(ValueError, match="TFEXP_EVAL_WARN_BATCHES.*'none'"):
        estimator.evaluate(endless_eval_input, steps=None, hooks=[StopAfter(10)])
