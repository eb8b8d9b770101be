"""What median pruning saves a sweep: 16 trials of the digits example, 4 at a time, with the
median pruner against the same sweep without pruning (same space, same sampler seed).

Four worker processes (`python -m airflow_tfexp.experiment --schedule tune`, distinct worker
names) share one study (a journal file in the sweep's model dir), as the containers of a sweep
would; each trial trains the digits MLP with in-training evaluation at every checkpoint. The
ratio of the two wall times is the figure (this machine is noisy: compare within one run),
with trials/hour of each and the best accuracy each found (pruning must not cost the result).

    .venv/bin/python bench/tuning.py [--trials 16] [--parallel 4] [--train-steps 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
SPACE = {
    "learning_rate": {"type": "float", "low": 0.0001, "high": 0.03, "log": True},
    "hidden_units": {"type": "int", "low": 8, "high": 128, "log": True},
}


def study(pruner: str) -> dict[str, Any]:
    return {
        "name": "bench",
        "search_space": SPACE,
        "objective": {"metric": "accuracy", "mode": "max"},
        "sampler": {"type": "tpe", "n_startup_trials": 6},
        "pruner": {"type": "median", "n_startup_trials": 3} if pruner == "median" else "none",
        "seed": 7,
    }


def sweep(pruner: str, trials: int, parallel: int, train_steps: int, root: str) -> dict:
    """Run one sweep with `parallel` worker processes; its wall time and outcome."""
    from airflow_tfexp.experiment.tuning.study import StudySpec, open_study

    model_dir = os.path.join(root, pruner)
    every = max(1, train_steps // 10)  # ten evaluations a trial: ten chances to prune
    params = {"train_steps": train_steps, "save_checkpoints_steps": every, "keep_checkpoint_max": 2}
    base = [
        sys.executable,
        "-m",
        "airflow_tfexp.experiment",
        "--experiment-fn",
        "airflow_tfexp.examples.digits:experiment_fn",
        "--model-dir",
        model_dir,
        "--schedule",
        "tune",
        "--params",
        json.dumps(params),
    ]
    spec = study(pruner)
    open_study(StudySpec.from_value(spec), model_dir)  # created once, before the workers race
    env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "2"}
    started = time.monotonic()
    workers = []
    for index in range(parallel):
        args = {"study": spec, "trials": trials, "worker": f"w{index}", "export_best": False}
        log = open(os.path.join(root, f"{pruner}-w{index}.log"), "w")
        command = [*base, "--schedule-args", json.dumps(args)]
        workers.append(subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT))
    codes = [w.wait(timeout=3600) for w in workers]
    wall = time.monotonic() - started
    if any(codes):
        raise SystemExit(f"{pruner}: a worker failed ({codes}); see {root}/{pruner}-w*.log")
    from airflow_tfexp.experiment.evaluation.coordination import read_completion_marker
    from airflow_tfexp.experiment.tuning.trials import trial_model_dir

    finished = open_study(StudySpec.from_value(spec), model_dir).get_trials()
    markers = [read_completion_marker(trial_model_dir(model_dir, t.number)) for t in finished]
    states = [t.state.name.lower() for t in finished]
    complete = [t.value for t in finished if t.state.name == "COMPLETE"]
    return {
        "pruner": pruner,
        "wall_secs": wall,
        "trials": len(finished),
        "pruned": states.count("pruned"),
        "complete": states.count("complete"),
        "best_accuracy": max(complete) if complete else None,
        "trials_per_hour": len(finished) / wall * 3600,
        "steps": sum(m["global_step"] for m in markers if m),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--train-steps", type=int, default=2000)
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="tfexp-bench-tuning-")
    try:
        baseline = sweep("none", args.trials, args.parallel, args.train_steps, root)
        pruned = sweep("median", args.trials, args.parallel, args.train_steps, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    for result in (baseline, pruned):
        print(
            f"{result['pruner']:>6}: {result['trials']} trials ({result['complete']} complete, "
            f"{result['pruned']} pruned, {result['steps']:,} steps trained) in "
            f"{result['wall_secs']:.1f} s = "
            f"{result['trials_per_hour']:.0f} trials/hour; best accuracy {result['best_accuracy']:.4f}"
        )
    print(
        f"median pruning / no pruning, wall time: {pruned['wall_secs'] / baseline['wall_secs']:.2f} "
        f"(trials/hour {pruned['trials_per_hour']:.0f} vs {baseline['trials_per_hour']:.0f}; "
        f"{args.trials} trials, {args.parallel} at a time, {args.train_steps} steps each)"
    )


if __name__ == "__main__":
    main()
