"""ModelDirStorage: the one seam between TensorFlow's local files and where a model dir lives.

TensorFlow only ever reads and writes local paths (`local_dir`). For a local model dir those
are the model dir itself and every method is the identity; for a gs:// model dir they are a
staging copy, and this object moves files with google-cloud-storage (see `gcs_staging` for the
order that keeps readers from ever seeing half a checkpoint or export). A gs:// model dir's
checkpoint and summary uploads run on a background thread (`upload_queue`), so training steps on
while they happen; `wait_for_uploads` drains them before the next save and before training
returns.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable

from airflow_tfexp.experiment.storage.fs import dirname, is_gcs
from airflow_tfexp.experiment.storage.gcs_staging import GcsStaging
from airflow_tfexp.experiment.storage.upload_queue import UploadQueue


class ModelDirStorage:
    """A local model dir: TensorFlow works on it directly."""

    def __init__(self, model_dir: str) -> None:
        self.model_dir = model_dir
        self.local_dir = model_dir

    def prepare_training(self) -> None:
        """Before a chief trains: make the local checkpoint state the model dir's."""

    def local_checkpoint(self, checkpoint_path: str) -> str:
        """A local path TensorFlow can restore `checkpoint_path` from."""
        return checkpoint_path

    def push_checkpoint(self, local_prefix: str) -> str:
        """A checkpoint TensorFlow just saved, to be made visible to readers (once
        `wait_for_uploads` returns, at the latest); returns the path readers will see."""
        return local_prefix

    def wait_for_uploads(self) -> None:
        """Block until every checkpoint and summary pushed so far is visible to readers; raise
        the first upload failure (`UploadError`)."""

    def checkpoint_deleter(self) -> Callable[[str], None] | None:
        """What else to delete when garbage collection deletes a local checkpoint."""
        return None

    def push_summaries(self) -> None:
        """Summaries (TensorBoard event files) written locally, to be made visible to readers
        (once `wait_for_uploads` returns, at the latest)."""

    def local_export(self, export_dir: str) -> str:
        """A local copy of a finished export (any location) that TensorFlow can load."""
        if is_gcs(export_dir):
            return GcsStaging(dirname(export_dir.rstrip("/"))).fetch_export(export_dir)
        return export_dir

    def local_export_base(self, export_dir_base: str) -> str:
        """Where TensorFlow writes an export meant for `export_dir_base`."""
        return export_dir_base

    def publish_export(self, local_export_dir: str, export_dir_base: str) -> str:
        """A finished local export, made visible under `export_dir_base`; returns its path."""
        return local_export_dir


class StagedModelDirStorage(ModelDirStorage):
    """A gs:// model dir, mirrored through a local staging dir."""

    def __init__(self, model_dir: str, staging_root: str | None = None) -> None:
        super().__init__(model_dir)
        self.staging = GcsStaging(model_dir, staging_root)
        self.local_dir = self.staging.local
        self.uploads = UploadQueue(model_dir)
        # checkpoints garbage collection deleted here, to delete in the bucket after the upload
        # of the checkpoint whose save collected them
        self._deletions: list[str] = []

    def prepare_training(self) -> None:
        # the bucket's state names checkpoints written from other machines: garbage
        # collection must know them
        self.staging.pull_state()

    def local_checkpoint(self, checkpoint_path: str) -> str:
        if is_gcs(checkpoint_path):
            return self.staging.fetch_checkpoint(checkpoint_path)
        return checkpoint_path

    def push_checkpoint(self, local_prefix: str) -> str:
        # The local files stay as they are until the next save, which waits for this upload
        # first (the checkpoint state, rewritten by every save, is read by the upload).
        name = os.path.basename(local_prefix)
        self.uploads.submit(f"checkpoint {name}", self.staging.push_checkpoint, local_prefix)
        self._delete_collected()
        self.uploads.submit("summaries", self.staging.push_changed)
        return f"{self.staging.remote}/{name}"

    def wait_for_uploads(self) -> None:
        # Deletions collected without a push (a save interrupted before its upload) stay
        # undone: the bucket's state may still name them.
        self.uploads.wait()

    def checkpoint_deleter(self) -> Callable[[str], None] | None:
        # Garbage collection runs inside a save, before that save's upload: the bucket's copy
        # is deleted only after the new checkpoint's state (which no longer names it) is up.
        # Deleted first, a failed upload would leave the bucket a state naming a checkpoint
        # that is gone, and with keep_checkpoint_max=1 no checkpoint at all.
        return self._collect_deletion

    def _collect_deletion(self, prefix: str) -> None:
        self._deletions.append(prefix)

    def _delete_collected(self) -> None:
        deletions, self._deletions = self._deletions, []
        for prefix in deletions:
            name = os.path.basename(prefix)
            self.uploads.submit(f"the deletion of {name}", self.staging.delete_checkpoint, prefix)

    def push_summaries(self) -> None:
        self.uploads.submit("summaries", self.staging.push_changed)

    def local_export(self, export_dir: str) -> str:
        if is_gcs(export_dir):
            return self.staging.fetch_export(export_dir)
        return export_dir

    def local_export_base(self, export_dir_base: str) -> str:
        if is_gcs(export_dir_base):
            return self.staging.local_path(export_dir_base)
        return export_dir_base

    def publish_export(self, local_export_dir: str, export_dir_base: str) -> str:
        if not is_gcs(export_dir_base):
            return local_export_dir
        path = self.staging.publish_export(local_export_dir, export_dir_base)
        shutil.rmtree(local_export_dir, ignore_errors=True)
        return path


def model_dir_storage(model_dir: str) -> ModelDirStorage:
    """The storage of a model dir: staged when it is on GCS. A local model dir that exists as
    something other than a directory is a ValueError naming it (not a raw NotADirectoryError
    at the first write)."""
    if is_gcs(model_dir):
        return StagedModelDirStorage(model_dir)
    if os.path.exists(model_dir) and not os.path.isdir(model_dir):
        raise ValueError(
            f"Invalid value for `model_dir`. Received: {model_dir!r}, which is a file, not a "
            "directory. Expected a directory (created when missing)."
        )
    return ModelDirStorage(model_dir)
