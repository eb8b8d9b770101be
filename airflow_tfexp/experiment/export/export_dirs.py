"""Timestamped export directories: atomic creation, listing and garbage collection.

Exports live in `<export_dir_base>/<10-digit unix timestamp>/`. An export is written under
`temp-<timestamp>-<pid>` and renamed into place, so a reader listing the base directory sees only
whole exports. This is the one garbage-collection helper every exporter uses.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import time

from airflow_tfexp.experiment.storage.fs import basename, filesystem, is_gcs, join

log = logging.getLogger(__name__)
_EXPORT_NAME = re.compile(r"^\d{10}$")
SAVED_MODEL_FILE = "saved_model.pb"
TEMP_PREFIX = "temp-"
CLAIMS_DIR = ".claims"  # gs:// export numbers taken (one empty object each)


def list_exports(export_dir_base: str) -> list[str]:
    """Whole exports under the base directory (local or gs://), oldest first.

    On GCS an export directory is whole once its `saved_model.pb`, copied last, exists.
    """
    fs = filesystem(export_dir_base)
    names = sorted(n for n in fs.listdir(export_dir_base) if _EXPORT_NAME.match(n))
    if is_gcs(export_dir_base):
        names = [n for n in names if SAVED_MODEL_FILE in fs.listdir(join(export_dir_base, n))]
    return [join(export_dir_base, n) for n in names]


def next_export_number(export_dir_base: str, earliest: int) -> int:
    """The name the next export takes: `earliest` (a unix time), or one above the newest
    export when that is later, so export names strictly increase and garbage collection (which
    keeps the highest names) never deletes the export just written."""
    names = [
        n for n in filesystem(export_dir_base).listdir(export_dir_base) if _EXPORT_NAME.match(n)
    ]
    return max([earliest, *(int(n) + 1 for n in names)])


def claim_export_number(export_dir_base: str, earliest: int) -> int:
    """On GCS, where nothing can be renamed into place: a number no other exporter gets,
    claimed by creating `<base>/.claims/<number>` (only if absent)."""
    fs = filesystem(export_dir_base)
    number = next_export_number(export_dir_base, earliest)
    while not fs.create_new(join(export_dir_base, CLAIMS_DIR, f"{number:010d}"), b""):
        number += 1  # another exporter claimed it first
    return number


def refuse_linked(export_dir_base: str) -> None:
    """UnsafeModelDirError when `<model_dir>/export/<exporter>` (or `export`) is a symlink:
    exports are written, renamed and deleted there, and must not land in the dir it points to.
    Checked right before each of those steps (someone may plant the link mid-task)."""
    from airflow_tfexp.experiment.errors import UnsafeModelDirError

    if is_gcs(export_dir_base):
        return
    for path in (export_dir_base, os.path.dirname(export_dir_base.rstrip(os.sep))):
        if os.path.islink(path):
            raise UnsafeModelDirError(
                f"{path} is a link to {os.path.realpath(path)}: refusing to write or delete "
                "exports through it."
            )


class ExportTarget:
    """A temporary export directory that becomes `<base>/<timestamp>` on commit."""

    def __init__(self, export_dir_base: str) -> None:
        refuse_linked(export_dir_base)
        os.makedirs(export_dir_base, exist_ok=True)
        self.export_dir_base = export_dir_base
        self.temp_path = os.path.join(
            export_dir_base, f"{TEMP_PREFIX}{int(time.time())}-{os.getpid()}"
        )
        shutil.rmtree(self.temp_path, ignore_errors=True)
        self.final_path: str | None = None

    def commit(self) -> str:
        """Rename the finished export to `<base>/<n>` and return it: n is the time, or one above
        the newest export when that is later (`next_export_number`)."""
        refuse_linked(self.export_dir_base)
        timestamp = next_export_number(self.export_dir_base, int(time.time()))
        while True:
            final = os.path.join(self.export_dir_base, f"{timestamp:010d}")
            try:
                # Renaming onto an existing (non-empty) export fails, so two exporters finishing
                # in the same second never overwrite each other: the later one takes the next.
                if not os.path.exists(final):
                    os.rename(self.temp_path, final)
                    break
            except OSError:
                if not os.path.exists(final):
                    raise
            timestamp += 1
        self.final_path = final
        return final

    def discard(self) -> None:
        if os.path.exists(self.temp_path):
            shutil.rmtree(self.temp_path, ignore_errors=True)


def remove_stale_temp_dirs(export_dir_base: str, older_than_secs: float = 3600.0) -> None:
    """Delete leftovers of exports killed mid-write (never visible as exports, but they use disk)."""
    if is_gcs(export_dir_base):
        return  # staged uploads clean up after themselves; see gcs_staging.publish_export
    try:
        names = os.listdir(export_dir_base)
    except FileNotFoundError:
        return
    now = time.time()
    for name in names:
        path = os.path.join(export_dir_base, name)
        if not name.startswith(TEMP_PREFIX):
            continue
        try:  # another writer's temp dir is renamed or discarded at any moment
            modified = os.path.getmtime(path)
        except FileNotFoundError:
            continue
        if now - modified > older_than_secs:
            shutil.rmtree(path, ignore_errors=True)


def garbage_collect_exports(export_dir_base: str, exports_to_keep: int | None) -> list[str]:
    """Keep the newest `exports_to_keep` exports (None keeps all); return the deleted paths."""
    if not exports_to_keep:
        return []
    refuse_linked(export_dir_base)
    exports = list_exports(export_dir_base)
    doomed = exports[:-exports_to_keep]
    for path in doomed:
        refuse_linked(export_dir_base)
        log.info("Deleting export %s: only the newest %d are kept.", path, exports_to_keep)
        filesystem(path).delete_tree(path)
        if is_gcs(path):
            filesystem(path).delete(join(export_dir_base, CLAIMS_DIR, basename(path)))
    return doomed
