"""Mapped evaluations in parallel on a real scheduler: the factory's per_checkpoint mode on a
gs:// model dir (the GCS emulator) with LocalExecutor running evaluations side by side. They
append to one results object at once; every checkpoint ends with exactly one result (before,
concurrent rewrites of the object lost records, and a lost record is a checkpoint evaluated
again)."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import datetime

import pytest
import yaml

from airflow_tfexp.experiment.evaluation.results import read_results
from airflow_tfexp.experiment.storage.checkpoints import list_checkpoints
from tests.e2e.cluster import AirflowCluster

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
ONE_LINER = "from airflow_tfexp.dag_factory import load_experiment_dag\ndag = load_experiment_dag(__file__[:-3] + '.yaml')\n"


def most_at_once(intervals: list[tuple[datetime, datetime]]) -> int:
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = peak = 0
    for _, change in events:
        running += change
        peak = max(peak, running)
    return peak


def test_parallel_mapped_evaluations_on_gcs_record_every_checkpoint_once(tmp_path, gcs_emulator):
    dags = tmp_path / "dags"
    dags.mkdir()
    model_dir = f"gs://tfexp-test/parallel-evaluations-{uuid.uuid4().hex[:8]}"
    config = {
        "dag_id": "tfexp_e2e_parallel_evaluations",
        "schedule_mode": "per_checkpoint",
        "model_dir": model_dir,
        "model_fn": "tests.experiment.tiny_experiment:model_fn",
        "train_input_fn": "tests.experiment.tiny_experiment:train_input_fn",
        "eval_input_fn": "tests.experiment.tiny_experiment:eval_input_fn",
        "train_steps": 60,
        "eval_steps": None,
        "run_config": {"save_checkpoints_steps": 20, "keep_checkpoint_max": None},
        "exporters": [{"type": "final"}],
        "evaluation": {"name": "shared", "poll_interval": 0.5, "wait": "reschedule"},
    }
    (dags / "tfexp_e2e_parallel_evaluations.yaml").write_text(yaml.safe_dump(config))
    (dags / "tfexp_e2e_parallel_evaluations.py").write_text(ONE_LINER)
    cluster = AirflowCluster(str(tmp_path / "home"), str(dags), executor="LocalExecutor")
    cluster.env.update(
        {"AIRFLOW__CORE__PARALLELISM": "4", "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "4"}
    )
    cluster.start_components()
    try:
        run = cluster.trigger("tfexp_e2e_parallel_evaluations", {}, timeout=600)
        instances = cluster.task_instances("tfexp_e2e_parallel_evaluations", run["dag_run_id"])
    finally:
        cluster.stop()
    assert run["state"] == "success", cluster.log("scheduler")[-3000:]
    steps = [c.global_step for c in list_checkpoints(model_dir)]
    assert steps == [0, 20, 40, 60]
    # The 0.5 s looks were rescheduled after the settle, so no try was failed by the scheduler
    # for being requeued before it processed the previous one's exit (its retry came 300 s on).
    waits = [ti for ti in instances if ti["task_id"] == "wait_for_checkpoints"]
    assert [ti["try_number"] for ti in waits] == [1], waits
    evaluations = [ti for ti in instances if ti["task_id"] == "evaluate"]
    assert sorted(ti["map_index"] for ti in evaluations) == list(range(4))
    intervals = [
        (datetime.fromisoformat(ti["start_date"]), datetime.fromisoformat(ti["end_date"]))
        for ti in evaluations
    ]
    assert most_at_once(intervals) >= 2, intervals  # they did run side by side
    recorded = Counter(r["global_step"] for r in read_results(model_dir, "shared"))
    assert recorded == Counter(steps)  # every checkpoint exactly once
