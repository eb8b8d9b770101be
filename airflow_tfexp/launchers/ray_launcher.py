"""Train on Ray, with the Airflow task as the driver.

multi_worker_mirrored: Ray Train's TensorflowTrainer starts the workers, sets each one's
TF_CONFIG, gives them CPUs or GPUs and restarts them after a failure; every worker runs the
engine's step loop under MultiWorkerMirroredStrategy, and the chief writes checkpoints and
summaries to the model dir, so a restarted job resumes from the last checkpoint.
parameter_server: see `ray_parameter_server`.

Ray is imported only here, inside functions (`pip install airflow-tfexp[ray]`).
"""

from __future__ import annotations

import json
import logging
import os
import socket
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
    address = (connection.extra_dejson or {}).get("address")
    if address:  # as Ray takes it: "ray://head:10001", "head:6379" (GCS), "auto"
        return address
    if not connection.host:
        raise ValueError(
            f"Connection {ray_conn_id!r} names no Ray address (host or extra 'address')."
        )
    if "://" in connection.host:
        return connection.host
    return f"ray://{connection.host}:{connection.port or 10001}"


def worker_loop(config: dict[str, Any]) -> None:
    """One Ray Train worker: build the experiment (TF_CONFIG comes from Ray) and train."""
    import ray.train

    from airflow_tfexp.experiment.storage.fs import filesystem, join
    from airflow_tfexp.launchers.ray_worker import build_worker_experiment, train_and_summarize

    summary = train_and_summarize(build_worker_experiment(config))
    # Each worker's end state, for the driver (and the task log) to compare.
    path = join(config["model_dir"], ".ray", config["job"], f"{summary['task']}.json")
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
    """Run the job of `spec` to completion; raise with the failing worker's error."""
    import ray

    address = ray_address(ray_conn_id, task_log)
    from airflow_tfexp.experiment.training_lease import identity_environment

    # the workers' chief holds the trainer lease as this task's try
    env = {"TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
    env.update(identity_environment())
    if os.environ.get("PYTHONPATH"):
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    if address is None:
        cpus = max(1, int(spec.ray_cpus + 0.999))
        # address="local": a Ray of this task's own, even where a `ray start` cluster runs on
        # the machine (ray.init() would join that one, and refuse num_cpus)
        ray.init(
            address="local",
            num_cpus=cpus,
            include_dashboard=False,
            runtime_env={"env_vars": env},
        )
    else:
        _connect(ray, address, env, task_log)
    try:
        _check_gpus(ray, spec)
        job_config = {
            "job": f"tfexp-{uuid.uuid4().hex[:12]}",
            "experiment_fn": experiment_fn,
            "model_dir": model_dir,
            "params": params,
            "warm_start_from": warm_start_from,
            "warm_start_optimizer": warm_start_optimizer,
        }
        if spec.strategy == "parameter_server":
            from airflow_tfexp.launchers.ray_parameter_server import fit_parameter_server

            return fit_parameter_server(spec, job_config, task_log)
        return _fit_multi_worker(spec, job_config, task_log)
    finally:
        ray.shutdown()


CONNECT_ATTEMPTS = 3
PROBE_TIMEOUT_SECS = 10


def _probe(address: str) -> None:
    """A `ray://host:port` nobody listens on is a clear error at once (Ray's client would
    retry it for about 35 s before saying the same)."""
    if not address.startswith("ray://"):
        return
    host, _, port = address[len("ray://") :].partition("/")[0].rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), PROBE_TIMEOUT_SECS):
            pass
    except (OSError, ValueError) as err:
        raise ValueError(
            f"Cannot reach the Ray cluster at {address!r}: {err}. Expected the host and port "
            "of a Ray client server (the head node's port 10001 by default)."
        ) from err


def _connect(ray: Any, address: str, env: dict[str, str], task_log: Any) -> None:
    """`ray.init` on a cluster. A Ray client server that answers but fails to start this
    client's session ("Initialization failure from server", seen on a head that has just come
    up) is asked again; anything else, or the last failure, is a clear error."""
    _probe(address)
    for attempt in range(1, CONNECT_ATTEMPTS + 1):
        task_log.info("Connecting to the Ray cluster at %s.", address)
        try:
            ray.init(address=address, runtime_env={"env_vars": env})
            return
        except Exception as err:  # noqa: BLE001 - ConnectionError, TimeoutError, RuntimeError...
            ray.shutdown()  # leave no half-open client behind in this process
            if isinstance(err, ConnectionAbortedError) and attempt < CONNECT_ATTEMPTS:
                task_log.warning(
                    "The Ray cluster at %s could not start a client session (attempt %d of %d), "
                    "asking again in 2 s: %s",
                    address,
                    attempt,
                    CONNECT_ATTEMPTS,
                    str(err).strip().splitlines()[-1],
                )
                time.sleep(2)
                continue
            raise ValueError(f"Cannot reach the Ray cluster at {address!r}: {err}") from err


def _check_gpus(ray: Any, spec: DistributionSpec) -> None:
    if spec.gpus_per_worker:
        have = ray.cluster_resources().get("GPU", 0)
        need = spec.gpus_per_worker * spec.num_workers
        if have < need:
            raise ValueError(
                f"`distribution.gpus_per_worker: {spec.gpus_per_worker}` x {spec.num_workers} "
                f"workers needs {need} GPUs; the Ray cluster has {have:g}."
            )


def _fit_multi_worker(
    spec: DistributionSpec, job_config: dict[str, Any], task_log: Any
) -> dict[str, Any]:
    """Ray Train's TensorflowTrainer runs `worker_loop` on every worker."""
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.tensorflow import TensorflowTrainer

    resources = {"CPU": spec.cpus_per_worker}
    if spec.gpus_per_worker:
        resources["GPU"] = spec.gpus_per_worker
    job = job_config["job"]
    trainer = TensorflowTrainer(
        worker_loop,
        train_loop_config=job_config,
        scaling_config=ScalingConfig(
            num_workers=spec.num_workers,
            use_gpu=bool(spec.gpus_per_worker),
            resources_per_worker=resources,
        ),
        run_config=RunConfig(
            name=job, failure_config=FailureConfig(max_failures=spec.max_failures)
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
    workers = _worker_summaries(job_config["model_dir"], job)
    for worker in workers:
        task_log.info(
            "%s: global step %s, variables %s",
            worker["task"],
            worker["global_step"],
            worker["variables_fingerprint"][:16],
        )
    return {"job": job, "workers": workers}


def _worker_summaries(model_dir: str, job: str) -> list[dict[str, Any]]:
    from airflow_tfexp.experiment.storage.fs import filesystem, join

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
        parameter_server = sys.modules.get("airflow_tfexp.launchers.ray_parameter_server")
        if parameter_server is not None:  # on a remote cluster, stop the servers right away
            parameter_server.stop_cluster_tasks(killed=True)
        ray.shutdown()
