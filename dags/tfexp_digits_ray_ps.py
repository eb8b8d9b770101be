"""Digits trained asynchronously by two workers and one parameter server on Ray
(ParameterServerStrategy), with this Airflow task as the driver; then an evaluation of the final
checkpoint and an export.

    train (Ray: chief coordinates worker-0, worker-1; ps-0 holds the variables)
      ──> evaluate ──> export

Every server is a Ray actor running the engine's `run_std_server`; each exits once the chief
has written the completion marker, and the task stops any that remain, so no parameter server
outlives training. A failed attempt is retried on a fresh cluster (`max_failures`), resuming
from the last checkpoint. Without a `ray_default` connection an embedded Ray runs for the task.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param

from airflow_tfexp.operators import EvaluateOperator, ExportOperator, TrainOperator

EXPERIMENT_FN = "airflow_tfexp.examples.digits:experiment_fn"
MODEL_DIR = "{{ params.model_dir }}"

with DAG(
    dag_id="tfexp_digits_ray_ps",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["tfexp", "example", "ray"],
    doc_md=__doc__,
    params={
        "model_dir": Param("/tmp/airflow-tfexp/digits_ray_ps", type="string"),
        "train_steps": Param(600, type="integer", minimum=1),
        "save_checkpoints_steps": Param(200, type="integer", minimum=1),
    },
):
    train = TrainOperator(
        task_id="train",
        experiment_fn=EXPERIMENT_FN,
        model_dir=MODEL_DIR,
        distribution={
            "strategy": "parameter_server",
            "num_workers": 2,
            "num_ps": 1,
            "cpus_per_worker": 1,
            "max_failures": 1,
            "launcher": "ray",
        },
    )
    evaluate = EvaluateOperator(
        task_id="evaluate", experiment_fn=EXPERIMENT_FN, model_dir=MODEL_DIR
    )
    export = ExportOperator(task_id="export", experiment_fn=EXPERIMENT_FN, model_dir=MODEL_DIR)
    train >> evaluate >> export
