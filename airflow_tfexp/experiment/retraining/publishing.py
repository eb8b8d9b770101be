"""Publishing: copy a blessed export to `publish_dir/<version>/`, then move `publish_dir/LATEST`.

A serving system reads `LATEST` (or, like TF Serving, the highest numbered version dir that has a
`saved_model.pb`): the version dir is copied with `saved_model.pb` last and the pointer is
replaced atomically only after, so no reader ever sees a half-copied model. Versions are
integers (TF Serving's layout). Publishing the same export again (a retry) reuses its version.

Concurrent publishers never share a version: each claims its number exclusively first. Locally
every file and dir of the copy is fsynced before it is renamed in and before LATEST moves.
LATEST only moves forward unless a rollback is asked for.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import socket
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from airflow_tfexp.experiment.export.export_dirs import SAVED_MODEL_FILE
from airflow_tfexp.experiment.storage.fs import filesystem, is_gcs, join

log = logging.getLogger(__name__)
POINTER_FILE = "LATEST"
RECORD_FILE = os.path.join("assets.extra", "published.json")
CLAIMS_DIR = ".claims"  # one exclusively created file per version number taken
ORDER_KEYS = ("logical_date", "blessed_at")  # what makes one candidate newer than another
MAX_VERSION = 2**63 - 1  # TF Serving reads version numbers as int64


def latest_published(publish_dir: str) -> dict[str, Any] | None:
    """The pointer's record (version, path, source, ...), or None before the first publish."""
    path = join(publish_dir, POINTER_FILE)
    text = filesystem(publish_dir).read_bytes(path)
    return None if text is None else _parse_pointer(text, path)


def _parse_pointer(text: bytes, path: str) -> dict[str, Any]:
    try:
        record = json.loads(text)
    except ValueError:
        raise ValueError(f"{path} is not valid JSON: {text[:200]!r}") from None
    if not isinstance(record, dict):
        raise ValueError(f"{path} is not a publish record (a JSON object): {text[:200]!r}")
    return record


def _version_numbers(names: list[str]) -> list[int]:
    """The names that are version numbers (ASCII digits, below TF Serving's int64 limit)."""
    return [int(n) for n in names if n.isascii() and n.isdigit() and int(n) < MAX_VERSION]


def published_versions(publish_dir: str) -> list[int]:
    """Whole version dirs (those with a saved_model.pb), ascending."""
    fs = filesystem(publish_dir)
    versions = sorted(_version_numbers(fs.listdir(publish_dir)))
    return [v for v in versions if SAVED_MODEL_FILE in fs.listdir(join(publish_dir, str(v)))]


def _read_record(publish_dir: str, version: int) -> dict[str, Any] | None:
    text = filesystem(publish_dir).read_bytes(
        join(publish_dir, str(version), *RECORD_FILE.split(os.sep))
    )
    return json.loads(text) if text else None


