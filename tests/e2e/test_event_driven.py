"""Event-driven evaluation on a real Airflow: the factory's event_driven mode emits a training DAG
and an evaluation DAG scheduled on the model dir's checkpoint asset, watched by
CheckpointEventTrigger in a real triggerer. Checkpoints appear while it runs; every checkpoint
gets exactly one asset event and one evaluation, also across a restart of the triggerer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import yaml

from airflow_tfexp.experiment.evaluation.results import read_results
from airflow_tfexp.experiment.storage.checkpoints import list_checkpoints
from tests.e2e.cluster import ROOT, AirflowCluster

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
ONE_LINER = "from airflow_tfexp.dag_factory import load_experiment_dag\ndag = load_experiment_dag(__file__[:-3] + '.yaml')\n"
EXPERIMENT_FN = "tests.experiment.tiny_experiment:experiment_fn"
PARAMS = {"save_checkpoints_steps": 20, "keep_checkpoint_max": None, "step_sleep_secs": 0.05}


def test_one_evaluation_per_checkpoint_across_a_triggerer_restart(tmp_path):
    dags = tmp_path / "dags"
    dags.mkdir()
    model_dir = str(tmp_path / "models" / "watched")
    config = {
        "dag_id": "tfexp_e2e_events",
        "schedule_mode": "event_driven",
        "model_dir": model_dir,
        "experiment_fn": EXPERIMENT_FN,
        "train_steps": 60,
        "params": PARAMS,
        "evaluation": {"name": "event", "poll_interval": 1},
        "default_args": {"retry_delay": 2},
    }
    (dags / "tfexp_e2e_events.yaml").write_text(yaml.safe_dump(config))
    (dags / "tfexp_e2e_events.py").write_text(ONE_LINER)
    cluster = AirflowCluster(str(tmp_path / "home"), str(dags), executor="LocalExecutor")
    cluster.start_components()
    try:
        cluster.wait_for(
            lambda: cluster._dag_exists("tfexp_e2e_events_evaluate"), 120, "the evaluation DAG"
        )
        cluster.api("PATCH", "/dags/tfexp_e2e_events_evaluate", {"is_paused": False})

        # Phase 1: the factory's training DAG trains to step 60, a checkpoint every 20 steps.
        run = cluster.trigger("tfexp_e2e_events", {}, timeout=300)
        assert run["state"] == "success", cluster.log("scheduler")[-3000:]
        steps = [c.global_step for c in list_checkpoints(model_dir)]
        assert steps == [0, 20, 40, 60]
        wait_for_evaluations(cluster, model_dir, steps)

        # Phase 2: restart the triggerer, train further in a separate process (any trainer
        # will do: the watcher only sees files), and only the new checkpoints are emitted.
        cluster.restart("triggerer")
        subprocess.run(
            [
                sys.executable,
                "-m",
                "airflow_tfexp.experiment",
                "--experiment-fn",
                EXPERIMENT_FN,
                "--model-dir",
                model_dir,
                "--params",
                json.dumps({**PARAMS, "train_steps": 100}),
                "--schedule",
                "train",
            ],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "2"},
            check=True,
            capture_output=True,
            timeout=300,
        )
        steps = [c.global_step for c in list_checkpoints(model_dir)]
        assert steps == [0, 20, 40, 60, 80, 100]
        wait_for_evaluations(cluster, model_dir, steps)
        time.sleep(8)  # anything emitted twice would show up by now (poll interval: 1 s)

        events = checkpoint_events(cluster)
        emitted = sorted(e["extra"]["payload"]["global_step"] for e in events)
        assert emitted == steps, "every checkpoint exactly one asset event"
        evaluated = [r["global_step"] for r in read_results(model_dir, "event")]
        assert sorted(evaluated) == steps, "every checkpoint evaluated exactly once"
        runs = cluster.api("GET", "/dags/tfexp_e2e_events_evaluate/dagRuns")["dag_runs"]
        assert {r["state"] for r in runs} == {"success"}
        assert 1 <= len(runs) <= len(steps)  # events arriving together share a run
        triggerer_log = cluster.log("triggerer")
        assert "stored watermark: 60" in triggerer_log, triggerer_log[-3000:]
        print(
            f"{len(events)} checkpoint events -> {len(runs)} evaluation runs; "
            f"evaluated steps {evaluated}"
        )
    finally:
        cluster.stop()


def checkpoint_events(cluster: AirflowCluster) -> list[dict]:
    events = cluster.api("GET", "/assets/events?limit=100")["asset_events"]
    return [e for e in events if (e.get("extra") or {}).get("from_trigger")]


def wait_for_evaluations(cluster: AirflowCluster, model_dir: str, steps: list[int]) -> None:
    def done() -> bool:
        evaluated = {r["global_step"] for r in read_results(model_dir, "event")}
        runs = cluster.api("GET", "/dags/tfexp_e2e_events_evaluate/dagRuns")["dag_runs"]
        busy = any(r["state"] in ("queued", "running") for r in runs)
        return evaluated >= set(steps) and not busy

    cluster.wait_for(done, 300, f"evaluations of steps {steps}", interval=2)
