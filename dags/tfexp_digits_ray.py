"""Digits trained by two data-parallel workers on Ray (MultiWorkerMirroredStrategy), with this
Airflow task as the driver; then an evaluation of the final checkpoint and an export.

    train (Ray: worker-0 = chief, worker-1) ──> evaluate ──> export

Without a `ray_default` connection the task starts an embedded Ray on its own machine (CPU
workers) and shuts it down afterwards. To use a real cluster (KubeRay with GPU nodes), create
the connection with the host and port of the cluster's Ray client server (`ray://<head>:10001`)
and set `gpus_per_worker`; the cluster's image needs airflow-tfexp installed, and the model dir
must be one every worker can reach (gs://).
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param

from airflow_tfexp.operators import EvaluateOperator, ExportOperator, TrainOperator

EXPERIMENT_FN = "airflow_tfexp.examples.digits:experiment_fn"
MODEL_DIR = "{{ params.model_dir }}"

with DAG(
    dag_id="tfexp_digits_ray",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["tfexp", "example", "ray"],
    doc_md=__doc__,
    params={
        "model_dir": Param("/tmp/airflow-tfexp/digits_ray", type="string"),
        "train_steps": Param(600, type="integer", minimum=1),
        "save_checkpoints_steps": Param(200, type="integer", minimum=1),
    },
):
    train = TrainOperator(
        task_id="train",
        experiment_fn=EXPERIMENT_FN,
        model_dir=MODEL_DIR,
        distribution={
            "strategy": "multi_worker_mirrored",
            "num_workers": 2,
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
