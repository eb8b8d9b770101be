"""The Experiment's constructor arguments: their defaults, bounds and checks, in one place.

The factory's config spec (`dag_factory/spec.py`) takes its bounds from here, so a value the
factory accepts is one the engine accepts. Where the factory's default differs on purpose, the
reason is written beside it. Light to import: no TensorFlow, no exporter classes.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from airflow_tfexp.experiment._validation import check_optional_int, check_optional_seconds

# Lower bounds (inclusive) of the integer arguments. train_steps=0 would train nothing and the
# estimator's `max_steps` must be >= 1, so both layers refuse it.
MINIMUM = {
    "train_steps": 1,
    "eval_steps": 1,
    "min_eval_frequency": 0,
    "local_eval_frequency": 0,
    "train_steps_per_iteration": 1,
}
# tf.contrib.learn.Experiment's defaults.
DEFAULTS: dict[str, Any] = {
    "train_steps": None,
    "eval_steps": 100,
    "eval_delay_secs": 120,
    "continuous_eval_throttle_secs": 60,
    "min_eval_frequency": None,
    "delay_workers_by_global_step": False,
    "train_steps_per_iteration": None,
    "checkpoint_and_export": False,
}
# A factory DAG orders its evaluation after checkpoints exist (a sensor or a trigger waits for
# them), so the seed's blind 120 s wait before the first evaluation would only add latency.
FACTORY_DEFAULTS = {**DEFAULTS, "eval_delay_secs": 0}


def check_estimator(estimator: Any, eval_metrics: Mapping[str, Any] | None) -> None:
    """The estimator must train, evaluate, have a model_dir, and take `eval_metrics` if given."""
    for method in ("train", "evaluate"):
        if not callable(getattr(estimator, method, None)):
            raise ValueError(
                f"`estimator` must implement train() and evaluate(). Received: {estimator!r}, "
                f"which has no callable {method}()."
            )
    if not isinstance(getattr(estimator, "model_dir", None), str | os.PathLike):
        raise ValueError(f"`estimator` must have a `model_dir`. Received: {estimator!r}.")
    if (
        eval_metrics is not None
        and "metrics" not in inspect.signature(estimator.evaluate).parameters
    ):
        raise ValueError(
            f"`eval_metrics` is not supported by {type(estimator).__name__}.evaluate(); "
            "compile the metrics into the model instead (model.compile(metrics=[...]))."
        )


def check_input_fns(**input_fns: Callable[[], Any]) -> None:
    for argument, fn in input_fns.items():
        if not callable(fn):
            raise ValueError(
                f"Invalid value for `{argument}`. Received: {fn!r}. Expected a callable."
            )


def check_flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"Invalid value for `{name}`. Received: {value!r}. Expected a bool.")
    return value


def check_export_strategies(export_strategies: Any, exporter_class: type) -> list[Any]:
    """None, one exporter or a sequence of them, with distinct names, as a list."""
    if export_strategies is None:
        return []
    strategies = (
        [export_strategies] if isinstance(export_strategies, exporter_class) else export_strategies
    )
    if not isinstance(strategies, Sequence) or isinstance(strategies, str):
        raise ValueError(
            f"Invalid value for `export_strategies`. Received: {export_strategies!r}. Expected an "
            "Exporter, a list of Exporters, or None."
        )
    for strategy in strategies:
        if not isinstance(strategy, exporter_class):
            raise ValueError(
                f"Invalid value in `export_strategies`. Received: {strategy!r}. Expected instances of "
                "LatestExporter, BestExporter, FinalExporter or another Exporter subclass."
            )
    names = [s.name for s in strategies]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"`export_strategies` must have distinct names; repeated: {duplicates}.")
    return list(strategies)


@dataclasses.dataclass(frozen=True)
class ExperimentArguments:
    """The Experiment's scalar arguments, checked (`checked`); delays and throttles of None are 0,
    `min_eval_frequency=None` is 1 (evaluate at every new checkpoint)."""

    train_steps: int | None
    eval_steps: int | None
    local_eval_frequency: int | None
    eval_delay_secs: float
    continuous_eval_throttle_secs: float
    min_eval_frequency: int
    delay_workers_by_global_step: bool
    train_steps_per_iteration: int | None
    checkpoint_and_export: bool
    check_interval_secs: float

    @classmethod
    def checked(
        cls,
        *,
        train_steps: Any,
        eval_steps: Any,
        local_eval_frequency: Any,
        eval_delay_secs: Any,
        continuous_eval_throttle_secs: Any,
        min_eval_frequency: Any,
        delay_workers_by_global_step: Any,
        train_steps_per_iteration: Any,
        checkpoint_and_export: Any,
        check_interval_secs: Any,
    ) -> ExperimentArguments:
        return cls(
            train_steps=check_count("train_steps", train_steps),
            eval_steps=check_count("eval_steps", eval_steps),
            local_eval_frequency=check_count("local_eval_frequency", local_eval_frequency),
            eval_delay_secs=check_optional_seconds("eval_delay_secs", eval_delay_secs) or 0,
            continuous_eval_throttle_secs=check_optional_seconds(
                "continuous_eval_throttle_secs", continuous_eval_throttle_secs
            )
            or 0,
            min_eval_frequency=1
            if min_eval_frequency is None
            else check_count("min_eval_frequency", min_eval_frequency),
            delay_workers_by_global_step=check_flag(
                "delay_workers_by_global_step", delay_workers_by_global_step
            ),
            train_steps_per_iteration=check_count(
                "train_steps_per_iteration", train_steps_per_iteration
            ),
            checkpoint_and_export=bool(checkpoint_and_export),
            check_interval_secs=check_optional_seconds("check_interval_secs", check_interval_secs)
            or 0,
        )


def check_count(name: str, value: Any) -> int | None:
    """None or an int >= the argument's MINIMUM."""
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
        raise ValueError(
            f"Invalid value for `{name}`. Received: {value!r}. Expected an int >= {MINIMUM[name]}."
        )
    return check_optional_int(name, value, minimum=MINIMUM[name])
