"""Preprocessing in the graph: a `Normalization` adapted on the training data and a
`StringLookup` with a vocabulary, so the export serves raw strings and raw numbers."""

from __future__ import annotations

from typing import Any

import numpy as np

TRAIN_STEPS = 80
METRIC, AT_LEAST = "accuracy", 0.8
OUTPUTS = ["expensive"]
CITIES = ["paris", "oslo", "lima", "kyoto"]


def examples(n: int, seed: int) -> tuple[Any, Any]:
    rng = np.random.default_rng(seed)
    city = rng.choice(CITIES + ["atlantis"], size=(n, 1))  # one city the vocabulary lacks
    rooms = rng.uniform(1, 9, size=(n, 1)).astype("float32") * 40  # far from unit scale
    expensive = ((city[:, 0] == "oslo") | (rooms[:, 0] > 200)).astype("float32")
    return {"city": city.astype(object), "rooms": rooms}, expensive


def as_request(features: Any) -> dict[str, Any]:
    return dict(features)


def model_fn(params: dict[str, Any]) -> Any:
    import keras

    train, _ = examples(400, seed=0)
    city = keras.Input((1,), name="city", dtype="string")
    rooms = keras.Input((1,), name="rooms")
    lookup = keras.layers.StringLookup(vocabulary=CITIES, output_mode="one_hot")
    normalize = keras.layers.Normalization()
    normalize.adapt(train["rooms"])
    joined = keras.layers.Concatenate()([keras.layers.Flatten()(lookup(city)), normalize(rooms)])
    hidden = keras.layers.Dense(16, activation="relu")(joined)
    expensive = keras.layers.Dense(1, name="expensive")(hidden)
    model = keras.Model({"city": city, "rooms": rooms}, expensive)
    model.compile(
        optimizer=keras.optimizers.Adam(params.get("learning_rate", 0.03)),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
        metrics=[keras.metrics.BinaryAccuracy(name="accuracy", threshold=0.0)],
    )
    return model


def serving_input_fn() -> Any:
    import tensorflow as tf

    return {"city": tf.TensorSpec([None, 1], tf.string), "rooms": tf.TensorSpec([None, 1])}
