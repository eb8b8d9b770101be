"""Training throughput on Ray, all runs in one script: 1 worker vs 2 data-parallel workers
(MultiWorkerMirroredStrategy), and 2 workers with 1 parameter server (ParameterServerStrategy)
at 1 and 10 steps per scheduled closure.

Every run goes through the same launcher (embedded Ray, CPU workers), so the ratios compare
like with like. steps/s = global steps / the training time in `Experiment.train` of the
workers (multi_worker_mirrored) or of the coordinating chief (parameter_server), model build
and first compilation included. The global batch is the same for any worker count under
multi_worker_mirrored (each worker takes its share of every batch); under parameter_server
every step is one whole batch on one worker.

    .venv/bin/python bench/ray_workers.py [--steps 600]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(strategy: str, workers: int, steps: int, steps_per_execution: int = 1) -> float:
    from airflow_tfexp.launchers.ray_launcher import train_on_ray
    from airflow_tfexp.launchers.spec import DistributionSpec

    num_ps = 1 if strategy == "parameter_server" else 0
    result = train_on_ray(
        experiment_fn="airflow_tfexp.examples.digits:experiment_fn",
        model_dir=tempfile.mkdtemp(prefix=f"tfexp-bench-{strategy}{workers}-"),
        params={
            "train_steps": steps,
            "save_checkpoints_steps": steps,
            "steps_per_execution": steps_per_execution,
        },
        spec=DistributionSpec(strategy, num_workers=workers, num_ps=num_ps, launcher="ray"),
    )
    secs = max(w["train_secs"] for w in result["workers"])
    return steps / secs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=600)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    one = run("multi_worker_mirrored", 1, args.steps)
    two = run("multi_worker_mirrored", 2, args.steps)
    ps1 = run("parameter_server", 2, args.steps)
    ps10 = run("parameter_server", 2, args.steps, steps_per_execution=10)
    print(f"digits, {args.steps} steps, {os.cpu_count()} CPUs, steps/s:")
    print(f"  multi_worker_mirrored, 1 worker:                   {one:.1f}")
    print(f"  multi_worker_mirrored, 2 workers:                  {two:.1f}")
    print(f"  parameter_server, 2 workers + 1 ps, 1 step/call:   {ps1:.1f}")
    print(f"  parameter_server, 2 workers + 1 ps, 10 steps/call: {ps10:.1f}")
    print(f"ratio 2 workers / 1 worker (multi_worker_mirrored): {two / one:.2f}")
    print(f"ratio parameter_server (10 steps/call) / 1 worker: {ps10 / one:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
