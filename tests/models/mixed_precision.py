"""Mixed precision (`mixed_float16`): float16 compute, float32 variables, a loss-scale
optimizer, and a float32 output layer as the Keras guide asks."""

from __future__ import annotations

from typing import Any

import numpy as np

TRAIN_STEPS = 60
METRIC, AT_LEAST = "accuracy", 0.75
OUTPUTS = ["probability"]


def examples(n: int, seed: int) -> tuple[Any, Any]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype("float32")
    return x, (x[:, 2] > x[:, 3]).astype("float32")


def as_request(features: Any) -> dict[str, Any]:
    return {"signals": features}


def model_fn(params: dict[str, Any]) -> Any:
    import keras

    previous = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_dtype_policy("mixed_float16")
    try:
        signals = keras.Input((6,), name="signals")
        hidden = keras.layers.Dense(16, activation="relu")(signals)
        logits = keras.layers.Dense(1)(hidden)
        probability = keras.layers.Activation("sigmoid", dtype="float32", name="probability")(
            logits
        )
        model = keras.Model(signals, probability)
    finally:  # this process runs other models too
        keras.mixed_precision.set_dtype_policy(previous)
    model.compile(
        optimizer=keras.optimizers.Adam(params.get("learning_rate", 0.02)),
        loss="binary_crossentropy",
        metrics=["accuracy"],
    )
    return model


serving_input_fn = None
