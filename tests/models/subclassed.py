"""A subclassed model whose `call` takes a feature dict: it has no symbolic inputs, so its
`serving_input_fn` is the only statement of what it serves."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

TRAIN_STEPS = 60
METRIC, AT_LEAST = "accuracy", 0.8
OUTPUTS = ["output_0"]


def examples(n: int, seed: int) -> tuple[Any, Any]:
    rng = np.random.default_rng(seed)
    dense = rng.normal(size=(n, 3)).astype("float32")
    extra = rng.normal(size=(n, 2)).astype("float32")
    labels = (dense[:, 0] - extra[:, 1] > 0).astype("float32")
    return {"dense": dense, "extra": extra}, labels


def as_request(features: Any) -> dict[str, Any]:
    return dict(features)


@keras.saving.register_keras_serializable(package="tfexp_zoo")
class TwoTower(keras.Model):
    def __init__(self, units: int = 8, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dense_tower = keras.layers.Dense(units, activation="relu")
        self.extra_tower = keras.layers.Dense(units, activation="relu")
        self.head = keras.layers.Dense(1)

    def call(self, features: dict[str, Any], training: bool = False) -> Any:
        towers = [self.dense_tower(features["dense"]), self.extra_tower(features["extra"])]
        return self.head(keras.ops.concatenate(towers, axis=-1))


def model_fn(params: dict[str, Any]) -> Any:
    model = TwoTower()
    model.compile(
        optimizer=keras.optimizers.Adam(params.get("learning_rate", 0.02)),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
        metrics=[keras.metrics.BinaryAccuracy(name="accuracy", threshold=0.0)],
    )
    return model  # built by the estimator from the first batch


def serving_input_fn() -> Any:
    import tensorflow as tf

    return {
        "dense": tf.TensorSpec([None, 3], tf.float32),
        "extra": tf.TensorSpec([None, 2], tf.float32),
    }
