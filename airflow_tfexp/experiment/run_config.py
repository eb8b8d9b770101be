"""RunConfig: where a model lives, how often it is checkpointed, and which cluster task we are.

The cluster part is read from the `TF_CONFIG` environment variable, exactly as
`tf.estimator.RunConfig` did, so the same experiment runs locally, as a worker, as a parameter
server or as an evaluator without code changes. This module imports no TensorFlow.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from typing import Any

from airflow_tfexp.experiment._validation import check_int, check_optional_int

TF_CONFIG_ENV = "TF_CONFIG"
DEFAULT_SAVE_CHECKPOINTS_SECS = 600

# Task types of a TF_CONFIG cluster, as TensorFlow names them.
CHIEF = "chief"
MASTER = "master"
WORKER = "worker"
PS = "ps"
EVALUATOR = "evaluator"
TASK_TYPES = (CHIEF, MASTER, WORKER, PS, EVALUATOR)

_UNSET: Any = object()


@dataclasses.dataclass(frozen=True)
class ClusterInfo:
    """The parsed `TF_CONFIG`: the cluster and this process's place in it."""

    cluster_spec: dict[str, list[str]]
    task_type: str | None
    task_id: int
    model_dir: str | None = None

    @property
    def is_chief(self) -> bool:
        if self.task_type is None:
            return True
        if self.task_type in (CHIEF, MASTER):
            return True
        # Without a chief or master, worker 0 is the chief (MultiWorkerMirroredStrategy's rule).
        has_chief = CHIEF in self.cluster_spec or MASTER in self.cluster_spec
        return self.task_type == WORKER and self.task_id == 0 and not has_chief

    @property
    def master(self) -> str:
        if self.task_type is None or self.task_type == EVALUATOR:
            return ""
        return "grpc://" + self.cluster_spec[self.task_type][self.task_id]

    @property
    def num_worker_replicas(self) -> int:
        if not self.cluster_spec:
            return 1
        return sum(len(self.cluster_spec.get(t, [])) for t in (CHIEF, MASTER, WORKER))

    @property
    def num_ps_replicas(self) -> int:
        return len(self.cluster_spec.get(PS, []))


def parse_tf_config(raw: str | None) -> ClusterInfo:
    """Parse a `TF_CONFIG` JSON string; a ValueError names the malformed field."""
    if not raw or not raw.strip():
        return ClusterInfo(cluster_spec={}, task_type=None, task_id=0)
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as err:
        raise ValueError(f"Invalid `TF_CONFIG`: not JSON ({err}). Received: {raw!r}.") from None
    if not isinstance(data, dict):
        raise ValueError(f"Invalid `TF_CONFIG`: expected a JSON object. Received: {raw!r}.")

    cluster = _parse_cluster(data.get("cluster", {}))
    task = data.get("task", {})
    if not isinstance(task, dict):
        raise ValueError(f"Invalid `TF_CONFIG.task`. Received: {task!r}. Expected an object.")
    task_type = task.get("type")
    task_id = task.get("index", 0)
    if task_type is None:
        if cluster:
            raise ValueError(
                "Invalid `TF_CONFIG.task.type`: missing although `cluster` is set. "
                f"Expected one of {list(TASK_TYPES)}."
            )
        if task_id != 0:
            raise ValueError(
                f"Invalid `TF_CONFIG.task.index`: {task_id!r} given without a task type."
            )
    else:
        if task_type not in TASK_TYPES:
            raise ValueError(
                f"Invalid `TF_CONFIG.task.type`. Received: {task_type!r}. "
                f"Expected one of {list(TASK_TYPES)}."
            )
        if not isinstance(task_id, int) or isinstance(task_id, bool) or task_id < 0:
            raise ValueError(
                f"Invalid `TF_CONFIG.task.index`. Received: {task_id!r}. Expected an int >= 0."
            )
        # An evaluator is usually not part of the training cluster.
        if task_type != EVALUATOR:
            addresses = cluster.get(task_type)
            if not addresses:
                raise ValueError(
                    f"Invalid `TF_CONFIG.task.type`: {task_type!r} has no entry in "
                    f"`TF_CONFIG.cluster` (which has {sorted(cluster)})."
                )
            if task_id >= len(addresses):
                raise ValueError(
                    f"Invalid `TF_CONFIG.task.index`. Received: {task_id}. Expected an int below "
                    f"{len(addresses)}, the number of {task_type!r} tasks in the cluster."
                )
    model_dir = data.get("model_dir")
    if model_dir is not None and not isinstance(model_dir, str):
        raise ValueError(f"Invalid `TF_CONFIG.model_dir`. Received: {model_dir!r}. Expected a str.")
    return ClusterInfo(
        cluster_spec=cluster, task_type=task_type, task_id=task_id, model_dir=model_dir
    )


def _parse_cluster(cluster: Any) -> dict[str, list[str]]:
    if not isinstance(cluster, dict):
        raise ValueError(f"Invalid `TF_CONFIG.cluster`. Received: {cluster!r}. Expected an object.")
    parsed: dict[str, list[str]] = {}
    for job, addresses in cluster.items():
        if job not in TASK_TYPES:
            raise ValueError(
                f"Invalid `TF_CONFIG.cluster` job {job!r}. Expected one of {list(TASK_TYPES)}."
            )
        if not isinstance(addresses, list) or not all(
            isinstance(a, str) and ":" in a for a in addresses
        ):
            raise ValueError(
                f"Invalid `TF_CONFIG.cluster.{job}`. Received: {addresses!r}. "
                'Expected a list of "host:port" strings.'
            )
        parsed[job] = list(addresses)
    return parsed


