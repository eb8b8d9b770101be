"""Which checkpoints exist in a model directory and which of them are complete.

Checkpoints are named `ckpt-<global step>` (the Keras estimator saves with the global step as the
checkpoint number). A checkpoint is complete when its `.index` file and every data shard named by
the `.data-NNNNN-of-MMMMM` pattern exist *and* the checkpoint state file (`checkpoint`, written
by `tf.train.CheckpointManager` after the files, and uploaded last to object stores) names it or
a later step. A checkpoint being written, uploaded or deleted (the index goes first) is never
reported. The pure function `complete_checkpoints` works on a listing of names plus the state
file's text, so the sync sensor, the async trigger and every storage backend share one definition.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable

from airflow_tfexp.experiment.errors import CheckpointError
from airflow_tfexp.experiment.storage.fs import basename, dirname, filesystem, join

CHECKPOINT_PREFIX = "ckpt"
_INDEX = re.compile(rf"^{CHECKPOINT_PREFIX}-(\d+)\.index$")
_SHARD = re.compile(rf"^{CHECKPOINT_PREFIX}-(\d+)\.data-(\d{{5}})-of-(\d{{5}})$")
_STATE_LATEST = re.compile(r'^model_checkpoint_path:\s*"([^"]*)"', re.MULTILINE)
STATE_FILE = "checkpoint"


@dataclasses.dataclass(frozen=True, order=True)
class CheckpointInfo:
    """One complete checkpoint: its global step and its path prefix (what `restore` takes)."""

    global_step: int
    checkpoint_path: str

    def as_dict(self) -> dict[str, object]:
        return {"checkpoint_path": self.checkpoint_path, "global_step": self.global_step}


def checkpoint_step(checkpoint_path: str) -> int | None:
    """The global step in a `.../ckpt-<step>` prefix, or None when the name has none."""
    match = re.search(rf"{CHECKPOINT_PREFIX}-(\d+)$", checkpoint_path.rstrip("/"))
    return int(match.group(1)) if match else None


def state_latest_step(state_text: str | None) -> int | None:
    """The step of `model_checkpoint_path` in a checkpoint state file's text, or None."""
    match = _STATE_LATEST.search(state_text or "")
    return checkpoint_step(match.group(1)) if match else None


def complete_checkpoints(names: Iterable[str], state_text: str | None) -> list[int]:
    """Steps of the complete checkpoints among file base names, in step order.

    Complete: index and every data shard present, and the state file names this or a later step.
    """
    latest = state_latest_step(state_text)
    if latest is None:
        return []
    names = list(names)
    indexed = {int(m.group(1)) for m in map(_INDEX.match, names) if m}
    shards: dict[int, tuple[int, set[int]]] = {}
    for match in filter(None, map(_SHARD.match, names)):
        step, shard, total = (int(g) for g in match.groups())
        shards.setdefault(step, (total, set()))[1].add(shard)
    complete = [
        step
        for step in indexed
        if step <= latest and step in shards and shards[step][1] >= set(range(shards[step][0]))
    ]
    return sorted(complete)


def read_state(model_dir: str, names: list[str] | None = None) -> str | None:
    """The checkpoint state file's text (skipping the read when a listing shows it absent)."""
    if names is not None and STATE_FILE not in names:
        return None
    path = join(model_dir, STATE_FILE)
    raw = filesystem(path).read_bytes(path)
    return None if raw is None else raw.decode()


def checkpoints_from_listing(
    model_dir: str, names: list[str], state_text: str | None
) -> list[CheckpointInfo]:
    return [
        CheckpointInfo(step, join(model_dir, f"{CHECKPOINT_PREFIX}-{step}"))
        for step in complete_checkpoints(names, state_text)
    ]


def list_checkpoints(model_dir: str) -> list[CheckpointInfo]:
    """Every complete checkpoint in `model_dir` (local or gs://), in step order."""
    return scan_checkpoints(model_dir)[0]


def scan_checkpoints(model_dir: str) -> tuple[list[CheckpointInfo], str | None]:
    """The complete checkpoints, and why the newest the state names is not one of them (see
    `damaged_newest`), from one listing and one read."""
    names = filesystem(model_dir).listdir(model_dir)
    state = read_state(model_dir, names)
    return checkpoints_from_listing(model_dir, names, state), damaged_newest(
        model_dir, names, state
    )


def latest_checkpoint(model_dir: str) -> CheckpointInfo | None:
    checkpoints = list_checkpoints(model_dir)
    return checkpoints[-1] if checkpoints else None


