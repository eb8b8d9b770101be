"""Parameter-server training on Ray: every task of the TensorFlow cluster is a Ray actor.

The ps and worker actors run the engine's `Experiment.run_std_server` (a `tf.distribute.Server`
serving until the chief writes the completion marker); the chief actor trains: its
ParameterServerStrategy coordinator schedules steps on the workers and checkpoints the
variables the parameter servers hold. The Airflow task drives the actors and stops every one
of them when the chief finishes or fails, so no server outlives its training (with a remote
cluster, Ray also stops them when the driver goes away). A failed attempt is retried with a
fresh cluster up to `max_failures` times; training resumes from the last checkpoint.

Ray is imported only inside functions (`pip install airflow-tfexp[ray]`).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from typing import Any

from airflow_tfexp.launchers.spec import DistributionSpec

SERVER_START_TIMEOUT_SECS = 120
SERVER_EXIT_TIMEOUT_SECS = 60
# The actors of the running attempt, for `stop_cluster_tasks` when the Airflow task is killed.
_LIVE_ACTORS: list[Any] = []
_KILLED = threading.Event()  # the task was killed: no fresh cluster after the failure it causes


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


class ClusterTask:
    """One task of the cluster, in a Ray actor: reserves an address on its node, then serves
    (ps, worker) or trains as the coordinating chief."""

    def __init__(self, task_type: str, task_id: int) -> None:
        import ray

        self.task_type, self.task_id = task_type, task_id
        self.host = ray.util.get_node_ip_address()
        self.port = _free_port(self.host)

    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def listening(self) -> bool:
        """Whether this task's server accepts connections yet."""
        with socket.socket() as probe:
            probe.settimeout(1)
            return probe.connect_ex((self.host, self.port)) == 0

    def _experiment(self, config: dict[str, Any]) -> Any:
        from airflow_tfexp.launchers.ray_worker import build_worker_experiment

        os.environ["TF_CONFIG"] = json.dumps(
            {"cluster": config["cluster"], "task": {"type": self.task_type, "index": self.task_id}}
        )
        return build_worker_experiment(config)

    def serve(self, config: dict[str, Any]) -> dict[str, Any]:
        """ps and worker: the engine's std server, until the chief marks training complete."""
        started = time.monotonic()
        self._experiment(config).run_std_server()
        return {
            "task": f"{self.task_type}-{self.task_id}",
            "pid": os.getpid(),
            "served_secs": round(time.monotonic() - started, 3),
        }

    def train(self, config: dict[str, Any]) -> dict[str, Any]:
        """chief: coordinate training to the experiment's train_steps."""
        from airflow_tfexp.launchers.ray_worker import train_and_summarize

        experiment = self._experiment(config)
        summary = train_and_summarize(experiment)
        summary["variable_devices"] = experiment.estimator.variable_devices()
        return summary


