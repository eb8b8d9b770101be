"""A custom loss and a custom metric, registered as serializable the way Keras asks."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

TRAIN_STEPS = 80
METRIC, AT_LEAST = "within_half", 0.6
OUTPUTS = ["output_0"]


def examples(n: int, seed: int) -> tuple[Any, Any]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5)).astype("float32")
    return x, (x @ np.array([1.0, -2.0, 0.5, 0.0, 1.5], "float32"))[:, None]


def as_request(features: Any) -> dict[str, Any]:
    return {"measurements": features}


@keras.saving.register_keras_serializable(package="tfexp_zoo")
def pseudo_huber(y_true: Any, y_pred: Any) -> Any:
    error = y_pred - y_true
    return keras.ops.mean(keras.ops.sqrt(1.0 + keras.ops.square(error)) - 1.0, axis=-1)


@keras.saving.register_keras_serializable(package="tfexp_zoo")
class WithinHalf(keras.metrics.Metric):
    """The fraction of predictions within 0.5 of the label."""

    def __init__(self, name: str = "within_half", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.hits = self.add_variable(shape=(), initializer="zeros", name="hits")
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        close = keras.ops.cast(keras.ops.abs(y_true - y_pred) < 0.5, "float32")
        self.hits.assign_add(keras.ops.sum(close))
        self.total.assign_add(keras.ops.cast(keras.ops.size(close), "float32"))

    def result(self) -> Any:
        return self.hits / keras.ops.maximum(self.total, 1.0)


def model_fn(params: dict[str, Any]) -> Any:
    model = keras.Sequential(
        [keras.Input((5,), name="measurements"), keras.layers.Dense(1, use_bias=False)]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(params.get("learning_rate", 0.1)),
        loss=pseudo_huber,
        metrics=[WithinHalf()],
    )
    return model


serving_input_fn = None
