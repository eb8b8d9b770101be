"""What would 1,000 / 10,000 / 100,000 concurrent experiments need? A model built from figures
measured here, in this run, then checked against 10,000 real triggers in one process.

Measured first:
- CPU per look of one `CheckpointTrigger`, local dirs and gs:// (a real GCS JSON-API server,
  gcp-storage-emulator, on this machine: its client-side HTTP is what the triggerer pays),
  with the storage requests and response bytes of an idle look (`bench/trigger_scale.py`);
- the requests of a look that finds a new checkpoint (by class: a listing is Class A, an object
  or metadata read Class B);
- the scheduler's CPU per task instance: a real scheduler (LocalExecutor, SQLite) runs a
  `per_checkpoint` factory DAG whose evaluation is mapped over its checkpoints; its CPU while
  it does, less its idle rate, over the task instances it ran.

Modelled, per experiment: one waiting trigger, a checkpoint every `--checkpoint-every` s,
looks every `--poll-interval` s. Prices are Cloud Storage list prices (Standard class):
$0.05 per 10,000 Class A and $0.004 per 10,000 Class B operations; a bucket starts at about
5,000 object reads/s (it scales up with sustained load). A triggerer is counted full at
Airflow's default capacity (1,000 triggers) or at half a core of looks, whichever comes first.

Then 10,000 real triggers run in one event loop here on local dirs, and their CPU per round and
detection p95 are printed beside the model's prediction.

    .venv/bin/python bench/scale_model.py [--real 10000] [--skip-scheduler] [--skip-gcs]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import shutil
import sys
import tempfile
import time
import uuid
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))

CLASS_A_USD, CLASS_B_USD = 0.05 / 10_000, 0.004 / 10_000
BUCKET_READS_PER_SEC = 5_000
TRIGGERER_CAPACITY = 1_000  # [triggerer] capacity, Airflow's default
TRIGGERER_CORE_SHARE = 0.5  # keep a triggerer's loop at most half busy: looks stay on time


def local_dirs(root: str, count: int) -> list[str]:
    from trigger_scale import write_checkpoint

    dirs = [os.path.join(root, f"m{i}") for i in range(count)]
    for model_dir in dirs:
        os.makedirs(model_dir)
        write_checkpoint(model_dir, 0)
    return dirs


def changed_look_requests(model_dir: str) -> tuple[int, int]:
    """(Class A, Class B) requests of a look that finds a new checkpoint."""
    from trigger_scale import count_http_requests, write_checkpoint

    from airflow_tfexp.experiment.evaluation.model_dir_scan import scan_model_dir

    previous = scan_model_dir(model_dir, None, None, watching=True)
    write_checkpoint(model_dir, 20)
    http = count_http_requests()
    scan = scan_model_dir(model_dir, None, previous, watching=True)
    assert http[0] == scan.requests, (http, scan.requests)
    return 1, scan.requests - 1  # the one listing; the version and state reads


def scheduler_cpu_per_task_instance(scratch: str) -> tuple[float, int]:
    """The scheduler's CPU s per task instance of a per_checkpoint run, and how many it ran."""
    import yaml

    from tests.e2e.cluster import AirflowCluster

    dags = os.path.join(scratch, "dags")
    os.makedirs(dags)
    config = {
        "dag_id": "scale_per_checkpoint",
        "schedule_mode": "per_checkpoint",
        "model_dir": os.path.join(scratch, "models", "per_checkpoint"),
        "experiment_fn": "tests.experiment.tiny_experiment:experiment_fn",
        "train_steps": 400,
        "params": {"save_checkpoints_steps": 20, "keep_checkpoint_max": None},
        "evaluation": {"name": "scale", "poll_interval": 2},
    }
    with open(os.path.join(dags, "scale_per_checkpoint.yaml"), "w") as handle:
        yaml.safe_dump(config, handle)
    with open(os.path.join(dags, "scale_per_checkpoint.py"), "w") as handle:
        handle.write(
            "from airflow_tfexp.dag_factory import load_experiment_dag\n"
            "dag = load_experiment_dag(__file__[:-3] + '.yaml')\n"
        )
    cluster = AirflowCluster(os.path.join(scratch, "home"), dags, executor="LocalExecutor")
    cluster.start_components()
    try:
        cluster.wait_for(lambda: cluster._dag_exists("scale_per_checkpoint"), 180, "the DAG")  # noqa: SLF001
        pid = cluster.processes["scheduler"].pid
        idle_cpu, idle_wall = process_cpu(pid), time.monotonic()
        time.sleep(20)
        idle_rate = (process_cpu(pid) - idle_cpu) / (time.monotonic() - idle_wall)
        cpu0, wall0 = process_cpu(pid), time.monotonic()
        run = cluster.trigger("scale_per_checkpoint", {}, timeout=900)
        cpu, wall = process_cpu(pid) - cpu0, time.monotonic() - wall0
        assert run["state"] == "success", cluster.log("scheduler")[-3000:]
        instances = len(cluster.task_instances("scale_per_checkpoint", run["dag_run_id"]))
    finally:
        cluster.stop()
    busy = max(0.0, cpu - idle_rate * wall)
    print(
        f"scheduler: {instances} task instances (per_checkpoint, mapped evaluation) in {wall:.0f} s: "
        f"{cpu:.1f} CPU s, idle rate {idle_rate:.3f} CPU s/s -> {busy / instances:.3f} CPU s "
        "per task instance"
    )
    return busy / instances, instances


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of one process (not its children) from /proc."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def model_row(
    experiments: int, figures: dict[str, Any], args: argparse.Namespace
) -> dict[str, float]:
    looks = experiments / args.poll_interval  # per second
    changed = experiments / args.checkpoint_every  # looks that find a checkpoint, per second
    idle = looks - changed
    class_a = changed * figures["changed_a"]
    class_b = idle * figures["idle_requests"] + changed * figures["changed_b"]
    cores = looks * figures["gcs_cpu_per_look"]
    triggerers = max(
        math.ceil(experiments / TRIGGERER_CAPACITY), math.ceil(cores / TRIGGERER_CORE_SHARE)
    )
    instances = changed  # per_checkpoint: one evaluation task instance per checkpoint
    row = {
        "experiments": experiments,
        "cores": cores,
        "triggerers": triggerers,
        "class_a": class_a,
        "class_b": class_b,
        "usd_day": 86_400 * (class_a * CLASS_A_USD + class_b * CLASS_B_USD),
        "headroom": BUCKET_READS_PER_SEC / class_b,
        "mb_s": looks * figures.get("bytes_per_look", 0.0) / 1e6,
        "instances": instances,
    }
    if figures.get("scheduler_cpu_per_ti"):
        row["scheduler_cores"] = instances * figures["scheduler_cpu_per_ti"]
    return row


