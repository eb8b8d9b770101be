"""Parameter-server training on Ray (1 ps, 2 workers, a coordinating chief), checked against the
process list: every server it started is gone afterwards, after success and after failure."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time

import psutil
import pytest

from airflow_tfexp.experiment import RunConfig
from airflow_tfexp.experiment.storage.checkpoints import list_checkpoints
from airflow_tfexp.launchers.spec import DistributionSpec
from tests.e2e.cluster import ROOT
from tests.experiment.processes import wait_until
from tests.experiment.tiny_experiment import experiment_fn

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
EXPERIMENT = "tests.experiment.tiny_experiment:experiment_fn"
PARAMS = {"train_steps": 60, "save_checkpoints_steps": 20, "keep_checkpoint_max": None}
ACTOR_TITLE = "ray::ClusterTask"
RAY_CLI = os.path.join(os.path.dirname(sys.executable), "ray")


def parameter_server(max_failures: int = 0) -> DistributionSpec:
    return DistributionSpec(
        "parameter_server", num_workers=2, num_ps=1, max_failures=max_failures, launcher="ray"
    )


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def cluster_task_pids() -> set[int]:
    pids = set()
    for process in psutil.process_iter(["cmdline"]):
        if any(ACTOR_TITLE in part for part in process.info["cmdline"] or ()):
            pids.add(process.pid)
    return pids


class ProcessWatch:
    """Records every cluster-task process seen while it runs (so the "none left" check has
    something to fail on)."""

    def __init__(self) -> None:
        self.seen: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.is_set():
            self.seen |= cluster_task_pids()
            time.sleep(0.2)

    def __enter__(self) -> ProcessWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def wait_until_gone(pids: set[int], timeout: float = 30) -> set[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = {pid for pid in pids if alive(pid)}
        if not left:
            return left
        time.sleep(0.5)
    return left


def new_ray_processes(before: set[int]) -> list[str]:
    """Processes started since `before` that are still running and belong to Ray or this test."""
    me = os.getpid()
    found = []
    for process in psutil.process_iter(["cmdline", "ppid"]):
        if process.pid in before or process.pid == me or not alive(process.pid):
            continue
        cmdline = " ".join(process.info["cmdline"] or ())
        try:
            ours = any(parent.pid == me for parent in process.parents())
        except psutil.NoSuchProcess:
            continue
        if ours or "ray" in cmdline:
            found.append(f"{process.pid}: {cmdline[:120]}")
    return found


def test_parameter_server_trains_exactly_and_leaves_no_process_behind(tmp_path, monkeypatch):
    from airflow_tfexp.launchers.ray_launcher import train_on_ray

    monkeypatch.setenv("PYTHONPATH", ROOT)  # the actors import the tests' experiment
    monkeypatch.delenv("AIRFLOW_CONN_RAY_DEFAULT", raising=False)
    before = {p.pid for p in psutil.process_iter()}
    model_dir = str(tmp_path / "ps")
    with ProcessWatch() as watch:
        result = train_on_ray(
            experiment_fn=EXPERIMENT, model_dir=model_dir, params=PARAMS, spec=parameter_server()
        )
    chief = result["workers"][0]
    assert (chief["task"], chief["global_step"]) == ("chief-0", 60)
    assert [c.global_step for c in list_checkpoints(model_dir)] == [0, 20, 40, 60]
    assert chief["variable_devices"] == ["/job:ps/replica:0/task:0/device:CPU:0"]
    # Every server left serving by itself once the chief marked training complete.
    assert [s["task"] for s in result["servers"]] == ["ps-0", "worker-0", "worker-1"]
    assert result["stopped_servers"] == []

    started = {chief["pid"], *(s["pid"] for s in result["servers"])}
    assert started <= watch.seen and len(started) == 4
    assert wait_until_gone(watch.seen) == set()
    deadline = time.monotonic() + 30
    while (left := new_ray_processes(before)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert left == []

    # The chief's checkpoint restores in a single process and has learned as well as
    # single-process training of the same steps (asynchronous updates: a looser tolerance).
    single = experiment_fn(RunConfig(model_dir=str(tmp_path / "one")), PARAMS)
    single.train()
    one = single.evaluate(name="compare")["accuracy"]
    ps = experiment_fn(RunConfig(model_dir=model_dir), PARAMS).evaluate(name="compare")["accuracy"]
    print(f"accuracy after 60 steps: single process {one:.4f}, parameter server {ps:.4f}")
    assert abs(one - ps) <= 0.15


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), 2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    """A separate Ray cluster (`ray start --head`), as a user's would be: it outlives the task,
    so only the launcher can stop the servers it started there."""
    gcs_port, client_port = _free_port(), _free_port()
    # Without token authentication: whether this process's Ray runs in token mode depends on
    # whether an embedded Ray started here earlier (Ray 2.60 turns it on for those).
    env = {
        **os.environ,
        "PYTHONPATH": ROOT,
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_AUTH_MODE": "disabled",
    }
    started = subprocess.run(
        [
            RAY_CLI,
            "start",
            "--head",
            f"--port={gcs_port}",
            f"--ray-client-server-port={client_port}",
            "--num-cpus=4",
            "--include-dashboard=false",
            "--disable-usage-stats",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert started.returncode == 0, started.stdout + started.stderr
    # `ray start` returns before the head's client server listens (seconds under load).
    wait_until(lambda: _listening(client_port), 120, 0.5, f"Ray's client server on {client_port}")
    yield {"gcs": f"127.0.0.1:{gcs_port}", "client_port": client_port}
    subprocess.run([RAY_CLI, "stop", "--force"], env=env, capture_output=True, timeout=120)


@pytest.fixture
def on_ray_cluster(monkeypatch, ray_cluster):
    """The `ray_default` connection points at the cluster as a user points at a KubeRay head:
    host and port of its Ray client server."""
    monkeypatch.setenv("PYTHONPATH", ROOT)  # the actors import the tests' experiment
    monkeypatch.setenv(
        "AIRFLOW_CONN_RAY_DEFAULT",
        f'{{"conn_type": "generic", "host": "127.0.0.1", "port": {ray_cluster["client_port"]}}}',
    )
    return ray_cluster


def test_a_failed_chief_is_retried_on_a_fresh_cluster_then_fails_with_its_error(
    tmp_path, on_ray_cluster
):
    from airflow_tfexp.launchers.ray_launcher import train_on_ray

    # Fails once at step 40 (checkpoints 0 and 20 written); the second cluster resumes.
    model_dir = str(tmp_path / "retried")
    step_log = str(tmp_path / "steps.log")
    params = {
        **PARAMS,
        "fail_at_step": 40,
        "fail_once_file": str(tmp_path / "failed-once"),
        "step_log": step_log,
    }
    with ProcessWatch() as watch:
        result = train_on_ray(
            experiment_fn=EXPERIMENT,
            model_dir=model_dir,
            params=params,
            spec=parameter_server(max_failures=1),
            ray_conn_id="ray_default",
        )
    assert result["workers"][0]["global_step"] == 60
    chunks = [int(line) for line in open(step_log).read().split()]
    assert chunks == [20, 40, 40, 60]  # the fresh cluster resumed from checkpoint 20
    assert len(watch.seen) == 8  # two clusters of four
    assert wait_until_gone(watch.seen) == set()

    # Failing every time: the task fails with the chief's own error, no server left running
    # on the cluster (which is still up).
    params = {**PARAMS, "fail_at_step": 40}
    with ProcessWatch() as watch, pytest.raises(RuntimeError) as err:
        train_on_ray(
            experiment_fn=EXPERIMENT,
            model_dir=str(tmp_path / "failed"),
            params=params,
            spec=parameter_server(),
            ray_conn_id="ray_default",
        )
    assert "Ray training failed" in str(err.value)
    assert "RuntimeError: injected failure at step 40" in str(err.value)
    assert len(watch.seen) == 4
    assert wait_until_gone(watch.seen) == set()
    assert cluster_task_pids() == set()
    status = subprocess.run(
        [RAY_CLI, "status", f"--address={on_ray_cluster['gcs']}"], capture_output=True, timeout=60
    )
    assert status.returncode == 0  # the cluster itself is still running


def test_killing_the_airflow_task_stops_every_server_and_starts_no_other(tmp_path, on_ray_cluster):
    from airflow_tfexp.launchers.ray_launcher import train_on_ray
    from airflow_tfexp.operators import TrainOperator

    model_dir = str(tmp_path / "killed")
    spec = parameter_server(max_failures=2)  # a kill must not count as a failure to retry
    task = TrainOperator(
        task_id="train", experiment_fn=EXPERIMENT, model_dir=model_dir, distribution=spec.as_dict()
    )
    outcome: dict = {}

    def execute():  # what the task's execute() runs
        try:
            train_on_ray(
                experiment_fn=EXPERIMENT,
                model_dir=model_dir,
                params={**PARAMS, "train_steps": 1_000_000},
                spec=spec,
                ray_conn_id="ray_default",
            )
        except Exception as err:  # noqa: BLE001 - checked below
            outcome["error"] = err

    with ProcessWatch() as watch:
        driver = threading.Thread(target=execute)
        driver.start()
        deadline = time.monotonic() + 120
        while not (os.path.isdir(model_dir) and len(list_checkpoints(model_dir)) >= 2):
            assert time.monotonic() < deadline, "training never wrote checkpoint 20"
            time.sleep(0.2)
        killed_at = time.monotonic()
        task.on_kill()  # Airflow calls it when the task is killed (SIGTERM)
        driver.join(timeout=60)
        assert not driver.is_alive()
        gone = wait_until_gone(watch.seen, timeout=20)
        stop_secs = time.monotonic() - killed_at
    assert str(outcome["error"]) == "Ray training stopped: the Airflow task was killed."
    assert len(watch.seen) == 4 and gone == set()  # one cluster, not restarted
    print(f"all 4 cluster tasks gone {stop_secs:.1f} s after on_kill")
    assert cluster_task_pids() == set()