class RunConfig:
    """Checkpointing, logging and cluster settings for an estimator.

    :param model_dir: directory for checkpoints, summaries, evaluation results and exports.
    :param save_checkpoints_steps: save a checkpoint every this many global steps.
    :param save_checkpoints_secs: save a checkpoint every this many seconds; 600 when neither
        this nor `save_checkpoints_steps` is given. Giving both is an error.
    :param keep_checkpoint_max: newest checkpoints to keep (older ones are deleted once every
        continuous evaluator has evaluated them). None or 0 keeps all.
    :param log_step_count_steps: log step, loss, steps/s and ETA every this many steps.
    :param save_summary_steps: write TensorBoard training summaries every this many steps.
    :param tf_random_seed: seed for Python, NumPy and TensorFlow random generators.
    :param tf_config: a `TF_CONFIG` JSON string; None reads the environment variable.
    """

    def __init__(
        self,
        model_dir: str | None = None,
        save_checkpoints_steps: int | None = None,
        save_checkpoints_secs: int | None = _UNSET,
        keep_checkpoint_max: int | None = 5,
        log_step_count_steps: int = 100,
        save_summary_steps: int = 100,
        tf_random_seed: int | None = None,
        tf_config: str | None = None,
    ) -> None:
        if save_checkpoints_steps is not None and save_checkpoints_secs not in (None, _UNSET):
            raise ValueError(
                "Can not provide both `save_checkpoints_secs` and `save_checkpoints_steps`. "
                f"Received: save_checkpoints_secs={save_checkpoints_secs}, "
                f"save_checkpoints_steps={save_checkpoints_steps}."
            )
        if save_checkpoints_secs is _UNSET:
            save_checkpoints_secs = (
                DEFAULT_SAVE_CHECKPOINTS_SECS if save_checkpoints_steps is None else None
            )
        self._save_checkpoints_steps = check_optional_int(
            "save_checkpoints_steps", save_checkpoints_steps, minimum=1
        )
        self._save_checkpoints_secs = check_optional_int(
            "save_checkpoints_secs", save_checkpoints_secs, minimum=1
        )
        self._keep_checkpoint_max = check_optional_int(
            "keep_checkpoint_max", keep_checkpoint_max, minimum=0
        )
        self._log_step_count_steps = check_int(
            "log_step_count_steps", log_step_count_steps, minimum=1
        )
        self._save_summary_steps = check_int("save_summary_steps", save_summary_steps, minimum=1)
        self._tf_random_seed = check_optional_int("tf_random_seed", tf_random_seed, minimum=0)
        raw = os.environ.get(TF_CONFIG_ENV) if tf_config is None else tf_config
        self._tf_config = raw
        self._cluster = parse_tf_config(raw)
        self._model_dir = model_dir if model_dir is not None else self._cluster.model_dir
        if self._model_dir is not None:
            self._model_dir = str(self._model_dir)

    def replace(self, **changes: Any) -> RunConfig:
        """A copy with some arguments changed (like `tf.estimator.RunConfig.replace`)."""
        arguments = self._arguments()
        unknown = sorted(set(changes) - set(arguments))
        if unknown:
            raise ValueError(
                f"RunConfig.replace got unknown arguments {unknown}. Allowed: {sorted(arguments)}."
            )
        if "save_checkpoints_steps" in changes and "save_checkpoints_secs" not in changes:
            arguments["save_checkpoints_secs"] = None
        if "save_checkpoints_secs" in changes and "save_checkpoints_steps" not in changes:
            arguments["save_checkpoints_steps"] = None
        arguments.update(changes)
        return RunConfig(**arguments)

    def _arguments(self) -> dict[str, Any]:
        return {
            "model_dir": self._model_dir,
            "save_checkpoints_steps": self._save_checkpoints_steps,
            "save_checkpoints_secs": self._save_checkpoints_secs,
            "keep_checkpoint_max": self._keep_checkpoint_max,
            "log_step_count_steps": self._log_step_count_steps,
            "save_summary_steps": self._save_summary_steps,
            "tf_random_seed": self._tf_random_seed,
            "tf_config": self._tf_config or "",
        }

    def __repr__(self) -> str:
        shown = {k: v for k, v in self._arguments().items() if k != "tf_config"}
        shown["task_type"], shown["task_id"] = self.task_type, self.task_id
        return "RunConfig(" + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ")"

    model_dir = property(lambda self: self._model_dir)
    save_checkpoints_steps = property(lambda self: self._save_checkpoints_steps)
    save_checkpoints_secs = property(lambda self: self._save_checkpoints_secs)
    keep_checkpoint_max = property(lambda self: self._keep_checkpoint_max)
    log_step_count_steps = property(lambda self: self._log_step_count_steps)
    save_summary_steps = property(lambda self: self._save_summary_steps)
    tf_random_seed = property(lambda self: self._tf_random_seed)
    cluster_spec = property(lambda self: dict(self._cluster.cluster_spec))
    task_type = property(lambda self: self._cluster.task_type)
    task_id = property(lambda self: self._cluster.task_id)
    is_chief = property(lambda self: self._cluster.is_chief)
    master = property(lambda self: self._cluster.master)
    num_worker_replicas = property(lambda self: self._cluster.num_worker_replicas)
    num_ps_replicas = property(lambda self: self._cluster.num_ps_replicas)


def as_run_config(config: RunConfig | Mapping[str, Any] | None) -> RunConfig:
    """Accept a RunConfig, a dict of its arguments, or None (all defaults)."""
    if config is None:
        return RunConfig()
    if isinstance(config, RunConfig):
        return config
    if isinstance(config, Mapping):
        return RunConfig(**config)
    raise ValueError(
        f"Invalid value for `config`. Received: {config!r}. Expected a RunConfig or a dict."
    )
