"""EarlyStoppingHook reads another process's results file."""

from __future__ import annotations

import pytest

from airflow_tfexp.experiment import EarlyStoppingHook, TrainingContext
from airflow_tfexp.experiment.evaluation.results import record_result


def evaluator_writes(model_dir, step, loss):
    record_result(model_dir, "continuous", {"global_step": step, "loss": loss}, f"ckpt-{step}", 0.1)


def test_stops_after_patience_evaluations_without_improvement(tmp_path):
    model_dir = str(tmp_path)
    hook = EarlyStoppingHook("loss", mode="min", patience=2, check_interval_secs=0)
    hook.begin(TrainingContext(model_dir, 0, None))
    assert not hook.after_step(1, {})  # no results yet
    evaluator_writes(model_dir, 10, 0.5)
    evaluator_writes(model_dir, 20, 0.4)
    evaluator_writes(model_dir, 30, 0.45)
    assert not hook.after_step(31, {})  # one evaluation without improvement
    evaluator_writes(model_dir, 40, 0.41)
    assert hook.after_step(41, {})
    assert hook.stopped_at == 41 and "not improved for 2 evaluations" in hook.reason


def test_min_delta_and_max_mode(tmp_path):
    model_dir = str(tmp_path)
    hook = EarlyStoppingHook(
        "loss", mode="max", patience=1, min_delta=0.05, model_dir=model_dir, check_interval_secs=0
    )
    evaluator_writes(model_dir, 10, 0.5)
    evaluator_writes(model_dir, 20, 0.53)  # better, but not by min_delta
    assert hook.after_step(21, {})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"metric": ""}, "`metric`"),
        ({"metric": "loss", "mode": "lowest"}, "`mode`"),
        ({"metric": "loss", "patience": 0}, "`patience`"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        EarlyStoppingHook(**kwargs)
