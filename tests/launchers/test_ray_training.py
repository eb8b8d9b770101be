"""Multi-worker training on an embedded Ray with CPU workers (MultiWorkerMirroredStrategy)."""

from __future__ import annotations

import pytest

from airflow_tfexp.experiment import RunConfig
from airflow_tfexp.experiment.checkpoints import list_checkpoints
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
