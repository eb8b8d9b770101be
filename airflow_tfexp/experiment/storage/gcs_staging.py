"""A gs:// model dir seen through a local staging directory.

TensorFlow's own gs:// filesystem cannot be pointed at an emulator or given our retries, so
TensorFlow only ever reads and writes the local staging copy; this module moves files:

- a checkpoint is uploaded data shards first, then its index, then the checkpoint state, so a
  reader (which needs the state to name it) never sees a partial checkpoint;
- a checkpoint to restore is downloaded into the staging dir (a cache);
- an export is uploaded under `temp-...`, copied to `<timestamp>/` with `saved_model.pb` last
  (an export is whole once that file exists), and the temporary copy deleted;
- summaries (TensorBoard event files) are uploaded when they changed.
"""

from __future__ import annotations

import logging
import os
import shutil
import time

from airflow_tfexp.experiment.export.export_dirs import SAVED_MODEL_FILE, claim_export_number
from airflow_tfexp.experiment.storage.checkpoints import STATE_FILE
from airflow_tfexp.experiment.storage.confinement import confined
from airflow_tfexp.experiment.storage.fs import basename, filesystem
from airflow_tfexp.experiment.storage.gcs import GcsFileSystem, split
from airflow_tfexp.experiment.storage.locations import parse_model_dir

log = logging.getLogger(__name__)
STAGING_ENV = "TFEXP_STAGING_DIR"


def default_staging_root() -> str:
    return os.environ.get(STAGING_ENV) or os.path.join(
        os.path.expanduser("~"), ".cache", "airflow-tfexp", "staging"
    )


FETCHED_DIR = ".fetched"


