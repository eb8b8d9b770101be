"""Evaluate an exported SavedModel with a model's compiled loss and metrics.

Only the export's serving function is used, so any model that serves the same inputs (a
baseline of another architecture too) is measured exactly like the candidate: how the blessing
gate compares a candidate with the published model.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import keras
import tensorflow as tf

from airflow_tfexp.experiment.estimator.model_state import (
    as_dataset,
    metrics_as_floats,
    metrics_table,
)
from airflow_tfexp.experiment.export.saved_model import read_export_metadata
from airflow_tfexp.experiment.export.serving import ServingInputs, model_outputs

log = logging.getLogger(__name__)


def evaluate_saved_model(
    model: keras.Model,
    local_export_dir: str,
    input_fn: Callable[[], Any],
    steps: int | None,
    export_dir: str,
) -> dict[str, Any]:
    """`loss` and `model`'s compiled metrics of the export in `local_export_dir` (a local copy
    of `export_dir`, named in messages) on `steps` batches of `input_fn` (None: all of it)."""
    loaded = tf.saved_model.load(local_export_dir)  # kept referenced: `serve` uses its variables
    serve = getattr(loaded, "serve", None)
    if serve is None:
        raise ValueError(f"{export_dir!r} has no `serve` endpoint: not an airflow-tfexp export.")
    predict = _predictor(serve, read_export_metadata(local_export_dir).get("serving"))
    model.reset_metrics()  # only the model's compiled loss and metrics are used
    loss = keras.metrics.Mean(name="loss")

    @tf.function
    def step(batch: Any) -> None:
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(batch)
        y_pred = predict(x)
        batch_loss = model.compute_loss(
            x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=False
        )
        loss.update_state(batch_loss, sample_weight=tf.shape(tf.nest.flatten(x)[0])[0])
        model.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    evaluated = 0
    for batch in as_dataset(input_fn()):
        if steps is not None and evaluated >= steps:
            break
        step(batch)
        evaluated += 1
    if evaluated == 0:
        raise ValueError(f"Evaluation input for {export_dir!r} produced no batches.")
    result = {**metrics_as_floats(model), "loss": float(loss.result())}
    del loaded
    log.info(
        "Evaluation of the export %s on %d batches:\n%s",
        export_dir,
        evaluated,
        metrics_table(result),
    )
    return result


def _predictor(serve: Any, serving: Any) -> Callable[[Any], Any]:
    """Features in, the model's output structure out, through the export's named signature
    (an export written before named signatures takes and returns the model's structures)."""
    if not isinstance(serving, dict) or "output_structure" not in serving:
        return serve
    inputs = ServingInputs({}, serving["feed"], tuple(serving["inputs"]))
    return lambda features: model_outputs(serve(inputs.named(features)), serving)