class _Attempt:
    """One cluster: start the actors, serve, train, stop them all."""

    def __init__(self, spec: DistributionSpec, job_config: dict[str, Any], task_log: Any) -> None:
        import ray

        self.ray, self.spec, self.job_config, self.log = ray, spec, job_config, task_log
        actor = ray.remote(ClusterTask)
        cpus = spec.cpus_per_worker
        # Servers answer `listening` while they serve: two threads each.
        self.servers = {
            ("ps", i): actor.options(num_cpus=cpus, max_concurrency=2).remote("ps", i)
            for i in range(spec.num_ps)
        }
        self.servers.update(
            {
                ("worker", i): actor.options(
                    num_cpus=cpus, num_gpus=spec.gpus_per_worker, max_concurrency=2
                ).remote("worker", i)
                for i in range(spec.num_workers)
            }
        )
        self.chief = actor.options(num_cpus=cpus).remote("chief", 0)
        _LIVE_ACTORS[:] = [self.chief, *self.servers.values()]

    def run(self) -> dict[str, Any]:
        ray = self.ray
        try:
            tasks = {**self.servers, ("chief", 0): self.chief}
            addresses = dict(
                zip(tasks, ray.get([a.address.remote() for a in tasks.values()]), strict=True)
            )
            cluster: dict[str, list[str]] = {}
            for (task_type, _), address in sorted(addresses.items()):
                cluster.setdefault(task_type, []).append(address)
            config = {**self.job_config, "cluster": cluster}
            serving = {
                self.servers[key].serve.remote(config): f"{key[0]}:{key[1]}" for key in self.servers
            }
            self._wait_until_listening(serving)
            self.log.info(
                "Parameter-server cluster up: chief %s, workers %s, ps %s. Training.",
                cluster["chief"][0],
                cluster["worker"],
                cluster["ps"],
            )
            summary = ray.get(self.chief.train.remote(config))
            return {
                "job": self.job_config["job"],
                "workers": [summary],
                **self._servers_exit(serving),
            }
        finally:
            stop_cluster_tasks()

    def _wait_until_listening(self, serving: dict[Any, str]) -> None:
        ray = self.ray
        deadline = time.monotonic() + SERVER_START_TIMEOUT_SECS
        waiting = dict(self.servers)
        while waiting:
            failed, _ = ray.wait(list(serving), timeout=0)
            for ref in failed:  # a server that returned before training started has failed
                ray.get(ref)
                raise RuntimeError(f"{serving[ref]} stopped serving before training started.")
            ready = ray.get([handle.listening.remote() for handle in waiting.values()])
            waiting = {
                key: h for (key, h), up in zip(waiting.items(), ready, strict=True) if not up
            }
            if waiting and time.monotonic() > deadline:
                raise RuntimeError(
                    f"Servers {sorted(waiting)} did not start listening within "
                    f"{SERVER_START_TIMEOUT_SECS} s."
                )
            time.sleep(0.2 if waiting else 0)

    def _servers_exit(self, serving: dict[Any, str]) -> dict[str, Any]:
        """Servers stop on their own once the chief marked training complete."""
        ray = self.ray
        done, pending = ray.wait(
            list(serving), num_returns=len(serving), timeout=SERVER_EXIT_TIMEOUT_SECS
        )
        exited = [ray.get(ref) for ref in done]
        for server in exited:
            self.log.info("%s exited after serving %.1f s.", server["task"], server["served_secs"])
        stopped = sorted(serving[ref] for ref in pending)
        if stopped:
            self.log.warning(
                "%s did not exit within %d s of training completing: stopping them.",
                stopped,
                SERVER_EXIT_TIMEOUT_SECS,
            )
        return {"servers": sorted(exited, key=lambda s: s["task"]), "stopped_servers": stopped}


def stop_cluster_tasks(killed: bool = False) -> None:
    """Stop every actor of the running attempt (ps, workers, chief); `killed`: the Airflow
    task is being killed, so no further attempt starts."""
    import ray

    if killed:
        _KILLED.set()
    while _LIVE_ACTORS:
        try:
            actor = _LIVE_ACTORS.pop()
        except IndexError:  # the task's kill handler emptied it meanwhile
            return
        ray.kill(actor, no_restart=True)


def fit_parameter_server(
    spec: DistributionSpec, job_config: dict[str, Any], task_log: Any
) -> dict[str, Any]:
    """Train with `spec.num_ps` ps, `spec.num_workers` workers and a chief; raise with the
    failing task's error once `max_failures` fresh clusters have failed too."""
    import ray

    attempts = spec.max_failures + 1
    task_log.info(
        "Training on Ray: parameter_server with %d worker(s) and %d ps, %s CPU and %d GPU per "
        "worker, up to %d restart(s).",
        spec.num_workers,
        spec.num_ps,
        spec.cpus_per_worker,
        spec.gpus_per_worker,
        spec.max_failures,
    )
    _KILLED.clear()
    for attempt in range(1, attempts + 1):
        try:
            return _Attempt(spec, job_config, task_log).run()
        except (ray.exceptions.RayError, RuntimeError) as err:
            if _KILLED.is_set():
                raise RuntimeError("Ray training stopped: the Airflow task was killed.") from err
            if attempt == attempts:
                raise RuntimeError(f"Ray training failed: {err}") from err
            task_log.warning(
                "Attempt %d of %d failed, all its servers stopped; starting a fresh cluster, "
                "which resumes from the last checkpoint. The error: %s",
                attempt,
                attempts,
                err,
            )
    raise AssertionError("unreachable")
