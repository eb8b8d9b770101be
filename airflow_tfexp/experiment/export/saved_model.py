"""Write a Keras model as a SavedModel whose `serving_default` signature takes and returns
tensors by name (`export.serving`)."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

import keras

from airflow_tfexp.experiment.export.export_dirs import ExportTarget
from airflow_tfexp.experiment.export.serving import (
    named_outputs,
    output_names,
    output_structure,
    serving_inputs,
)
from airflow_tfexp.experiment.retraining.warm_start import VARIABLES_INDEX, variables_index

log = logging.getLogger(__name__)
METADATA_FILE = os.path.join("assets.extra", "export_metadata.json")


def read_export_metadata(local_export_dir: str) -> dict[str, Any]:
    """The metadata an export was written with ({} for an export without it)."""
    try:
        with open(os.path.join(local_export_dir, METADATA_FILE)) as handle:
            metadata = json.load(handle)
    except (OSError, ValueError):
        return {}
    return metadata if isinstance(metadata, dict) else {}


def export_keras_model(
    model: keras.Model,
    export_dir_base: str,
    serving_input_fn: Callable[[], Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> str:
    """Export to `export_dir_base/<number>/` atomically and return that path."""
    inputs = serving_inputs(model, serving_input_fn)
    traced: dict[str, Any] = {}

    def serve(named: Mapping[str, Any]) -> dict[str, Any]:
        outputs = model(inputs.model_inputs(named), training=False)
        traced.update(
            outputs=output_names(model, outputs), output_structure=output_structure(outputs)
        )
        return named_outputs(model, outputs)

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(name="serve", fn=serve, input_signature=[inputs.specs])
    target = ExportTarget(export_dir_base)
    try:
        archive.write_out(target.temp_path, verbose=False)
        extra = os.path.join(target.temp_path, METADATA_FILE)
        os.makedirs(os.path.dirname(extra), exist_ok=True)
        serving = {**inputs.as_metadata(), **traced}
        with open(extra, "w") as handle:
            json.dump({**dict(metadata or {}), "serving": serving}, handle, sort_keys=True)
        # The export's own variable keys are positions; warm starts need object paths.
        with open(os.path.join(target.temp_path, VARIABLES_INDEX), "w") as handle:
            json.dump(variables_index(model, list(archive.variables)), handle, sort_keys=True)
        final = target.commit()
    finally:
        target.discard()
    log.info(
        "Exported SavedModel to %s (serving_default takes %s, returns %s)",
        final,
        ", ".join(inputs.specs),
        ", ".join(traced.get("outputs", [])),
    )
    return final
