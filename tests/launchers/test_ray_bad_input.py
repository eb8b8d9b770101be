"""Ray settings that cannot work fail with a clear error before any worker starts."""

from __future__ import annotations

import pytest

from airflow_tfexp.launchers.ray_launcher import ray_address, train_on_ray
from airflow_tfexp.launchers.spec import DistributionSpec

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
TWO_WORKERS = {"strategy": "multi_worker_mirrored", "num_workers": 2, "launcher": "ray"}


def test_gpus_the_cluster_lacks_are_refused_before_workers_start(tmp_path):
    with pytest.raises(ValueError) as err:
        train_on_ray(
            experiment_fn="tests.experiment.tiny_experiment:experiment_fn",
            model_dir=str(tmp_path),
            params={},
            spec=DistributionSpec(**TWO_WORKERS, gpus_per_worker=1),
        )
    assert str(err.value) == (
        "`distribution.gpus_per_worker: 1` x 2 workers needs 2 GPUs; the Ray cluster has 0."
    )
    assert not list(tmp_path.iterdir())  # no worker ran


def test_an_unreachable_ray_address_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_RAY_DEFAULT", "ray://127.0.0.1:1")
    assert ray_address("ray_default", None) == "ray://127.0.0.1:1"
    # Nothing listens on port 1: refused at once, before Ray's client retries for ~35 s.
    with pytest.raises(ValueError) as err:
        train_on_ray(
            experiment_fn="tests.experiment.tiny_experiment:experiment_fn",
            model_dir=str(tmp_path),
            params={},
            spec=DistributionSpec(**TWO_WORKERS),
            ray_conn_id="ray_default",
        )
    assert str(err.value).startswith("Cannot reach the Ray cluster at 'ray://127.0.0.1:1': ")
    assert "Connection refused" in str(err.value)
    assert "port 10001 by default" in str(err.value)
    assert not list(tmp_path.iterdir())


def test_without_a_connection_an_embedded_ray_is_used(monkeypatch):
    import logging

    monkeypatch.delenv("AIRFLOW_CONN_RAY_DEFAULT", raising=False)
    assert ray_address("ray_default", logging.getLogger(__name__)) is None
    assert ray_address(None, None) is None
