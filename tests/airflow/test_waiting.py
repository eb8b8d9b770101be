"""Deferrable waiting under dag.test(): files appear while the (inline) trigger waits."""

from __future__ import annotations

import os
import socket

import pytest

from airflow_tfexp.experiment.evaluation.coordination import read_completion_marker
from airflow_tfexp.experiment.evaluation.results import read_results
from tests.airflow.conftest import load_dag, task_instances
from tests.experiment.processes import wait_until

pytestmark = pytest.mark.slow


def test_deferrable_sensor_returns_new_checkpoints_for_mapped_evaluation(airflow_db, tmp_path):
    model_dir = str(tmp_path / "model")
    dag = load_dag("tfexp_test_sensor_deferred")
    run = dag.test(run_conf={"model_dir": model_dir, "train_steps": 60, "step_sleep_secs": 0.05})
    assert run.state == "success"
    tis = task_instances(dag, run)
    (wait,) = [ti for ti in tis if ti.task_id == "wait"]
    assert wait.state == "success"
    # No checkpoint existed when the sensor started (the trainer was still importing
    # TensorFlow), and a deferrable sensor has no other way to wait: it deferred and resumed.
    assert dag.get_task("wait").deferrable
    evaluated = sorted(r["global_step"] for r in read_results(model_dir, None))
    # The sensor fired on the first checkpoint(s) after step 20; one evaluation each.
    assert evaluated and min(evaluated) > 20
    assert len([ti for ti in tis if ti.task_id == "evaluate"]) == len(evaluated)
    wait_until(
        lambda: read_completion_marker(model_dir) is not None, 60, what="background training"
    )


@pytest.mark.parametrize(
    "dag_id", ["tfexp_test_continuous_eval", "tfexp_test_continuous_eval_deferring"]
)
def test_deferrable_continuous_eval_evaluates_every_checkpoint_then_finishes(
    airflow_db, tmp_path, dag_id
):
    model_dir = str(tmp_path / "model")
    dag = load_dag(dag_id)
    run = dag.test(run_conf={"model_dir": model_dir, "train_steps": 80, "step_sleep_secs": 0.05})
    assert run.state == "success"
    evaluated = [r["global_step"] for r in read_results(model_dir, "continuous")]
    assert evaluated == [0, 20, 40, 60, 80]  # every checkpoint, in order, once
    # Evaluation interleaved with training: the first checkpoint was evaluated before training
    # completed and the last once the final checkpoint existed, so passes ran on both sides of
    # a wait (in the worker, or in the triggerer for the deferring variant). The trainer writes
    # its completion marker just after its last checkpoint, which the evaluator may have
    # evaluated (and finished on) first: the marker is not an upper bound.
    records = read_results(model_dir, "continuous")
    wait_until(
        lambda: read_completion_marker(model_dir) is not None, 60, what="the completion marker"
    )
    completed_at = read_completion_marker(model_dir)["wall_time"]
    last_written = os.path.getmtime(os.path.join(model_dir, "ckpt-80.index"))
    assert records[0]["wall_time"] < completed_at
    assert records[0]["wall_time"] < last_written <= records[-1]["wall_time"]
    (ti,) = [ti for ti in task_instances(dag, run) if ti.task_id == "continuous_eval"]
    result = ti.xcom_pull(task_ids="continuous_eval", key="return_value")
    assert result["global_step"] == 80 and "train_steps=80" in result["finished"]
    # dag.test() does not carry the evaluated steps across a deferral: all of them in the result
    # means one execution evaluated them all (it waited in the worker); fewer, that it deferred.
    if dag_id == "tfexp_test_continuous_eval":
        assert result["evaluated_steps"] == evaluated
    else:
        assert result["evaluated_steps"] != evaluated
    assert read_completion_marker(model_dir)["global_step"] == 80

    # A re-run (a retry) of the same evaluation on the same model dir evaluates nothing again.
    rerun = dag.test(run_conf={"model_dir": model_dir, "train_steps": 80, "step_sleep_secs": 0.05})
    assert rerun.state == "success"
    assert [r["global_step"] for r in read_results(model_dir, "continuous")] == evaluated


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return sock.getsockname()[1]


def test_std_server_operator_exits_after_training_completes(airflow_db, tmp_path):
    model_dir = str(tmp_path / "model")
    ps_tf_config = {
        "cluster": {"chief": [f"localhost:{free_port()}"], "ps": [f"localhost:{free_port()}"]},
        "task": {"type": "ps", "index": 0},
    }
    dag = load_dag("tfexp_test_std_server")
    run = dag.test(
        run_conf={
            "model_dir": model_dir,
            "train_steps": 100,
            "step_sleep_secs": 0.08,
            "ps_tf_config": ps_tf_config,
        }
    )
    assert run.state == "success"
    (ps,) = [ti for ti in task_instances(dag, run) if ti.task_id == "ps"]
    assert ps.state == "success"
    assert read_completion_marker(model_dir)["global_step"] == 100
    assert "TF_CONFIG" not in os.environ  # the operator restored the environment


def test_under_dag_test_a_deferred_sensor_with_no_trainer_fails_fast(
    airflow_db, tmp_path, monkeypatch, capsys, caplog
):
    """The README's sensor, its training task not run yet: dag.test() runs the trigger inline
    while nothing else runs, so waiting could never end (it hung until the sensor's timeout)."""
    import airflow_tfexp.triggers.checkpoint as trigger_module

    monkeypatch.setattr(trigger_module, "INLINE_NO_TRAINER_SECS", 1.0)
    caplog.set_level("INFO")
    model_dir = str(tmp_path / "model")
    os.makedirs(model_dir)
    dag = load_dag("tfexp_test_sensor_without_trainer")
    run = dag.test(run_conf={"model_dir": model_dir})
    assert run.state == "failed"
    (wait,) = task_instances(dag, run)
    assert wait.state == "failed"
    logged = caplog.text + capsys.readouterr().out
    assert "no trainer became active and no checkpoint came" in logged
    assert "wait: reschedule" in logged and "downstream of the training task" in logged
