"""TensorBoard summaries: scalars per step, one event-file writer per directory.

Summaries are a side channel: a full disk drops them with a warning (once per directory) rather
than failing training; the next checkpoint save reports the full disk with what is intact.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import tensorflow as tf

from airflow_tfexp.experiment.estimator.model_state import is_number

log = logging.getLogger(__name__)


class SummaryWriters:
    """Write scalars (numbers only; `global_step` is the step itself) to a directory's event file."""

    def __init__(self) -> None:
        self._writers: dict[str, Any] = {}
        self._warned: set[str] = set()

    def write(self, directory: str, step: int, scalars: Mapping[str, Any]) -> None:
        try:
            if directory not in self._writers:
                self._writers[directory] = tf.summary.create_file_writer(directory)
            writer = self._writers[directory]
            with writer.as_default(step=step):
                for key, value in scalars.items():
                    if key != "global_step" and is_number(value):
                        tf.summary.scalar(key, value)
            writer.flush()
        except tf.errors.ResourceExhaustedError as err:
            self._writers.pop(directory, None)  # a fresh writer once there is room
            if directory not in self._warned:
                self._warned.add(directory)
                log.warning(
                    "Summaries for step %d in %s dropped: the disk is full (%s). Training goes "
                    "on; the next checkpoint save fails if there is still no room.",
                    step,
                    directory,
                    str(getattr(err, "message", err)).splitlines()[0],
                )
