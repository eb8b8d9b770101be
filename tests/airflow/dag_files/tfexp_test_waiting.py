"""Test DAGs: training starts in the background (as on a remote worker) while a deferrable task
waits in the (inline) triggerer for its checkpoints. Parameters come from the run's conf."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime

from airflow.sdk import DAG, task

from airflow_tfexp.operators import (
    ApproveModelOperator,
    ContinuousEvalOperator,
    EvaluateOperator,
    StdServerOperator,
    TrainOperator,
)
from airflow_tfexp.sensors import CheckpointSensor

TINY = "tests.experiment.tiny_experiment:experiment_fn"
MODEL_DIR = "{{ params.model_dir }}"
PARAMS = {
    "model_dir": "/tmp/unused",
    "train_steps": 60,
    "save_checkpoints_steps": 20,
    "step_sleep_secs": 0.02,
}


@task
def start_background_training(params=None, dag_run=None) -> int:
    """Launch the command line trainer and return at once (a remote worker, in miniature)."""
    experiment_params = {k: v for k, v in params.items() if k not in ("model_dir", "tf_config")}
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("TF_CONFIG", None)
    if params.get("tf_config"):
        env["TF_CONFIG"] = json.dumps(params["tf_config"])
    log_path = os.path.join(os.path.dirname(params["model_dir"]), "background-train.log")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "airflow_tfexp.experiment",
            "--experiment-fn",
            TINY,
            "--model-dir",
            params["model_dir"],
            "--schedule",
            "train",
            "--params",
            json.dumps(experiment_params),
        ],
        env=env,
        stdout=open(log_path, "w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return process.pid


with DAG(
    "tfexp_test_sensor_deferred", schedule=None, start_date=datetime(2026, 1, 1), params=PARAMS
):
    started = start_background_training()
    new = CheckpointSensor(
        task_id="wait",
        model_dir=MODEL_DIR,
        after_step=20,
        deferrable=True,
        poke_interval=0.2,
        timeout=120,
        defer_settle_secs=0.5,
    )
    evaluate = EvaluateOperator.partial(
        task_id="evaluate", experiment_fn=TINY, model_dir=MODEL_DIR
    ).expand(checkpoint_path=new.output)
    started >> new


with DAG(
    "tfexp_test_continuous_eval", schedule=None, start_date=datetime(2026, 1, 1), params=PARAMS
):
    start_background_training() >> ContinuousEvalOperator(
        task_id="continuous_eval",
        experiment_fn=TINY,
        model_dir=MODEL_DIR,
        every_checkpoint=True,
        throttle_delay_secs=0.2,
        deferrable=True,  # [tfexp] default_deferrable now follows [operators], False here
    )


with DAG(
    "tfexp_test_continuous_eval_deferring",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    params=PARAMS,
):
    # Defers after every pass (no waiting in the worker), each resume held back 0.5 s.
    start_background_training() >> ContinuousEvalOperator(
        task_id="continuous_eval",
        experiment_fn=TINY,
        model_dir=MODEL_DIR,
        every_checkpoint=True,
        throttle_delay_secs=0.2,
        deferrable=True,
        keep_worker_secs=0,
        defer_settle_secs=0.5,
    )


with DAG("tfexp_test_std_server", schedule=None, start_date=datetime(2026, 1, 1), params=PARAMS):
    # The ps task serves until the chief (trained in the background after it) completes.
    (
        StdServerOperator(
            task_id="ps",
            experiment_fn=TINY,
            model_dir=MODEL_DIR,
            tf_config="{{ params.ps_tf_config | tojson }}",
        )
        << start_background_training()
    )


with DAG(
    "tfexp_test_sensor_without_trainer",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    params=PARAMS,
):
    # The README's first sensor with its training task not run yet: under dag.test() the
    # inline trigger would wait for checkpoints nothing can write.
    CheckpointSensor(task_id="wait", model_dir=MODEL_DIR, deferrable=True, timeout=600)


with DAG(
    "tfexp_test_long_training",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    params={**PARAMS, "step_log": "/tmp/unused.log"},
):
    # Trains until stopped (the test sends SIGTERM to `dags test` midway).
    TrainOperator(task_id="train", experiment_fn=TINY, model_dir=MODEL_DIR, delay_secs=0)


with DAG(
    "tfexp_test_sensor_waits_long",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    params={**PARAMS, "pid_file": "/tmp/unused.pid"},
):
    # A trainer is active but the awaited step is far away: the inline trigger waits on.
    start_background_training() >> CheckpointSensor(
        task_id="wait",
        model_dir=MODEL_DIR,
        after_step=10**9,
        deferrable=True,
        poke_interval=0.5,
        timeout=600,
        defer_settle_secs=0.5,
    )


with DAG(
    "tfexp_test_sensor_rescheduling",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    params=PARAMS,
):
    # The fallback the inline error recommends: between its pokes dag.test() waits in its loop.
    CheckpointSensor(
        task_id="wait",
        model_dir=MODEL_DIR,
        wait_for_training_complete=True,
        deferrable=False,
        mode="reschedule",
        poke_interval=5,
        timeout=600,
    )


with DAG(
    "tfexp_test_approval_waits",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    params={"model_dir": "/tmp/unused"},
):
    # dag.test() waits in its loop for a person's answer; the test writes the blessing itself
    ApproveModelOperator(task_id="approve", model_dir=MODEL_DIR, response_timeout=600)
