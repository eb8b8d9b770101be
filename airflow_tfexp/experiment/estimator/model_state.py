"""A built Keras model with its checkpoint and compiled step loops, and the small conversions
the estimator's loops share (datasets, batches, metrics as floats, a metrics table)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import keras
import tensorflow as tf

from airflow_tfexp.experiment.errors import CheckpointError
from airflow_tfexp.experiment.estimator.checkpoint_manager import ProtectingCheckpointManager
from airflow_tfexp.experiment.estimator.eval_metrics import ExtraMetrics
from airflow_tfexp.experiment.evaluation.results import to_jsonable
from airflow_tfexp.experiment.storage import checkpoints as ckpts


class ModelState:
    """A built model with its checkpoint object and compiled step functions."""

    def __init__(self, model: keras.Model, strategy: tf.distribute.Strategy) -> None:
        self.model = model
        self.strategy = strategy
        self.checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer)
        self.manager: ProtectingCheckpointManager | None = None
        self.train_steps_fn = make_loop(strategy, model.train_step)
        self.test_steps_fn = make_loop(strategy, model.test_step)
        self.restored_from: str | None = None
        self._extra_metrics: dict[tuple, ExtraMetrics] = {}

    def evaluation_loop(
        self, metrics: Mapping[str, Any] | None
    ) -> tuple[Callable, ExtraMetrics | None]:
        """The compiled evaluation loop, with `metrics` (built once per distinct dict) added."""
        if not metrics:
            return self.test_steps_fn, None
        key = tuple(
            (name, id(value)) for name, value in sorted(metrics.items(), key=lambda kv: str(kv[0]))
        )
        if key not in self._extra_metrics:
            self._extra_metrics[key] = ExtraMetrics(self.model, self.strategy, metrics, make_loop)
        extra = self._extra_metrics[key]
        extra.reset()
        return extra.loop, extra

    @property
    def global_step(self) -> int:
        return int(self.model.optimizer.iterations.numpy())

    def restore(
        self, checkpoint_path: str, *, partial: bool, local_path: str | None = None
    ) -> None:
        """Restore `checkpoint_path` (checked complete where it lives) from `local_path`, its
        local copy when the model dir is on GCS."""
        if not ckpts.is_complete(checkpoint_path):
            raise CheckpointError(
                f"Checkpoint {checkpoint_path} is missing or incomplete (its .index or a data shard is "
                "missing); refusing to use it."
            )
        try:
            status = self.checkpoint.restore(local_path or checkpoint_path)
            if partial:
                status.expect_partial()
            else:
                status.assert_existing_objects_matched()
        except Exception as err:  # noqa: BLE001 - TF raises OpError, IndexError, ValueError, ...
            raise CheckpointError(
                f"Checkpoint {checkpoint_path} is corrupt or does not match the model: {err}"
            ) from err
        self.restored_from = checkpoint_path


def make_loop(strategy: tf.distribute.Strategy, step_fn: Callable) -> Callable:
    """A compiled loop running `step_fn` on up to `n` batches; returns how many it ran."""

    @tf.function
    def run_steps(iterator: Any, n: tf.Tensor) -> tf.Tensor:
        done = tf.constant(0, dtype=tf.int64)
        for _ in tf.range(n):
            optional = iterator.get_next_as_optional()
            if not optional.has_value():
                break
            strategy.run(step_fn, args=(optional.get_value(),))
            done += 1
        return done

    return run_steps


def metrics_as_floats(model: keras.Model) -> dict[str, float]:
    return {k: float(v) for k, v in to_jsonable(model.get_metrics_result()).items() if is_number(v)}


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def as_dataset(value: Any) -> tf.data.Dataset:
    if isinstance(value, tf.data.Dataset):
        return value
    raise ValueError(
        f"An input_fn must return a tf.data.Dataset of (features, labels). Received: {type(value).__name__}."
    )


def split_batch(batch: Any) -> tuple[Any, Any]:
    if isinstance(batch, tuple):
        return batch[0], (batch[1] if len(batch) > 1 else None)
    return batch, None


def metrics_table(result: Mapping[str, Any]) -> str:
    width = max(len(k) for k in result)
    return "\n".join(
        f"  {k.ljust(width)}  {v:.6g}" if is_number(v) else f"  {k.ljust(width)}  {v}"
        for k, v in result.items()
    )
