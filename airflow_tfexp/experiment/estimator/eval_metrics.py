"""Extra evaluation metrics (the Experiment's `eval_metrics`) on top of the compiled ones.

`eval_metrics` maps a name to a `keras.metrics.Metric`, a Keras metric name ("auc") or a function
`fn(y_true, y_pred)` averaged over examples. They are updated in the same compiled evaluation
loop as the model's own metrics.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import keras
import tensorflow as tf


def build_metric(name: str, spec: Any) -> keras.metrics.Metric:
    if isinstance(spec, keras.metrics.Metric):
        return spec
    if isinstance(spec, str):
        try:
            resolved = keras.metrics.get(spec)
        except ValueError as err:
            raise ValueError(
                f"Invalid value for `eval_metrics[{name!r}]`. Received: {spec!r}. {err}"
            ) from None
        if isinstance(resolved, keras.metrics.Metric):
            return resolved
        return keras.metrics.MeanMetricWrapper(resolved, name=name)
    if callable(spec):
        return keras.metrics.MeanMetricWrapper(spec, name=name)
    raise ValueError(
        f"Invalid value for `eval_metrics[{name!r}]`. Received: {spec!r}. Expected a "
        "keras.metrics.Metric, a Keras metric name or a function (y_true, y_pred)."
    )


class ExtraMetrics:
    """Named metrics and the compiled loop that updates them with the model's test step."""

    def __init__(
        self,
        model: keras.Model,
        strategy: tf.distribute.Strategy,
        spec: Mapping[str, Any],
        make_loop: Callable,
    ) -> None:
        if not isinstance(spec, Mapping):
            raise ValueError(
                f"Invalid value for `eval_metrics`. Received: {spec!r}. Expected a dict."
            )
        with strategy.scope():
            self.metrics = {
                str(name): build_metric(str(name), value) for name, value in spec.items()
            }

        def step(data: Any) -> None:
            model.test_step(data)
            x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
            y_pred = model(x, training=False)
            for metric in self.metrics.values():
                metric.update_state(y, y_pred, sample_weight=sample_weight)

        self.loop = make_loop(strategy, step)

    def reset(self) -> None:
        for metric in self.metrics.values():
            metric.reset_state()

    def results(self) -> dict[str, float]:
        return {name: float(metric.result()) for name, metric in self.metrics.items()}