def damaged_newest(model_dir: str, names: list[str], state_text: str | None) -> str | None:
    """Why the newest checkpoint the state file names is not complete (a data file deleted or
    lost after it was saved), or None when it is complete or none is named."""
    newest = state_latest_step(state_text)
    if newest is None or newest in complete_checkpoints(names, state_text):
        return None
    base = f"{CHECKPOINT_PREFIX}-{newest}"
    return f"{join(model_dir, base)}, the newest checkpoint {STATE_FILE} names, is incomplete: {_incomplete(model_dir, base, names)}"


def newest_checkpoint(model_dir: str) -> CheckpointInfo | None:
    """The newest checkpoint, for a step asked to use "the latest" (evaluate, export): a
    CheckpointError naming the missing files when the newest the state names is damaged,
    rather than the previous one silently in its place."""
    checkpoints, why = scan_checkpoints(model_dir)
    if why:
        fallback = (
            f" (the newest complete one is {checkpoints[-1].checkpoint_path})"
            if checkpoints
            else ""
        )
        raise CheckpointError(
            f"{why}. Not using an older checkpoint in its place{fallback}: restore the missing "
            f"files, or pass that checkpoint's path explicitly."
        )
    return checkpoints[-1] if checkpoints else None


def is_complete(checkpoint_path: str) -> bool:
    """Whether the checkpoint at this prefix is complete (files and state, see above)."""
    directory, base = dirname(checkpoint_path) or ".", basename(checkpoint_path)
    step = checkpoint_step(base)
    names = filesystem(directory).listdir(directory)
    if step is None or base != f"{CHECKPOINT_PREFIX}-{step}":
        # A prefix not named by this engine: its index and at least one data shard.
        return f"{base}.index" in names and any(n.startswith(f"{base}.data-") for n in names)
    return step in complete_checkpoints(names, read_state(directory, names))


def missing_files(names: Iterable[str], base: str) -> list[str]:
    """What a checkpoint prefix (`ckpt-60`) lacks among these file names: its `.index`, its
    data shards (the ones the present shards' `-of-MMMMM` says should be there, or any)."""
    names = set(names)
    missing = [] if f"{base}.index" in names else [f"{base}.index"]
    shards = [n for n in names if n.startswith(f"{base}.data-")]
    totals = {int(n.rsplit("-of-", 1)[1]) for n in shards if n.rsplit("-of-", 1)[-1].isdigit()}
    if not shards:
        missing.append(f"{base}.data-00000-of-00001 (no data shard at all)")
    for total in totals:
        missing += [
            f"{base}.data-{shard:05d}-of-{total:05d}"
            for shard in range(total)
            if f"{base}.data-{shard:05d}-of-{total:05d}" not in names
        ]
    return missing


def _incomplete(directory: str, base: str, names: list[str]) -> str:
    missing = missing_files(names, base)
    if missing:
        return f"it has no {', '.join(missing)}"
    return (
        f"the checkpoint state file {join(directory, STATE_FILE)} does not name it or a later step"
    )


def complete_checkpoint(checkpoint_path: str) -> CheckpointInfo:
    """The checkpoint at this prefix, or CheckpointError naming what is missing (a prefix not
    named `ckpt-<step>` gets step -1)."""
    if not is_complete(checkpoint_path):
        directory, base = dirname(checkpoint_path) or ".", basename(checkpoint_path)
        why = _incomplete(directory, base, filesystem(directory).listdir(directory))
        raise CheckpointError(f"Checkpoint {checkpoint_path} is missing or incomplete: {why}.")
    step = checkpoint_step(checkpoint_path)
    return CheckpointInfo(step if step is not None else -1, checkpoint_path)


def select_pending(
    checkpoints: list[CheckpointInfo],
    evaluated_steps: set[int],
    *,
    every_checkpoint: bool,
    only_once: bool = True,
) -> list[CheckpointInfo]:
    """The checkpoints an evaluator should evaluate next, oldest first.

    `every_checkpoint` gives every checkpoint not evaluated yet; otherwise only the latest, and
    only if it was not evaluated yet (unless `only_once` is off).
    """
    if not checkpoints:
        return []
    if every_checkpoint:
        return [c for c in checkpoints if c.global_step not in evaluated_steps]
    latest = checkpoints[-1]
    if only_once and latest.global_step in evaluated_steps:
        return []
    return [latest]
