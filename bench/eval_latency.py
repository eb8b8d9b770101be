"""How soon does evaluation follow a checkpoint? On a real Airflow (scheduler, triggerer,
dag-processor and api-server as separate processes, LocalExecutor, SQLite), a factory experiment
trains the tiny model with a checkpoint every few seconds (at least 20), and for each
checkpoint this measures, against the evaluation poll interval:

- `event_driven` mode: checkpoint complete -> its evaluation task starting (CheckpointEventTrigger
  in the triggerer emits an asset event, the scheduler runs the evaluation DAG). The factory's
  `per_checkpoint` mode waits for training to complete and then evaluates every checkpoint in
  parallel (by design), so the per-checkpoint path that follows training live is this one.
- `train_and_evaluate` mode: checkpoint complete -> its evaluation result recorded (the
  continuous evaluator defers to the triggerer between checkpoints, the default `wait: defer`).

"Checkpoint complete" is the modification time of its `.index` file (written after its data);
task start is the task instance's `start_date`; a result's time is its `wall_time`.

    .venv/bin/python bench/eval_latency.py [--checkpoints 20] [--poll-interval 2]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import statistics
import sys
import tempfile
from typing import Any

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
ONE_LINER = (
    "from airflow_tfexp.dag_factory import load_experiment_dag\n"
    "dag = load_experiment_dag(__file__[:-3] + '.yaml')\n"
)
EXPERIMENT_FN = "tests.experiment.tiny_experiment:experiment_fn"
STEPS_PER_CHECKPOINT = 20


def complete_times(model_dir: str) -> dict[int, float]:
    from airflow_tfexp.experiment.storage.checkpoints import list_checkpoints

    return {
        c.global_step: os.path.getmtime(c.checkpoint_path + ".index")
        for c in list_checkpoints(model_dir)
    }


def percentiles(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return (
        f"p50 {statistics.median(ordered):.2f} s, p95 {p95:.2f} s, max {ordered[-1]:.2f} s "
        f"over {len(ordered)} checkpoints"
    )


def write_config(dags: str, dag_id: str, mode: str, model_dir: str, args: Any) -> None:
    params = {
        "save_checkpoints_steps": STEPS_PER_CHECKPOINT,
        "keep_checkpoint_max": None,
        "step_sleep_secs": args.checkpoint_secs / STEPS_PER_CHECKPOINT,
    }
    config = {
        "dag_id": dag_id,
        "schedule_mode": mode,
        "model_dir": model_dir,
        "experiment_fn": EXPERIMENT_FN,
        "train_steps": args.checkpoints * STEPS_PER_CHECKPOINT,
        "params": params,
        "evaluation": {"name": "bench", "poll_interval": args.poll_interval},
        "continuous_eval_throttle_secs": 0,
    }
    with open(os.path.join(dags, f"{dag_id}.yaml"), "w") as handle:
        yaml.safe_dump(config, handle)
    with open(os.path.join(dags, f"{dag_id}.py"), "w") as handle:
        handle.write(ONE_LINER)


def parse_time(value: str) -> float:
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def event_driven(cluster: Any, model_dir: str, args: Any) -> list[float]:
    from airflow_tfexp.experiment.evaluation.results import read_results

    evaluation_dag = "bench_events_evaluate"
    cluster.wait_for(lambda: cluster._dag_exists(evaluation_dag), 180, "the evaluation DAG")
    cluster.api("PATCH", f"/dags/{evaluation_dag}", {"is_paused": False})
    run = cluster.trigger("bench_events", {}, timeout=900)
    assert run["state"] == "success", cluster.log("scheduler")[-3000:]
    completed = complete_times(model_dir)

    def all_evaluated() -> bool:
        evaluated = {r["global_step"] for r in read_results(model_dir, "bench")}
        runs = cluster.api("GET", f"/dags/{evaluation_dag}/dagRuns?limit=100")["dag_runs"]
        return evaluated >= set(completed) and all(r["state"] == "success" for r in runs)

    cluster.wait_for(all_evaluated, 600, "every checkpoint's evaluation", interval=2)
    started: dict[int, float] = {}
    runs = cluster.api("GET", f"/dags/{evaluation_dag}/dagRuns?limit=100")["dag_runs"]
    for run in runs:
        run_id = run["dag_run_id"]
        # The run's checkpoints (what `evaluate` is mapped over), in map-index order.
        paths = cluster.api(
            "GET",
            f"/dags/{evaluation_dag}/dagRuns/{run_id}/taskInstances/checkpoints/xcomEntries/"
            "return_value?deserialize=true",
        )["value"]
        if isinstance(paths, str):
            paths = json.loads(paths)
        for ti in cluster.task_instances(evaluation_dag, run_id):
            if ti["task_id"] != "evaluate" or not ti.get("start_date"):
                continue
            entry = paths[ti["map_index"]]  # {"checkpoint_path", "global_step"}
            step = int(entry["global_step"])
            started[step] = min(started.get(step, float("inf")), parse_time(ti["start_date"]))
    if not started:
        raise RuntimeError(f"no evaluation task start found in {len(runs)} runs")
    return [started[s] - completed[s] for s in sorted(started) if s in completed]


def train_and_evaluate(cluster: Any, model_dir: str, args: Any) -> list[float]:
    from airflow_tfexp.experiment.evaluation.results import read_results

    run = cluster.trigger("bench_continuous", {}, timeout=900)
    assert run["state"] == "success", cluster.log("scheduler")[-3000:]
    completed = complete_times(model_dir)
    recorded = {r["global_step"]: r["wall_time"] for r in read_results(model_dir, "bench")}
    return [recorded[s] - completed[s] for s in sorted(recorded) if s in completed]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoints", type=int, default=20)
    parser.add_argument("--poll-interval", type=float, default=2.0)
    parser.add_argument("--checkpoint-secs", type=float, default=4.0)
    parser.add_argument(
        "--modes", default="event_driven,train_and_evaluate", help="comma-separated, in order"
    )
    args = parser.parse_args()
    modes = args.modes.split(",")
    from tests.e2e.cluster import AirflowCluster

    scratch = tempfile.mkdtemp(prefix="tfexp-bench-latency-")
    dags = os.path.join(scratch, "dags")
    os.makedirs(dags)
    events_dir = os.path.join(scratch, "models", "events")
    continuous_dir = os.path.join(scratch, "models", "continuous")
    write_config(dags, "bench_events", "event_driven", events_dir, args)
    write_config(dags, "bench_continuous", "train_and_evaluate", continuous_dir, args)
    cluster = AirflowCluster(os.path.join(scratch, "home"), dags, executor="LocalExecutor")
    cluster.start_components()
    to_task = to_result = None
    try:
        if "event_driven" in modes:
            to_task = event_driven(cluster, events_dir, args)
        if "train_and_evaluate" in modes:
            to_result = train_and_evaluate(cluster, continuous_dir, args)
    finally:
        cluster.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    poll = args.poll_interval
    print(f"poll interval {poll:g} s, a checkpoint every ~{args.checkpoint_secs:g} s:")
    if to_task is not None:
        print(f"  event_driven, checkpoint -> evaluation task start: {percentiles(to_task)}")
    if to_result is not None:
        print(f"  train_and_evaluate, checkpoint -> result recorded: {percentiles(to_result)}")
    print(f"  target: p95 <= poll interval + 2 s = {poll + 2:g} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
