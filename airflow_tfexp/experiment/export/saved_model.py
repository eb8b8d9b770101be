"""Write a Keras model as a SavedModel with a `serving_default` signature."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

import keras
import tensorflow as tf

from airflow_tfexp.experiment.export.export_dirs import ExportTarget
from airflow_tfexp.experiment.retraining.warm_start import VARIABLES_INDEX, variables_index

log = logging.getLogger(__name__)
METADATA_FILE = os.path.join("assets.extra", "export_metadata.json")


def serving_signature(model: keras.Model, serving_input_fn: Callable[[], Any] | None) -> Any:
    """The serving input signature: from `serving_input_fn()`, else from the model's inputs."""
    if serving_input_fn is not None:
        spec = serving_input_fn()
        flat = tf.nest.flatten(spec)
        if not flat or not all(isinstance(s, tf.TensorSpec) for s in flat):
            raise ValueError(
                "`serving_input_fn` must return a tf.TensorSpec or a dict of them. "
                f"Received: {spec!r}."
            )
        return spec
    inputs = getattr(model, "inputs", None)
    if not inputs:
        raise ValueError(
            f"Model {model.name!r} has no symbolic inputs (a subclassed model?); pass a "
            "`serving_input_fn` returning its tf.TensorSpec."
        )
    try:
        structure = model.input  # a functional model's inputs as declared (dict, list or tensor)
    except AttributeError:  # a Sequential model that was never called symbolically
        structure = inputs[0] if len(inputs) == 1 else list(inputs)
    return tf.nest.map_structure(lambda t: tf.TensorSpec(t.shape, t.dtype, name=t.name), structure)


def export_keras_model(
    model: keras.Model,
    export_dir_base: str,
    serving_input_fn: Callable[[], Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> str:
    """Export to `export_dir_base/<timestamp>/` atomically and return that path."""
    spec = serving_signature(model, serving_input_fn)
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        name="serve", fn=lambda inputs: model(inputs, training=False), input_signature=[spec]
    )
    target = ExportTarget(export_dir_base)
    try:
        archive.write_out(target.temp_path, verbose=False)
        extra = os.path.join(target.temp_path, METADATA_FILE)
        os.makedirs(os.path.dirname(extra), exist_ok=True)
        with open(extra, "w") as handle:
            json.dump(dict(metadata or {}), handle, sort_keys=True)
        # The export's own variable keys are positions; warm starts need object paths.
        with open(os.path.join(target.temp_path, VARIABLES_INDEX), "w") as handle:
            json.dump(variables_index(model, list(archive.variables)), handle, sort_keys=True)
        final = target.commit()
    finally:
        target.discard()
    log.info("Exported SavedModel to %s", final)
    return final
