"""A functional regressor on a dict of named inputs (`age`, `income`), as tf.estimator's feature
dicts were: clients call `serving_default(age=..., income=...)`."""

from __future__ import annotations

from typing import Any

import numpy as np

TRAIN_STEPS = 80
METRIC, AT_MOST = "mean_absolute_error", 0.5
OUTPUTS = ["score"]


def examples(n: int, seed: int) -> tuple[Any, Any]:
    rng = np.random.default_rng(seed)
    age = rng.uniform(-1, 1, size=(n, 1)).astype("float32")
    income = rng.uniform(-1, 1, size=(n, 1)).astype("float32")
    return {"age": age, "income": income}, (2 * age - income).astype("float32")


def as_request(features: Any) -> dict[str, Any]:
    return dict(features)


def model_fn(params: dict[str, Any]) -> Any:
    import keras

    age = keras.Input((1,), name="age")
    income = keras.Input((1,), name="income")
    joined = keras.layers.Concatenate()([age, income])
    hidden = keras.layers.Dense(8, activation="relu")(joined)
    score = keras.layers.Dense(1, name="score")(hidden)
    model = keras.Model({"age": age, "income": income}, score)
    model.compile(
        optimizer=keras.optimizers.Adam(params.get("learning_rate", 0.05)),
        loss="mse",
        metrics=["mean_absolute_error"],
    )
    return model


def serving_input_fn() -> Any:
    import tensorflow as tf

    return {
        "age": tf.TensorSpec([None, 1], tf.float32),
        "income": tf.TensorSpec([None, 1], tf.float32),
    }
