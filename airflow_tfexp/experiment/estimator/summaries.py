"""TensorBoard summaries: scalars per step, one event-file writer per directory."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import tensorflow as tf

from airflow_tfexp.experiment.estimator.model_state import is_number


class SummaryWriters:
    """Write scalars (numbers only; `global_step` is the step itself) to a directory's event file."""

    def __init__(self) -> None:
        self._writers: dict[str, Any] = {}

    def write(self, directory: str, step: int, scalars: Mapping[str, Any]) -> None:
        if directory not in self._writers:
            self._writers[directory] = tf.summary.create_file_writer(directory)
        writer = self._writers[directory]
        with writer.as_default(step=step):
            for key, value in scalars.items():
                if key != "global_step" and is_number(value):
                    tf.summary.scalar(key, value)
        writer.flush()
