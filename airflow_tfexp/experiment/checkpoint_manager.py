"""A CheckpointManager whose garbage collection spares checkpoints an evaluator still needs.

`keep_checkpoint_max` used to delete checkpoints before a slow evaluator read them (DataLoss).
Here a checkpoint past the limit is deleted only when no live continuous evaluator needs it
(see `coordination.protection_check`); it stays in the manager's list and is reconsidered at
the next save.
"""

from __future__ import annotations

import glob
import logging
import os
from collections.abc import Callable

import tensorflow as tf

from airflow_tfexp.experiment.checkpoints import checkpoint_step
from airflow_tfexp.experiment.coordination import protection_check

log = logging.getLogger(__name__)


class ProtectingCheckpointManager(tf.train.CheckpointManager):
    """`tf.train.CheckpointManager` with evaluator-aware garbage collection.

    :param protect: the model dir whose evaluator registrations protect checkpoints, or None to
        behave exactly like the parent class.
    """

    def __init__(
        self,
        checkpoint: tf.train.Checkpoint,
        directory: str,
        max_to_keep: int | None,
        protect: str | None,
        on_delete: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(checkpoint, directory=directory, max_to_keep=max_to_keep)
        self._protect = protect
        self._on_delete = on_delete  # e.g. delete the uploaded copy of a gs:// model dir

    # Overrides the parent's private sweep (TensorFlow 2.21): the only place deletion happens.
    def _sweep(self) -> None:
        if not self._max_to_keep:
            return
        candidates = list(self._maybe_delete)[: -self._max_to_keep]
        if not candidates:
            return
        protected = protection_check(self._protect) if self._protect else None  # one read per sweep
        for filename in candidates:
            step = checkpoint_step(filename)
            reason = protected(step) if protected and step is not None else None
            if reason:
                log.info(
                    "Keeping %s beyond keep_checkpoint_max=%d: %s.",
                    filename,
                    self._max_to_keep,
                    reason,
                )
                continue
            del self._maybe_delete[filename]
            # The index goes first: readers treat a checkpoint without an index as absent.
            _delete(filename + ".index")
            for shard in glob.glob(glob.escape(filename) + ".data-?????-of-?????"):
                _delete(shard)
            if self._on_delete is not None:
                self._on_delete(filename)


def _delete(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
