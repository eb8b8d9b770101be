"""The few file operations the engine's coordination needs, on a local disk or on GCS.

Paths are plain strings: local paths, or `gs://bucket/object/name`. `filesystem(path)` picks
the implementation; `join` joins the way the path's scheme expects. TensorFlow itself only ever
sees local paths: gs:// model dirs are staged locally (see `gcs_staging`).
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Callable, Hashable
from typing import Protocol

from airflow_tfexp.experiment.storage.locations import parse_model_dir


class FileSystem(Protocol):
    def listdir(self, directory: str) -> list[str]:
        """Base names of the files and subdirectories directly in `directory` ([] if none)."""

    def read_bytes(self, path: str) -> bytes | None:
        """The file's content, or None when it does not exist."""

    def version(self, path: str) -> Hashable | None:
        """What changes whenever the file is replaced or touched (None when it does not
        exist), for one metadata read: GCS generation and metageneration, local inode, mtime
        and size. A waiter compares it with the last one it saw before reading anything."""

    def touch(self, path: str) -> None:
        """Change the file's `version` without changing its content (nothing if it does not
        exist): tells waiters to look again."""

    def read_bytes_at_most(self, path: str, limit: int) -> bytes | None:
        """The content of a regular file of at most `limit` bytes, None when it does not exist;
        FileTooLargeError when it is larger, NotARegularFileError for a FIFO, device or dir
        (never blocks on one, never reads past `limit`)."""

    def write_bytes(self, path: str, data: bytes) -> None:
        """Replace the file atomically: a reader sees the old content or the new, never half."""

    def create_new(self, path: str, data: bytes) -> bool:
        """Create the file with `data` only if it does not exist (atomically, whole): True if
        this call created it, False if it was already there (its content left alone)."""

    def update_bytes(self, path: str, change: Callable[[bytes | None], bytes | None]) -> bool:
        """Replace the file with `change(current content or None)`, compare-and-swap: if another
        writer replaced it in between, `change` is called again on the newer content, so no
        update is lost. `change` returns None to leave the file as it is; True if written.
        Locally every updater holds a lock file beside it; on GCS, generation preconditions."""

    def append_line(self, path: str, line: str) -> None:
        """Append one line (a JSON record); a crash leaves the file without it or with it whole,
        and concurrent appenders never lose each other's lines."""

    def delete(self, path: str) -> None:
        """Delete a file if it exists."""

    def delete_tree(self, directory: str) -> None:
        """Delete a directory and everything under it."""


def is_gcs(path: str) -> bool:
    return path.startswith("gs://")


def join(base: str, *parts: str) -> str:
    return posixpath.join(base, *parts) if is_gcs(base) else os.path.join(base, *parts)


def basename(path: str) -> str:
    return posixpath.basename(path.rstrip("/")) if is_gcs(path) else os.path.basename(path)


def dirname(path: str) -> str:
    return posixpath.dirname(path) if is_gcs(path) else os.path.dirname(path)


def filesystem(path: str) -> FileSystem:
    if is_gcs(path):
        from airflow_tfexp.experiment.storage.gcs import gcs_filesystem

        parse_model_dir(path, "path")
        return gcs_filesystem()
    from airflow_tfexp.experiment.storage.local import LOCAL

    return LOCAL