class GcsStaging:
    """The local mirror of one gs:// model dir."""

    def __init__(self, model_dir: str, staging_root: str | None = None) -> None:
        parse_model_dir(model_dir)  # no '..' or '//' segments: see `confined` too
        bucket, prefix = split(model_dir.rstrip("/"))
        self.remote = model_dir.rstrip("/")
        root = staging_root or default_staging_root()
        # Copies of other dirs' checkpoints and exports: beside the buckets' mirrors, under a
        # name no bucket can have (bucket names start with a letter or digit), so no model dir
        # (say gs://a/m/.fetched/b/c) can be staged where gs://a/m keeps its copy of gs://b/c.
        self.fetched = os.path.join(os.path.abspath(root), FETCHED_DIR)
        self.local = confined(
            root, os.path.join(root, bucket, prefix), f"The staging dir of {model_dir}"
        )
        os.makedirs(self.local, exist_ok=True)
        fs = filesystem(self.remote)
        assert isinstance(fs, GcsFileSystem)
        self.fs = fs
        self._uploaded_sizes: dict[str, int] = {}

    def remote_path(self, local_path: str) -> str:
        relative = os.path.relpath(local_path, self.local)
        return f"{self.remote}/{relative.replace(os.sep, '/')}"

    def local_path(self, remote_path: str) -> str:
        relative = (
            remote_path[len(self.remote) + 1 :]
            if remote_path.startswith(self.remote + "/")
            else basename(remote_path)
        )
        return confined(
            self.local, os.path.join(self.local, *relative.split("/")), f"The copy of {remote_path}"
        )

    # -- checkpoints -----------------------------------------------------------------------
    def push_checkpoint(self, local_prefix: str) -> str:
        """Upload a saved checkpoint: shards, index, then the state file. Returns its gs:// path."""
        directory, base = os.path.split(local_prefix)
        names = os.listdir(directory)
        shards = sorted(n for n in names if n.startswith(f"{base}.data-"))
        started = time.monotonic()
        for name in [*shards, f"{base}.index", STATE_FILE]:
            try:
                self.fs.upload_file(os.path.join(directory, name), f"{self.remote}/{name}")
            except Exception as exc:
                exc.add_note(f"at {self.remote}/{name}")
                raise
        log.info("Uploaded %s to %s in %.2f s.", base, self.remote, time.monotonic() - started)
        return f"{self.remote}/{base}"

    def pull_state(self) -> None:
        """Copy the bucket's checkpoint state here, so that a CheckpointManager on the staging dir
        knows (and garbage-collects) the checkpoints written from other machines."""
        state = self.fs.read_bytes(f"{self.remote}/{STATE_FILE}")
        if state is not None:
            with open(os.path.join(self.local, STATE_FILE), "wb") as handle:
                handle.write(state)

    def delete_checkpoint(self, prefix: str) -> None:
        """Delete a checkpoint remotely, index first (readers treat it as gone at once)."""
        base = basename(prefix)
        remote_names = self.fs.listdir(self.remote)
        self.fs.delete(f"{self.remote}/{base}.index")
        for name in remote_names:
            if name.startswith(f"{base}.data-"):
                self.fs.delete(f"{self.remote}/{name}")

    def fetch_checkpoint(self, remote_prefix: str) -> str:
        """Download a (complete) remote checkpoint into the staging dir; return the local prefix."""
        parse_model_dir(remote_prefix, "checkpoint_path")  # no '.', '..' or '//' segments
        base = basename(remote_prefix)
        directory = remote_prefix[: -len(base)].rstrip("/")
        names = [
            n
            for n in self.fs.listdir(directory)
            if n == f"{base}.index" or n.startswith(f"{base}.data-")
        ]
        if directory == self.remote:
            local_dir = self.local
        else:
            bucket, prefix = split(directory)
            local_dir = confined(
                self.fetched,
                os.path.join(self.fetched, bucket, *prefix.split("/")),
                f"The copy of {directory}",
            )
        os.makedirs(local_dir, exist_ok=True)
        for name in names:
            target = confined(local_dir, os.path.join(local_dir, name), f"The copy of {name}")
            if not os.path.exists(target):
                tmp = f"{target}.part-{os.getpid()}"
                self.fs.download_file(f"{directory}/{name}", tmp)
                os.replace(tmp, target)
        return os.path.join(local_dir, base)

    def fetch_export(self, remote_dir: str) -> str:
        """Download a finished remote export (any gs:// path) once; return the local dir."""
        parse_model_dir(remote_dir, "export_dir")
        bucket, prefix = split(remote_dir.rstrip("/"))
        local_dir = confined(
            self.fetched,
            os.path.join(self.fetched, bucket, *prefix.split("/")),
            f"The copy of {remote_dir}",
        )
        if os.path.exists(os.path.join(local_dir, SAVED_MODEL_FILE)):
            return local_dir  # exports never change once written
        tmp = f"{local_dir}.part-{os.getpid()}"
        for relative in self.fs.list_tree(remote_dir):
            target = confined(
                tmp, os.path.join(tmp, *relative.split("/")), f"The copy of object {relative}"
            )
            os.makedirs(os.path.dirname(target), exist_ok=True)
            self.fs.download_file(f"{remote_dir.rstrip('/')}/{relative}", target)
        if not os.path.exists(os.path.join(tmp, SAVED_MODEL_FILE)):
            raise FileNotFoundError(f"{remote_dir} is not a SavedModel (no {SAVED_MODEL_FILE}).")
        os.makedirs(os.path.dirname(local_dir), exist_ok=True)
        try:
            os.replace(tmp, local_dir)
        except OSError:
            if not os.path.exists(os.path.join(local_dir, SAVED_MODEL_FILE)):
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # another task fetched it first: same bytes
        return local_dir

    # -- summaries and other files --------------------------------------------------------
    def push_changed(self, subdirectory: str = "") -> None:
        """Upload the staging dir's event files that are new or grew since the last upload."""
        root = os.path.join(self.local, subdirectory)
        for current, dirs, files in os.walk(root):
            dirs[:] = [d for d in dirs if not d.startswith(".") and not d.startswith("export")]
            for name in files:
                if not name.startswith("events.out.tfevents."):
                    continue
                path = os.path.join(current, name)
                size = os.path.getsize(path)
                if self._uploaded_sizes.get(path) != size:
                    self.fs.upload_file(path, self.remote_path(path))
                    self._uploaded_sizes[path] = size

    # -- exports ----------------------------------------------------------------------------
    def publish_export(self, local_export_dir: str, remote_base: str) -> str:
        """Upload a finished local export to `remote_base/<timestamp>/`, whole or not at all."""
        files = []
        for current, _, names in os.walk(local_export_dir):
            files += [os.path.relpath(os.path.join(current, n), local_export_dir) for n in names]
        files.sort(key=lambda f: f == SAVED_MODEL_FILE)  # saved_model.pb last
        temp = f"{remote_base}/temp-{basename(local_export_dir)}-{os.getpid()}"
        for relative in files:
            self.fs.upload_file(
                os.path.join(local_export_dir, relative), f"{temp}/{relative.replace(os.sep, '/')}"
            )
        # never into a dir another exporter writes too: the number is claimed first
        timestamp = claim_export_number(remote_base, int(basename(local_export_dir)))
        final = f"{remote_base}/{timestamp:010d}"
        for relative in files:
            name = relative.replace(os.sep, "/")
            self.fs.copy(f"{temp}/{name}", f"{final}/{name}")
        self.fs.delete_tree(temp)
        log.info("Published export %s.", final)
        return final