def _fsync_tree(directory: str) -> None:
    """Make a copied version durable (every file, then every dir) before it is renamed in."""
    from airflow_tfexp.experiment.storage.local import fsync_dir

    for current, _, names in os.walk(directory, topdown=False):
        for name in names:
            fd = os.open(os.path.join(current, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(current)


def _copy_tree(
    source: str, destination: str, record: bytes, before_visible: Callable[[], None]
) -> None:
    """Copy an export dir (local or gs://, either side) plus the publish record; saved_model.pb
    goes last, so the version is whole (record included) once it is there. `before_visible`
    runs once everything else is copied, right before the version becomes visible; when it
    raises, nothing of the copy is left."""
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
        temp = os.path.join(os.path.dirname(destination), f".part-{uuid.uuid4().hex}")
        try:
            shutil.copytree(source, temp)
            dst_fs.write_bytes(os.path.join(temp, RECORD_FILE), record)
            _fsync_tree(temp)
            before_visible()
            os.rename(temp, destination)  # whole or absent (the version was claimed: not there)
        finally:
            shutil.rmtree(temp, ignore_errors=True)
        return
    for relative in files:
        if relative == SAVED_MODEL_FILE:
            try:
                before_visible()
            except BaseException:
                dst_fs.delete_tree(destination)  # no saved_model.pb yet: never a version
                raise
            dst_fs.write_bytes(join(destination, *RECORD_FILE.split(os.sep)), record)
        src, dst = join(source, *relative.split("/")), join(destination, *relative.split("/"))
        if is_gcs(source) and is_gcs(destination):
            dst_fs.copy(src, dst)  # type: ignore[attr-defined]
        elif is_gcs(destination):
            dst_fs.upload_file(src, dst)  # type: ignore[attr-defined]
        else:
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            src_fs.download_file(src, dst)  # type: ignore[attr-defined]


def _remove_stale_copies(publish_dir: str, older_than_secs: float = 3600.0) -> None:
    """Delete the hidden `.part-*` copies of publishers killed mid-copy (never versions)."""
    now = time.time()
    for name in os.listdir(publish_dir):
        path = os.path.join(publish_dir, name)
        try:
            stale = now - os.lstat(path).st_mtime > older_than_secs
        except FileNotFoundError:
            continue
        if name.startswith(".part-") and stale and not os.path.islink(path):
            log.info("Deleting %s, the copy of a publish killed midway.", path)
            shutil.rmtree(path, ignore_errors=True)


class OlderThanPublishedError(ValueError):
    """A publish whose candidate is older than the model LATEST points at (a rollback)."""


def _when(record: dict[str, Any], key: str) -> float | None:
    """The record's time under `key` (epoch seconds), None when absent or not believable (not
    finite, or more than a day ahead: such a value must not pin LATEST for good)."""
    value = record.get(key)
    when: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        when = float(value)
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
            if moment.tzinfo is None:  # Airflow's dates are UTC; never the host's zone
                moment = moment.replace(tzinfo=UTC)
            when = moment.timestamp()
        except (ValueError, OverflowError):
            when = None
    if when is None or not math.isfinite(when) or when > time.time() + 86400:
        return None
    return when


def older_than(candidate: dict[str, Any], published: dict[str, Any]) -> str | None:
    """Why `candidate` is older than `published` (by the runs' logical dates, else by when each
    was blessed), or None when it is not (or they cannot be told apart)."""
    for key in ORDER_KEYS:
        mine, theirs = _when(candidate, key), _when(published, key)
        if mine is not None and theirs is not None:
            if mine < theirs:
                return (
                    f"the candidate {candidate.get('source')} ({key} {candidate[key]}) is older "
                    f"than version {published.get('version')} that LATEST points at "
                    f"({published.get('source')}, {key} {published[key]})"
                )
            return None
    return None


def _claim_version(publish_dir: str, claim: dict[str, Any]) -> int:
    """The next version number, claimed for this publisher alone: `.claims/<version>` created
    exclusively (a hard link locally, a generation-0 precondition on GCS). A loser takes the
    next number; a claimed number is never written by anyone else, and never reused."""
    fs = filesystem(publish_dir)
    claims = join(publish_dir, CLAIMS_DIR)
    taken = _version_numbers(fs.listdir(publish_dir) + fs.listdir(claims))
    version = max(taken, default=0) + 1
    data = json.dumps(claim, sort_keys=True).encode()
    while version >= MAX_VERSION or not fs.create_new(join(claims, str(version)), data):
        if version >= MAX_VERSION:
            raise ValueError(
                f"{publish_dir}: no version number below 2**63 is free (the highest taken is "
                f"{max(taken)}); TF Serving cannot load a higher one. Remove the stray entries "
                f"of {claims} and the version dirs no longer served."
            )
        log.info(
            "Version %d of %s was claimed by another publisher; trying the next.",
            version,
            publish_dir,
        )
        version += 1
    return version


def publish_export(
    export_dir: str,
    publish_dir: str,
    metadata: dict[str, Any] | None = None,
    allow_rollback: bool = False,
) -> dict[str, Any]:
    """Publish `export_dir` as the next version and point LATEST at it; returns the pointer.

    Idempotent: an export already published (same source path) keeps its version, and only the
    pointer is (re)written. Versions only increase and LATEST only moves forward: a candidate
    older than what LATEST holds (`older_than`) raises OlderThanPublishedError naming both,
    unless `allow_rollback` (an explicit rollback)."""
    if SAVED_MODEL_FILE not in filesystem(export_dir).listdir(export_dir):
        raise ValueError(f"Cannot publish {export_dir!r}: it has no {SAVED_MODEL_FILE}.")
    record = {"source": export_dir, **(metadata or {})}

    def check_not_older() -> None:
        current = _current_pointer(publish_dir, allow_rollback)
        if current and not allow_rollback and (why := older_than(record, current)):
            raise OlderThanPublishedError(
                f"Not publishing: {why}. Pass allow_rollback=True to roll back."
            )

    try:
        check_not_older()
    except OlderThanPublishedError:
        withdraw_older_versions(publish_dir)  # say, this source's copy left by a killed try
        raise
    versions = published_versions(publish_dir)
    version = next(
        (v for v in versions if (_read_record(publish_dir, v) or {}).get("source") == export_dir),
        None,
    )
    if version is None:
        if not is_gcs(publish_dir):
            os.makedirs(publish_dir, exist_ok=True)
            _remove_stale_copies(publish_dir)
        record["published_at"] = time.time()
        claim = {
            "source": export_dir,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "at": time.time(),
        }
        version = _claim_version(publish_dir, claim)
        target = join(publish_dir, str(version))
        # checked again right before the version becomes visible: a newer publish may have
        # moved LATEST meanwhile, and an older model must not become the highest version
        _copy_tree(export_dir, target, json.dumps(record, sort_keys=True).encode(), check_not_older)
        log.info("Copied %s to %s.", export_dir, target)
        created = True
    else:
        record = {**(_read_record(publish_dir, version) or record), **(metadata or {})}
        log.info("%s was already published as version %d; reusing it.", export_dir, version)
        created = False
    pointer = {**record, "version": version, "path": join(publish_dir, str(version))}
    try:
        moved = _move_pointer(publish_dir, pointer, allow_rollback)
    except OlderThanPublishedError:
        if created:  # a newer publish won the race: this older copy must not be served
            withdraw_older_versions(publish_dir)
        raise
    if not allow_rollback:
        withdraw_older_versions(publish_dir)  # a slower older publisher that got a higher number
    return moved


def withdraw_older_versions(publish_dir: str) -> list[int]:
    """Take out of service every version numbered above the one LATEST points at whose model
    is older than LATEST's: TF Serving serves the highest number, and concurrent publishers
    do not finish in the order they claimed numbers. Returns the versions withdrawn."""
    try:
        current = latest_published(publish_dir)
    except ValueError:
        return []
    if not current or not isinstance(current.get("version"), int):
        return []
    withdrawn = []
    for version in published_versions(publish_dir):
        if version <= current["version"]:
            continue
        record = _read_record(publish_dir, version) or {}
        if older_than(record, current):
            _withdraw(publish_dir, version)
            withdrawn.append(version)
    return withdrawn


def _current_pointer(publish_dir: str, allow_rollback: bool) -> dict[str, Any] | None:
    """LATEST's record; an unreadable one is an error saying how to repair it, or (with
    `allow_rollback`) replaced."""
    try:
        return latest_published(publish_dir)
    except ValueError as err:
        if allow_rollback:
            log.warning("%s; replacing it (allow_rollback=True).", err)
            return None
        raise ValueError(
            f"{err}. Repair it (a JSON object naming `version` and `path`), delete it, or "
            "publish with allow_rollback=True to replace it."
        ) from None


def _withdraw(publish_dir: str, version: int) -> None:
    """Take a version out of service (invisible at once, then deleted)."""
    target = join(publish_dir, str(version))
    fs = filesystem(target)
    if is_gcs(target):
        fs.delete(join(target, SAVED_MODEL_FILE))  # no saved_model.pb: not a version any more
    else:
        aside = os.path.join(publish_dir, f".part-withdrawn-{uuid.uuid4().hex}")
        try:
            os.rename(target, aside)
        except FileNotFoundError:
            return  # another publisher withdrew it first
        target = aside
    fs.delete_tree(target)
    log.warning(
        "Withdrew version %d of %s: it is older than the model LATEST points at, and serving "
        "systems load the highest version.",
        version,
        publish_dir,
    )


def _move_pointer(
    publish_dir: str, pointer: dict[str, Any], allow_rollback: bool
) -> dict[str, Any]:
    """Point LATEST at `pointer`, compare-and-swap: a newer publish that moved it meanwhile
    (another publisher, at the same time) is not undone."""
    path = join(publish_dir, POINTER_FILE)
    refused: list[str] = []

    def forward(raw: bytes | None) -> bytes | None:
        refused.clear()
        try:
            current = _parse_pointer(raw, path) if raw else None
        except ValueError:
            if not allow_rollback:
                raise
            current = None  # checked before copying: allow_rollback replaces it
        if current and not allow_rollback and (why := older_than(pointer, current)):
            refused.append(why)
            return None
        return json.dumps(pointer, sort_keys=True).encode()

    filesystem(path).update_bytes(path, forward)
    if refused:
        raise OlderThanPublishedError(
            f"Not publishing: {refused[0]} (published meanwhile). Pass allow_rollback=True to "
            "roll back."
        )
    verb = "rolled back to" if allow_rollback else "points at"
    log.info("%s now %s version %d.", path, verb, pointer["version"])
    return pointer
