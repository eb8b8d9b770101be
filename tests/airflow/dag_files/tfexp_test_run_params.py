"""A DAG whose params hold the author's templates, for checking what a run's conf may change."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_tfexp.operators import TrainOperator

with DAG(
    "tfexp_test_run_params",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    params={
        "model_dir": "/tmp/unused",
        "train_steps": "{{ 6 * 5 }}",
        "save_checkpoints_steps": 10,
        "note": "trained on {{ ds }}",
        "comment": "",
    },
):
    TrainOperator(
        task_id="train",
        experiment_fn="tests.airflow.recording_experiment:experiment_fn",
        model_dir="{{ params.model_dir }}",
        delay_secs=0,
    )
