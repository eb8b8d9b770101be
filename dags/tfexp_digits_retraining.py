"""Digits, retrained every day: warm start from the model in production, evaluate the candidate
against it on the same data, and publish it only if it is better.

    train (warm start: latest blessed) ──> export ──> bless ──> publish ──> [asset: published model]

Each run trains in its own model dir (`<root>/runs/<run_id>/`, with its lineage in `run.json`);
the production model lives in `<root>/published/<version>/`, with `LATEST` pointing at it.
`bless` re-evaluates the published model and the candidate on the held-out data and records
why it blessed or not; `publish` skips when not blessed. Simulate a bad day of data with the
`label_noise` param (e.g. 0.8). The root is `$TFEXP_EXAMPLES_ROOT/retraining` (default under
/tmp): where production lives is the deployment's choice, not a run's.
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.sdk import DAG, Param

from airflow_tfexp.operators import (
    BlessOperator,
    ExportOperator,
    PublishOperator,
    TrainOperator,
)

EXPERIMENT_FN = "airflow_tfexp.examples.digits:experiment_fn"
ROOT = os.environ.get("TFEXP_EXAMPLES_ROOT", "/tmp/airflow-tfexp").rstrip("/") + "/retraining"
MODEL_DIR = ROOT + "/runs/{{ run_id }}"
PUBLISH_DIR = ROOT + "/published"

with DAG(
    dag_id="tfexp_digits_retraining",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,  # one candidate at a time against production
    tags=["tfexp", "example", "retraining"],
    doc_md=__doc__,
    default_args={"retries": 1},
    params={
        "train_steps": Param(600, type="integer", minimum=1),
        "save_checkpoints_steps": Param(200, type="integer", minimum=1),
        "label_noise": Param(0.0, type="number", minimum=0, maximum=1),
        "seed": Param(42, type="integer"),
    },
):
    train = TrainOperator(
        task_id="train",
        experiment_fn=EXPERIMENT_FN,
        model_dir=MODEL_DIR,
        delay_secs=0,
        warm_start_from="latest_blessed",
        publish_dir=PUBLISH_DIR,
    )
    export = ExportOperator(task_id="export", experiment_fn=EXPERIMENT_FN, model_dir=MODEL_DIR)
    bless = BlessOperator(
        task_id="bless",
        experiment_fn=EXPERIMENT_FN,
        model_dir=MODEL_DIR,
        publish_dir=PUBLISH_DIR,
        exporter_name="latest",
        metric="loss",
        mode="min",
        threshold=1.5,  # a first model must at least learn something (chance: ln 10 = 2.3)
    )
    publish = PublishOperator(task_id="publish", model_dir=MODEL_DIR, publish_dir=PUBLISH_DIR)
    train >> export >> bless >> publish
