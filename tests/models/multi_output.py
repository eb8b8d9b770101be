"""One input, two named heads (`price` regression, `category` classification) with a loss
and a metric per head, keyed by output name."""

from __future__ import annotations

from typing import Any

import numpy as np

TRAIN_STEPS = 80
METRIC, AT_LEAST = "category_accuracy", 0.7
OUTPUTS = ["price", "category"]


def examples(n: int, seed: int) -> tuple[Any, Any]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype("float32")
    price = (x[:, :1] * 3 + 1).astype("float32")
    category = np.argmax(x[:, 1:4], axis=1).astype("int64")
    return x, {"price": price, "category": category}


def as_request(features: Any) -> dict[str, Any]:
    return {"features": features}


def model_fn(params: dict[str, Any]) -> Any:
    import keras

    features = keras.Input((4,), name="features")
    hidden = keras.layers.Dense(16, activation="relu")(features)
    price = keras.layers.Dense(1, name="price")(hidden)
    category = keras.layers.Dense(3, name="category")(hidden)
    model = keras.Model(features, [price, category])
    model.compile(
        optimizer=keras.optimizers.Adam(params.get("learning_rate", 0.03)),
        loss={
            "price": "mse",
            "category": keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        },
        metrics={"category": ["accuracy"]},
    )
    return model


serving_input_fn = None  # the model's own named input
