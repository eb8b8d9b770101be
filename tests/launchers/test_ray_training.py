"""Multi-worker training on an embedded Ray with CPU workers (MultiWorkerMirroredStrategy)."""

from __future__ import annotations

import pytest

from airflow_tfexp.experiment import RunConfig
from airflow_tfexp.experiment.storage.checkpoints import list_checkpoints
from airflow_tfexp.launchers.spec import DistributionSpec
from tests.e2e.cluster import ROOT
from tests.experiment.tiny_experiment import experiment_fn

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
PARAMS = {"train_steps": 60, "save_checkpoints_steps": 20, "keep_checkpoint_max": None}


def test_two_workers_reach_train_steps_exactly_with_identical_replicas(tmp_path, monkeypatch):
    from airflow_tfexp.launchers.ray_launcher import train_on_ray

    monkeypatch.setenv("PYTHONPATH", ROOT)  # the workers import the tests' experiment
    model_dir = str(tmp_path / "two")
    result = train_on_ray(
        experiment_fn="tests.experiment.tiny_experiment:experiment_fn",
        model_dir=model_dir,
        params=PARAMS,
        spec=DistributionSpec("multi_worker_mirrored", num_workers=2, launcher="ray"),
    )
    workers = result["workers"]
    assert [w["task"] for w in workers] == ["worker-0", "worker-1"]
    assert [w["global_step"] for w in workers] == [60, 60]
    assert workers[0]["variables_fingerprint"] == workers[1]["variables_fingerprint"]
    assert [c.global_step for c in list_checkpoints(model_dir)] == [0, 20, 40, 60]

    # The same experiment on one worker, in this process: the 2-worker model (global batch 32
    # instead of 16) evaluates about as well on the same data.
    single = experiment_fn(RunConfig(model_dir=str(tmp_path / "one")), PARAMS)
    single.train()
    one = single.evaluate(name="compare")["accuracy"]
    two = experiment_fn(RunConfig(model_dir=model_dir), PARAMS).evaluate(name="compare")["accuracy"]
    print(f"accuracy after 60 steps: 1 worker {one:.4f}, 2 workers {two:.4f}")
    assert abs(one - two) <= 0.1


def test_a_killed_worker_is_restarted_by_ray_and_training_resumes_from_the_checkpoint(
    tmp_path, monkeypatch
):
    import os
    import signal
    import threading
    import time

    from airflow_tfexp.launchers.ray_launcher import train_on_ray

    monkeypatch.setenv("PYTHONPATH", ROOT)
    model_dir = str(tmp_path / "killed")
    pid_file, step_log = str(tmp_path / "worker.pid"), str(tmp_path / "steps.log")
    params = {
        **PARAMS,
        "train_steps": 100,
        "step_sleep_secs": 0.05,
        "pid_file": pid_file,
        "step_log": step_log,
    }
    outcome: dict = {}

    def drive():
        try:
            outcome["result"] = train_on_ray(
                experiment_fn="tests.experiment.tiny_experiment:experiment_fn",
                model_dir=model_dir,
                params=params,
                spec=DistributionSpec(
                    "multi_worker_mirrored", num_workers=2, max_failures=1, launcher="ray"
                ),
            )
        except Exception as err:  # noqa: BLE001 - reported by the assertion below
            outcome["error"] = err

    driver = threading.Thread(target=drive)
    driver.start()
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        steps = (
            [c.global_step for c in list_checkpoints(model_dir)] if os.path.isdir(model_dir) else []
        )
        if steps and max(steps) >= 40 and os.path.exists(pid_file):
            break
        time.sleep(0.2)
    else:
        raise AssertionError("training never reached step 40")
    killed_after = max(c.global_step for c in list_checkpoints(model_dir))
    killed_pid = int(open(pid_file).read())
    os.kill(killed_pid, signal.SIGKILL)
    driver.join(timeout=400)
    assert "error" not in outcome, outcome.get("error")
    workers = outcome["result"]["workers"]
    assert [w["global_step"] for w in workers] == [100, 100]
    assert workers[0]["variables_fingerprint"] == workers[1]["variables_fingerprint"]
    assert int(open(pid_file).read()) != killed_pid  # a restarted worker group finished
    trained = [int(line) for line in open(step_log).read().split()]
    # Both workers trained every step; step 1 only once each: the restarted group resumed
    # from a checkpoint, not from scratch. Steps trained again after the restart (none when
    # the kill fell right on a checkpoint) all come after the checkpoint present at the kill.
    assert trained.count(1) == 2
    assert [s for s in range(1, 101) if trained.count(s) < 2] == []
    repeated = sorted(s for s in set(trained) if trained.count(s) > 2)
    assert repeated == [] or repeated[0] > killed_after, (killed_after, repeated)
    print(f"killed a worker after checkpoint {killed_after}; steps trained again: {repeated}")
