"""A CheckpointManager whose garbage collection spares checkpoints an evaluator still needs.

`keep_checkpoint_max` used to delete checkpoints before a slow evaluator read them (DataLoss).
Here a checkpoint past the limit is deleted only when no live continuous evaluator needs it
(see `coordination.protection_check`); it stays in the manager's list and is reconsidered at
the next save. A save that fails (a full disk) leaves no partial files and raises a
`CheckpointError` that names the checkpoint still intact.
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
from collections.abc import Callable
from typing import Any

import tensorflow as tf

from airflow_tfexp.experiment.errors import CheckpointError
from airflow_tfexp.experiment.evaluation.coordination import protection_check
from airflow_tfexp.experiment.storage.checkpoints import STATE_FILE, checkpoint_step
from airflow_tfexp.experiment.storage.confinement import is_inside

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
        self._refuse_paths_outside(directory)
        self._protect = protect
        self._on_delete = on_delete  # e.g. delete the uploaded copy of a gs:// model dir

    def _refuse_paths_outside(self, directory: str) -> None:
        """The state file lists the checkpoints to restore and to garbage-collect: a path there
        outside the model dir (`../other/ckpt-1000`, `/etc/x`) is refused, never restored from
        or deleted."""
        named = [self._latest_checkpoint or "", *self._maybe_delete]
        for path in filter(None, named):
            if not is_inside(directory, path):
                raise CheckpointError(
                    f"The checkpoint state file {os.path.join(directory, STATE_FILE)} names "
                    f"{path!r}, outside the model dir {directory!r}: refusing to restore from or "
                    "delete it. Remove that entry to train here."
                )

    def save(self, checkpoint_number: Any = None, **kwargs: Any) -> str:
        intact = self.latest_checkpoint
        try:
            return super().save(checkpoint_number=checkpoint_number, **kwargs)
        except (tf.errors.OpError, OSError) as err:
            step = checkpoint_number if checkpoint_number is not None else "the next step"
            self._remove_partial(checkpoint_number)
            detail = getattr(err, "message", None) or str(err)
            full = "No space left on device" in detail
            raise CheckpointError(
                f"Could not write the checkpoint for step {step} in {self.directory}"
                f"{' (the disk is full)' if full else ''}: {detail.strip()}. Nothing was lost: "
                + (
                    f"{intact} is intact and training resumes from it"
                    if intact
                    else "there was no earlier checkpoint, training restarts from step 0"
                )
                + (" once there is room." if full else " once the problem is fixed.")
            ) from err

    def _remove_partial(self, checkpoint_number: Any) -> None:
        """Remove what a failed save left: its temporary directory, and shards without an index."""
        if checkpoint_number is None:
            return
        prefix = os.path.join(self.directory, f"ckpt-{checkpoint_number}")
        for temp in glob.glob(glob.escape(prefix) + "_temp*"):
            shutil.rmtree(temp, ignore_errors=True)
        if not os.path.exists(prefix + ".index"):
            for shard in glob.glob(glob.escape(prefix) + ".data-?????-of-?????"):
                _delete(shard)

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
