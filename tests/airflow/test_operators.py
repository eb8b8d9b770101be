"""Each operator's execute() on the tiny real experiment: results are small JSON-able dicts."""

from __future__ import annotations

import json

import pytest

from airflow_tfexp.experiment.export.export_dirs import list_exports
from airflow_tfexp.experiment.storage.fs import dirname, filesystem, join
from airflow_tfexp.operators import (
    ContinuousEvalOperator,
    EvaluateOperator,
    ExperimentTestOperator,
    ExportOperator,
    TrainAndEvaluateOperator,
    TrainOperator,
)

TINY = "tests.experiment.tiny_experiment:experiment_fn"


def run(operator_class, model_dir, params=None, **kwargs):
    operator = operator_class(task_id="t", experiment_fn=TINY, model_dir=str(model_dir), **kwargs)
    result = operator.execute({"params": {"train_steps": 40, **(params or {})}})
    json.dumps(result)  # XCom-friendly: plain JSON, never tensors
    return result


def test_train_then_evaluate_export_and_a_retry_that_reuses_the_recorded_evaluation(model_dir):
    trained = run(TrainOperator, model_dir, delay_secs=0)
    assert trained["global_step"] == 40 and trained["completion"]["global_step"] == 40
    assert trained["checkpoint_path"] == join(model_dir, "ckpt-40")

    first = run(
        EvaluateOperator,
        model_dir,
        checkpoint_path={"checkpoint_path": join(model_dir, "ckpt-20"), "global_step": 20},
        name="holdout",
    )
    assert (
        first["global_step"] == 20 and first["reused"] is False and "accuracy" in first["metrics"]
    )
    retry = run(
        EvaluateOperator, model_dir, checkpoint_path=join(model_dir, "ckpt-20"), name="holdout"
    )
    assert retry["reused"] is True and retry["metrics"] == first["metrics"]

    exported = run(ExportOperator, model_dir)
    (path,) = exported["export_paths"]
    assert exported["global_step"] == 40 and list_exports(dirname(path)) == [path]
    assert "saved_model.pb" in filesystem(path).listdir(path)


def test_train_and_evaluate_and_test_operators(tmp_path):
    result = run(TrainAndEvaluateOperator, tmp_path / "a")
    assert result["metrics"]["global_step"] == 40 and len(result["export_paths"]) == 1
    smoke = run(ExperimentTestOperator, tmp_path / "b")
    assert smoke["global_step"] == 1 and smoke["metrics"]["global_step"] == 1


def test_continuous_eval_without_deferral_runs_the_loop_in_the_worker(model_dir):
    run(TrainOperator, model_dir, delay_secs=0)
    result = run(ContinuousEvalOperator, model_dir, deferrable=False, throttle_delay_secs=0)
    assert result["global_step"] == 40 and result["metrics"]["global_step"] == 40


def test_params_are_rendered_and_passed_to_experiment_fn(tmp_path):
    params = {"train_steps": "{{ 6 * 5 }}", "save_checkpoints_steps": 10}
    operator = TrainOperator(
        task_id="t", experiment_fn=TINY, model_dir=str(tmp_path), delay_secs=0, params=params
    )
    result = operator.execute({"params": params, "ds": "x"})
    assert result["global_step"] == 30


def test_an_experiment_fn_that_cannot_be_imported_fails_with_its_cause(tmp_path):
    operator = TrainOperator(
        task_id="t", experiment_fn="tests.no_such_module:experiment_fn", model_dir=str(tmp_path)
    )
    with pytest.raises(ValueError, match="cannot import module 'tests.no_such_module'") as info:
        operator.execute({"params": {}})
    assert isinstance(
        info.value.__cause__, ModuleNotFoundError
    )  # the traceback goes to the task log
