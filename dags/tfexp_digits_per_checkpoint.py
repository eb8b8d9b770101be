"""Digits, wired by hand: training in parallel with a checkpoint sensor, one evaluation task per
checkpoint, then export.

    train ──────────────────────────────────────┐
    wait_for_checkpoints ──> evaluate[ckpt-N] ──┴──> export

The sensor waits for training to complete and returns every checkpoint, so the mapped
`evaluate` task has one instance per checkpoint (keep_checkpoint_max=None keeps them all).
It runs in reschedule mode: no worker slot is held between looks, and `dag.test()`, which runs
tasks one at a time, can still run `train` while the sensor waits. On a deployment with a
triggerer, `deferrable=True` (the default) waits in the triggerer instead.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param

from airflow_tfexp.operators import EvaluateOperator, ExportOperator, TrainOperator
from airflow_tfexp.sensors import CheckpointSensor

EXPERIMENT_FN = "airflow_tfexp.examples.digits:experiment_fn"
MODEL_DIR = "{{ params.model_dir }}"

with DAG(
    dag_id="tfexp_digits_per_checkpoint",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["tfexp", "example"],
    doc_md=__doc__,
    params={
        "model_dir": Param("/tmp/airflow-tfexp/digits_per_checkpoint", type="string"),
        "train_steps": Param(600, type="integer", minimum=1),
        "save_checkpoints_steps": Param(200, type="integer", minimum=1),
        "keep_checkpoint_max": Param(None, type=["null", "integer"]),
    },
):
    train = TrainOperator(
        task_id="train", experiment_fn=EXPERIMENT_FN, model_dir=MODEL_DIR, delay_secs=0
    )
    checkpoints = CheckpointSensor(
        task_id="wait_for_checkpoints",
        model_dir=MODEL_DIR,
        wait_for_training_complete=True,
        deferrable=False,
        mode="reschedule",
        poke_interval=2,
        timeout=3600,
    )
    evaluate = EvaluateOperator.partial(
        task_id="evaluate", experiment_fn=EXPERIMENT_FN, model_dir=MODEL_DIR, name="per_checkpoint"
    ).expand(checkpoint_path=checkpoints.output)
    export = ExportOperator(task_id="export", experiment_fn=EXPERIMENT_FN, model_dir=MODEL_DIR)
    [train, evaluate] >> export
