"""Publishing: copy a blessed export to `publish_dir/<version>/`, then move `publish_dir/LATEST`.

A serving system reads `LATEST` (or, like TF Serving, the highest numbered version dir that has a
`saved_model.pb`): the version dir is copied with `saved_model.pb` last and the pointer is
replaced atomically only after, so no reader ever sees a half-copied model. Versions are
integers (TF Serving's layout). Publishing the same export again (a retry) reuses its version.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from typing import Any

from airflow_tfexp.experiment.export.export_dirs import SAVED_MODEL_FILE
from airflow_tfexp.experiment.storage.fs import filesystem, is_gcs, join

log = logging.getLogger(__name__)
POINTER_FILE = "LATEST"
RECORD_FILE = os.path.join("assets.extra", "published.json")


def latest_published(publish_dir: str) -> dict[str, Any] | None:
    """The pointer's record (version, path, source, ...), or None before the first publish."""
    text = filesystem(publish_dir).read_bytes(join(publish_dir, POINTER_FILE))
    if text is None:
        return None
    try:
        record = json.loads(text)
    except ValueError:
        raise ValueError(
            f"{join(publish_dir, POINTER_FILE)} is not valid JSON: {text[:200]!r}"
        ) from None
    return record


def published_versions(publish_dir: str) -> list[int]:
    """Whole version dirs (those with a saved_model.pb), ascending."""
    fs = filesystem(publish_dir)
    versions = sorted(int(n) for n in fs.listdir(publish_dir) if n.isdigit())
    return [v for v in versions if SAVED_MODEL_FILE in fs.listdir(join(publish_dir, str(v)))]


def _read_record(publish_dir: str, version: int) -> dict[str, Any] | None:
    text = filesystem(publish_dir).read_bytes(
        join(publish_dir, str(version), *RECORD_FILE.split(os.sep))
    )
    return json.loads(text) if text else None


def _copy_tree(source: str, destination: str, record: bytes) -> None:
    """Copy an export dir (local or gs://, either side) plus the publish record; saved_model.pb
    goes last, so the version is whole (record included) once it is there."""
    src_fs, dst_fs = filesystem(source), filesystem(destination)
    if is_gcs(source):
        files = src_fs.list_tree(source)  # type: ignore[attr-defined]
    else:
        files = [
            os.path.relpath(os.path.join(current, name), source).replace(os.sep, "/")
            for current, _, names in os.walk(source)
            for name in names
        ]
    files.sort(key=lambda f: f == SAVED_MODEL_FILE)
    if not is_gcs(source) and not is_gcs(destination):
        temp = f"{destination}.part-{os.getpid()}"
        shutil.rmtree(temp, ignore_errors=True)
        shutil.copytree(source, temp)
        dst_fs.write_bytes(os.path.join(temp, RECORD_FILE), record)
        os.replace(temp, destination)  # whole or absent
        return
    for relative in files:
        if relative == SAVED_MODEL_FILE:
            dst_fs.write_bytes(join(destination, *RECORD_FILE.split(os.sep)), record)
        src, dst = join(source, *relative.split("/")), join(destination, *relative.split("/"))
        if is_gcs(source) and is_gcs(destination):
            dst_fs.copy(src, dst)  # type: ignore[attr-defined]
        elif is_gcs(destination):
            dst_fs.upload_file(src, dst)  # type: ignore[attr-defined]
        else:
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            src_fs.download_file(src, dst)  # type: ignore[attr-defined]


def publish_export(
    export_dir: str, publish_dir: str, metadata: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Publish `export_dir` as the next version and point LATEST at it; returns the pointer.

    Idempotent: an export already published (same source path) keeps its version, and only the
    pointer is (re)written."""
    fs = filesystem(publish_dir)
    if SAVED_MODEL_FILE not in filesystem(export_dir).listdir(export_dir):
        raise ValueError(f"Cannot publish {export_dir!r}: it has no {SAVED_MODEL_FILE}.")
    versions = published_versions(publish_dir)
    version = next(
        (v for v in versions if (_read_record(publish_dir, v) or {}).get("source") == export_dir),
        None,
    )
    record = {"source": export_dir, **(metadata or {})}
    if version is None:
        taken = [int(n) for n in fs.listdir(publish_dir) if n.isdigit()]
        version = max(taken, default=0) + 1
        target = join(publish_dir, str(version))
        if not is_gcs(publish_dir):
            os.makedirs(publish_dir, exist_ok=True)
        record["published_at"] = time.time()
        _copy_tree(export_dir, target, json.dumps(record, sort_keys=True).encode())
        log.info("Copied %s to %s.", export_dir, target)
    else:
        record = _read_record(publish_dir, version) or record
        log.info("%s was already published as version %d; reusing it.", export_dir, version)
    pointer = {**record, "version": version, "path": join(publish_dir, str(version))}
    fs.write_bytes(join(publish_dir, POINTER_FILE), json.dumps(pointer, sort_keys=True).encode())
    log.info("%s now points at version %d.", join(publish_dir, POINTER_FILE), version)
    return pointer