def print_model(figures: dict[str, Any], args: argparse.Namespace) -> None:
    print(
        f"\nModel: one waiting trigger per experiment, a checkpoint every "
        f"{args.checkpoint_every:g} s, looks every {args.poll_interval:g} s (gs://):"
    )
    header = (
        "| experiments | triggerer cores | triggerers | Class A/s | Class B/s | storage $/day "
        "| bucket read headroom | MB/s read | per_checkpoint TIs/s | scheduler cores |"
    )
    print(header)
    print("|" + "---|" * 10)
    for experiments in (1_000, 10_000, 100_000):
        row = model_row(experiments, figures, args)
        scheduler = f"{row['scheduler_cores']:.2f}" if "scheduler_cores" in row else "n/a"
        print(
            f"| {experiments:,} | {row['cores']:.2f} | {row['triggerers']} | "
            f"{row['class_a']:.2f} | {row['class_b']:,.0f} | ${row['usd_day']:,.2f} | "
            f"{row['headroom']:.1f}x | {row['mb_s']:.2f} | {row['instances']:.1f} | {scheduler} |"
        )
    old_b, old_a = figures["old_idle_b"], figures["old_idle_a"]
    old = 10_000 / args.poll_interval * 86_400 * (old_a * CLASS_A_USD + old_b * CLASS_B_USD)
    print(
        f"(before the version check every idle look listed and read: {old_a:g} Class A + "
        f"{old_b:g} Class B, ${old:,.0f} a day at 10,000 experiments)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--poll-interval", type=float, default=10.0)
    parser.add_argument("--checkpoint-every", type=float, default=600.0)
    parser.add_argument("--local-triggers", type=int, default=1000, help="to measure CPU/look")
    parser.add_argument("--gcs-triggers", type=int, default=200, help="on the emulator")
    parser.add_argument("--real", type=int, default=10_000, help="real triggers to check with")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--skip-scheduler", action="store_true")
    parser.add_argument("--skip-gcs", action="store_true")
    args = parser.parse_args()
    args.per_dir = 1
    import logging

    import structlog

    import airflow_tfexp.triggers.checkpoint  # noqa: F401 - Airflow sets up its logging on import

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    from trigger_scale import measure, write_checkpoint

    from tests.gcs_emulator import BUCKET, Emulator

    scratch = tempfile.mkdtemp(prefix="tfexp-bench-scale-")
    figures: dict[str, Any] = {"old_idle_a": 1, "old_idle_b": 1}
    try:
        dirs = local_dirs(os.path.join(scratch, "local"), args.local_triggers)
        local = asyncio.run(measure("local", dirs, args, len(dirs)))
        figures["local_cpu_per_look"] = local["cpu_per_round"] / len(dirs)
        if args.skip_gcs:
            figures.update(gcs_cpu_per_look=figures["local_cpu_per_look"], idle_requests=1)
            figures.update(changed_a=1, changed_b=2)
        else:
            emulator = Emulator(os.path.join(scratch, "emulator"))
            emulator.start()
            os.environ["STORAGE_EMULATOR_HOST"] = emulator.host
            try:
                run = uuid.uuid4().hex[:8]
                gcs = [f"gs://{BUCKET}/{run}/m{i}" for i in range(args.gcs_triggers)]
                for model_dir in gcs:
                    write_checkpoint(model_dir, 0)
                remote = asyncio.run(measure("gs://", gcs, args, min(50, len(gcs))))
                figures["gcs_cpu_per_look"] = remote["cpu_per_round"] / len(gcs)
                figures["idle_requests"] = remote["http_per_poll"]
                figures["bytes_per_look"] = remote["bytes_per_poll"]
                changed_a, changed_b = changed_look_requests(f"gs://{BUCKET}/{run}/changed")
                figures.update(changed_a=changed_a, changed_b=changed_b)
            finally:
                emulator.stop()
        print(
            f"per look: local {figures['local_cpu_per_look'] * 1e3:.3f} CPU ms, gs:// "
            f"{figures['gcs_cpu_per_look'] * 1e3:.3f} CPU ms; idle look "
            f"{figures['idle_requests']:.2f} Class B request(s); a look finding a checkpoint "
            f"{figures['changed_a']} Class A + {figures['changed_b']} Class B"
        )
        if not args.skip_scheduler:
            per_ti, _ = scheduler_cpu_per_task_instance(os.path.join(scratch, "scheduler"))
            figures["scheduler_cpu_per_ti"] = per_ti
        print_model(figures, args)

        shutil.rmtree(os.path.join(scratch, "local"), ignore_errors=True)
        print(f"\n{args.real:,} real CheckpointTriggers in one event loop, local dirs:")
        predicted_cpu = args.real * figures["local_cpu_per_look"]
        dirs = local_dirs(os.path.join(scratch, "real"), args.real)
        real = asyncio.run(measure("local", dirs, args, len(dirs)))
        print(
            f"  CPU per round: measured {real['cpu_per_round']:.2f} s, model "
            f"{predicted_cpu:.2f} s (ratio {real['cpu_per_round'] / predicted_cpu:.2f}); "
            f"{real['cpu_per_round'] / args.poll_interval:.0%} of a core"
        )
        print(
            f"  detection p95: measured {real['p95']:.2f} s, model {0.95 * args.poll_interval:.2f} s"
            " (a checkpoint lands uniformly within an interval)"
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
