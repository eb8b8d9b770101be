"""The `distribution` section of a training step, checked before any worker starts.

Light to import (no Ray, no TensorFlow): operators validate it at DAG parse time.
"""

from __future__ import annotations

from typing import Any

STRATEGIES = ("mirrored", "multi_worker_mirrored", "parameter_server")
LAUNCHERS = ("local", "ray")
_FIELDS = (
    "strategy",
    "num_workers",
    "num_ps",
    "gpus_per_worker",
    "cpus_per_worker",
    "max_failures",
    "launcher",
)


def _count(name: str, value: Any, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(
            f"Invalid value for `distribution.{name}`. Received: {value!r}. "
            f"Expected an int >= {minimum}."
        )
    return value


class DistributionSpec:
    """How training is spread: a tf.distribute strategy, how many workers, on what launcher.

    :param strategy: "mirrored" (one process, all its GPUs), "multi_worker_mirrored"
        (data-parallel workers, launcher "ray") or "parameter_server" (launcher "ray": a
        chief coordinates `num_workers` workers that update variables held by `num_ps`
        parameter servers asynchronously).
    :param num_workers: workers (>= 1); more than one needs launcher "ray". With
        parameter_server, the workers besides the coordinating chief.
    :param num_ps: parameter servers (parameter_server only, >= 1 there).
    :param gpus_per_worker: GPUs each worker gets from Ray (0: CPU training).
    :param cpus_per_worker: CPUs each worker gets from Ray.
    :param max_failures: how often Ray restarts failed workers; training resumes from the last
        checkpoint each time.
    :param launcher: "local" (this task's process) or "ray".
    """

    def __init__(
        self,
        strategy: str = "mirrored",
        num_workers: int = 1,
        num_ps: int = 0,
        gpus_per_worker: int = 0,
        cpus_per_worker: int | float = 1,
        max_failures: int = 0,
        launcher: str = "local",
    ) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(
                f"Invalid value for `distribution.strategy`. Received: {strategy!r}. "
                f"Expected one of {list(STRATEGIES)}."
            )
        if launcher not in LAUNCHERS:
            raise ValueError(
                f"Invalid value for `distribution.launcher`. Received: {launcher!r}. "
                f"Expected one of {list(LAUNCHERS)}."
            )
        self.strategy = strategy
        self.num_workers = _count("num_workers", num_workers, 1)
        self.num_ps = _count("num_ps", num_ps, 0)
        self.gpus_per_worker = _count("gpus_per_worker", gpus_per_worker, 0)
        if (
            not isinstance(cpus_per_worker, int | float)
            or isinstance(cpus_per_worker, bool)
            or cpus_per_worker <= 0
        ):
            raise ValueError(
                "Invalid value for `distribution.cpus_per_worker`. Received: "
                f"{cpus_per_worker!r}. Expected a number > 0."
            )
        self.cpus_per_worker = cpus_per_worker
        self.max_failures = _count("max_failures", max_failures, 0)
        self.launcher = launcher
        self._check_combination()

    def _check_combination(self) -> None:
        if self.strategy == "mirrored" and self.num_workers != 1:
            raise ValueError(
                f"`distribution.strategy: mirrored` runs one process (num_workers: 1), got "
                f"num_workers: {self.num_workers}; use multi_worker_mirrored for several workers."
            )
        if self.strategy != "mirrored" and self.launcher != "ray":
            raise ValueError(
                f"`distribution.strategy: {self.strategy}` needs `launcher: ray`: Airflow "
                "cannot start several tasks that must run together."
            )
        if self.strategy == "parameter_server" and self.num_ps < 1:
            raise ValueError(
                "`distribution.strategy: parameter_server` needs `num_ps` >= 1 (the parameter "
                f"servers that hold the variables); got num_ps: {self.num_ps}."
            )
        if self.strategy != "parameter_server" and self.num_ps:
            raise ValueError(
                "`distribution.num_ps` is for strategy parameter_server only "
                f"(strategy is {self.strategy!r})."
            )

    @property
    def ray_cpus(self) -> float:
        """CPUs the job takes from Ray: its workers, plus the parameter servers and the
        coordinating chief (parameter_server) or Ray Train's controller."""
        if self.strategy == "parameter_server":
            return (self.num_workers + self.num_ps + 1) * self.cpus_per_worker
        return self.num_workers * self.cpus_per_worker + 1

    @classmethod
    def from_value(cls, value: Any) -> DistributionSpec | None:
        """None, a DistributionSpec, or a dict of its arguments (unknown keys are errors)."""
        if value is None or isinstance(value, DistributionSpec):
            return value
        if not isinstance(value, dict):
            raise ValueError(
                f"Invalid value for `distribution`. Received: {value!r}. Expected a mapping of "
                f"{list(_FIELDS)}."
            )
        unknown = sorted(set(value) - set(_FIELDS))
        if unknown:
            raise ValueError(
                f"Invalid keys in `distribution`: {unknown}. Expected some of {list(_FIELDS)}."
            )
        return cls(**value)

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _FIELDS}

    def __repr__(self) -> str:
        return f"DistributionSpec({self.as_dict()!r})"
