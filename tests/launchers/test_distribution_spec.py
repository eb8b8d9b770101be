"""The `distribution` section: every bad combination is refused before any worker starts."""

from __future__ import annotations

import pytest

from airflow_tfexp.launchers.spec import DistributionSpec


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            {"num_workers": 0, "strategy": "multi_worker_mirrored", "launcher": "ray"},
            "Invalid value for `distribution.num_workers`. Received: 0. Expected an int >= 1.",
        ),
        ({"strategy": "ring"}, "`distribution.strategy`. Received: 'ring'. Expected one of"),
        ({"launcher": "slurm"}, "`distribution.launcher`. Received: 'slurm'"),
        (
            {"strategy": "multi_worker_mirrored", "num_workers": 2},
            "multi_worker_mirrored` needs `launcher: ray`",
        ),
        ({"strategy": "mirrored", "num_workers": 2, "launcher": "ray"}, "runs one process"),
        ({"gpus_per_worker": -1}, "`distribution.gpus_per_worker`. Received: -1"),
        ({"cpus_per_worker": 0}, "`distribution.cpus_per_worker`. Received: 0"),
        ({"max_failures": "3"}, "`distribution.max_failures`. Received: '3'"),
        (
            {"strategy": "parameter_server", "num_ps": 1, "num_workers": 2},
            "`distribution.strategy: parameter_server` needs `launcher: ray`",
        ),
        (
            {"strategy": "parameter_server", "num_workers": 2, "launcher": "ray"},
            "parameter_server` needs `num_ps` >= 1 (the parameter servers that hold the "
            "variables); got num_ps: 0",
        ),
        (
            {"strategy": "parameter_server", "num_ps": -1, "launcher": "ray"},
            "`distribution.num_ps`. Received: -1. Expected an int >= 0",
        ),
        ({"num_ps": 1}, "`distribution.num_ps` is for strategy parameter_server only"),
        ({"workers": 2}, "Invalid keys in `distribution`: ['workers']"),
        ("ray", "Invalid value for `distribution`. Received: 'ray'"),
    ],
)
def test_bad_distributions_name_the_field(value, message):
    with pytest.raises(ValueError) as err:
        DistributionSpec.from_value(value)
    assert message in str(err.value)


def test_a_good_distribution_round_trips():
    spec = DistributionSpec.from_value(
        {
            "strategy": "multi_worker_mirrored",
            "num_workers": 2,
            "launcher": "ray",
            "max_failures": 1,
        }
    )
    assert spec.as_dict() == {
        "strategy": "multi_worker_mirrored",
        "num_workers": 2,
        "num_ps": 0,
        "gpus_per_worker": 0,
        "cpus_per_worker": 1,
        "max_failures": 1,
        "launcher": "ray",
    }
    assert DistributionSpec.from_value(spec.as_dict()).as_dict() == spec.as_dict()
    assert spec.ray_cpus == 3  # two workers and Ray Train's controller


def test_a_parameter_server_cluster_takes_cpus_for_workers_ps_and_chief():
    spec = DistributionSpec(
        "parameter_server", num_workers=2, num_ps=1, cpus_per_worker=2, launcher="ray"
    )
    assert (spec.num_workers, spec.num_ps, spec.ray_cpus) == (2, 1, 8)
