"""Train on Ray: Ray Train's TensorflowTrainer starts the workers, sets each one's TF_CONFIG,
gives them CPUs or GPUs and restarts them after a failure; every worker runs the engine's step
loop under MultiWorkerMirroredStrategy, and the chief writes checkpoints and summaries to the
model dir, so a restarted job resumes from the last checkpoint. The Airflow task is the driver.

Ray is imported only here, inside functions (`pip install airflow-tfexp[ray]`).
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from typing import Any

from airflow_tfexp.launchers.spec import DistributionSpec

log = logging.getLogger(__name__)


def ray_address(ray_conn_id: str | None, task_log: Any) -> str | None:
    """The Ray cluster of the Airflow connection (host and port; `ray://` unless another
    scheme is given), or None: no such connection, so an embedded Ray runs for the task."""
    if not ray_conn_id:
        return None
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        connection = BaseHook.get_connection(ray_conn_id)
    except AirflowNotFoundException:
        task_log.info(
            "No Airflow connection %r: starting an embedded Ray for this task.", ray_conn_id
        )
        return None
    address = (connection.extra_dejson or {}).get("address") or connection.host or ""
    if not address:
        raise ValueError(
            f"Connection {ray_conn_id!r} names no Ray address (host or extra 'address')."
        )
    if "://" not in address and address != "auto":
        address = f"ray://{address}:{connection.port or 10001}"
    return address


def worker_loop(config: dict[str, Any]) -> None:
    """One Ray Train worker: build the experiment (TF_CONFIG comes from Ray) and train."""
    import ray.train

    from airflow_tfexp.experiment import RunConfig
    from airflow_tfexp.experiment.experiment_fn import build_experiment
    from airflow_tfexp.experiment.fs import filesystem, join

    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s", force=True)
    run_config = RunConfig(model_dir=config["model_dir"])
    experiment = build_experiment(
        config["experiment_fn"], run_config, config["params"], "experiment_fn"
    )
    if config.get("warm_start_from"):
        from airflow_tfexp.experiment.warm_start import WarmStartSettings

        experiment.estimator.set_warm_start(
            WarmStartSettings(config["warm_start_from"], config.get("warm_start_optimizer", False))
        )
    started = time.monotonic()
    experiment.train(delay_secs=0)
    train_secs = time.monotonic() - started
    estimator = experiment.estimator
    task = f"{run_config.task_type}-{run_config.task_id}"
    summary = {
        "task": task,
        "global_step": estimator.global_step(),
        "variables_fingerprint": estimator.variables_fingerprint(),
        "train_secs": round(train_secs, 3),
    }
    # Each worker's end state, for the driver (and the task log) to compare.
    path = join(config["model_dir"], ".ray", config["job"], f"{task}.json")
    filesystem(path).write_bytes(path, json.dumps(summary).encode())
    ray.train.report(summary)


def train_on_ray(
    *,
    experiment_fn: str,
    model_dir: str,
    params: dict[str, Any],
    spec: DistributionSpec,
    warm_start_from: str | None = None,
    warm_start_optimizer: bool = False,
    ray_conn_id: str | None = None,
    task_log: Any = log,
) -> dict[str, Any]:
    """Run `spec.num_workers` workers to completion; raise with the failing worker's error."""
    import ray
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.tensorflow import TensorflowTrainer

    address = ray_address(ray_conn_id, task_log)
    env = {"TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
    if os.environ.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    embedded = address is None
    if embedded:
        cpus = max(1, int(spec.num_workers * spec.cpus_per_worker + 0.999)) + 1  # + the controller
        ray.init(num_cpus=cpus, include_dashboard=False, runtime_env={"env_vars": env})
    else:
        task_log.info("Connecting to the Ray cluster at %s.", address)
        try:
            ray.init(address=address, runtime_env={"env_vars": env})
        except Exception as err:  # noqa: BLE001 - ConnectionError, TimeoutError, RuntimeError...
            ray.shutdown()  # leave no half-open client behind in this process
            raise ValueError(f"Cannot reach the Ray cluster at {address!r}: {err}") from err
    try:
        if spec.gpus_per_worker:
            have = ray.cluster_resources().get("GPU", 0)
            need = spec.gpus_per_worker * spec.num_workers
            if have < need:
                raise ValueError(
                    f"`distribution.gpus_per_worker: {spec.gpus_per_worker}` x {spec.num_workers} "
                    f"workers needs {need} GPUs; the Ray cluster has {have:g}."
                )
        resources = {"CPU": spec.cpus_per_worker}
        if spec.gpus_per_worker:
            resources["GPU"] = spec.gpus_per_worker
        job = f"tfexp-{uuid.uuid4().hex[:12]}"
        trainer = TensorflowTrainer(
            worker_loop,
            train_loop_config={
                "job": job,
                "experiment_fn": experiment_fn,
                "model_dir": model_dir,
                "params": params,
                "warm_start_from": warm_start_from,
                "warm_start_optimizer": warm_start_optimizer,
            },
            scaling_config=ScalingConfig(
                num_workers=spec.num_workers,
                use_gpu=bool(spec.gpus_per_worker),
                resources_per_worker=resources,
            ),
            run_config=RunConfig(
                name=job,
                failure_config=FailureConfig(max_failures=spec.max_failures),
            ),
        )
        task_log.info(
            "Training on Ray: %d worker(s) (%s), %s CPU and %d GPU each, up to %d restart(s).",
            spec.num_workers,
            spec.strategy,
            spec.cpus_per_worker,
            spec.gpus_per_worker,
            spec.max_failures,
        )
        try:
            trainer.fit()
        except Exception as err:  # noqa: BLE001 - Ray wraps the worker's error
            raise RuntimeError(f"Ray training failed: {err}") from err
        workers = _worker_summaries(model_dir, job)
        for worker in workers:
            task_log.info(
                "%s: global step %s, variables %s",
                worker["task"],
                worker["global_step"],
                worker["variables_fingerprint"][:16],
            )
        return {"job": job, "workers": workers}
    finally:
        ray.shutdown()


def _worker_summaries(model_dir: str, job: str) -> list[dict[str, Any]]:
    from airflow_tfexp.experiment.fs import filesystem, join

    directory = join(model_dir, ".ray", job)
    fs = filesystem(directory)
    summaries = [
        json.loads(fs.read_bytes(join(directory, n)) or b"{}") for n in fs.listdir(directory)
    ]
    fs.delete_tree(directory)
    return sorted(summaries, key=lambda s: s.get("task", ""))


def stop_ray() -> None:
    """Stop this process's Ray (the task was killed): its workers go with it."""
    import sys

    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()
