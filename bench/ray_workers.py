"""Training throughput on Ray: 1 worker vs 2 workers (MultiWorkerMirroredStrategy), same run.

Both runs go through the same launcher (embedded Ray, CPU workers), so the ratio compares like
with like. steps/s = global steps / the workers' time in `Experiment.train` (model build and
first compilation included). The global batch is the same for any worker count: each worker
takes its share of every batch, so more workers trade parallel compute for gradient exchange.

    .venv/bin/python bench/ray_workers.py [--steps 600]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(workers: int, steps: int) -> float:
    from airflow_tfexp.launchers.ray_launcher import train_on_ray
    from airflow_tfexp.launchers.spec import DistributionSpec

    strategy = "multi_worker_mirrored"
    result = train_on_ray(
        experiment_fn="airflow_tfexp.examples.digits:experiment_fn",
        model_dir=tempfile.mkdtemp(prefix=f"tfexp-bench-ray{workers}-"),
        params={"train_steps": steps, "save_checkpoints_steps": steps},
        spec=DistributionSpec(strategy, num_workers=workers, launcher="ray"),
    )
    secs = max(w["train_secs"] for w in result["workers"])
    return steps / secs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=600)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    one = run(1, args.steps)
    two = run(2, args.steps)
    print(f"1 worker: {one:.1f} steps/s; 2 workers: {two:.1f} steps/s ({args.steps} steps, digits)")
    print(f"ratio 2 workers / 1 worker: {two / one:.2f} (on {os.cpu_count()} CPUs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
