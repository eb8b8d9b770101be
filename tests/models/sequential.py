"""A one-input Sequential classifier, served as `x` (the issue's first stranger: a dict from
`serving_input_fn` for a model whose only Input has no name)."""

from __future__ import annotations

from typing import Any

import numpy as np

TRAIN_STEPS = 60
METRIC, AT_LEAST = "accuracy", 0.8
OUTPUTS = ["output_0"]


def examples(n: int, seed: int) -> tuple[Any, Any]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8)).astype("float32")
    return x, (x[:, 0] + x[:, 1] > 0).astype("float32")


def as_request(features: Any) -> dict[str, Any]:
    return {"x": features}


def model_fn(params: dict[str, Any]) -> Any:
    import keras

    model = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(params.get("learning_rate", 0.02)),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
        metrics=[keras.metrics.BinaryAccuracy(name="accuracy", threshold=0.0)],
    )
    return model


def serving_input_fn() -> Any:
    import tensorflow as tf

    return {"x": tf.TensorSpec([None, 8], tf.float32)}
