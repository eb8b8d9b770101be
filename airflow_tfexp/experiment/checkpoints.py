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
import glob
import os
import re
from collections.abc import Iterable

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


def _read_state(model_dir: str) -> str | None:
    try:
        with open(os.path.join(model_dir, STATE_FILE)) as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def list_checkpoints(model_dir: str) -> list[CheckpointInfo]:
    """Every complete checkpoint in a local `model_dir`, in step order."""
    try:
        names = os.listdir(model_dir)
    except FileNotFoundError:
        return []
    return [
        CheckpointInfo(step, os.path.join(model_dir, f"{CHECKPOINT_PREFIX}-{step}"))
        for step in complete_checkpoints(names, _read_state(model_dir))
    ]


def latest_checkpoint(model_dir: str) -> CheckpointInfo | None:
    checkpoints = list_checkpoints(model_dir)
    return checkpoints[-1] if checkpoints else None


def is_complete(checkpoint_path: str) -> bool:
    """Whether the checkpoint at this prefix has its index and all its data shards."""
    directory, base = os.path.split(checkpoint_path)
    step = checkpoint_step(base)
    if step is None or base != f"{CHECKPOINT_PREFIX}-{step}":
        # A prefix not named by this engine: its index and at least one data shard.
        return os.path.exists(checkpoint_path + ".index") and bool(
            glob.glob(glob.escape(checkpoint_path) + ".data-*")
        )
    try:
        names = os.listdir(directory or ".")
    except FileNotFoundError:
        return False
    return step in complete_checkpoints(names, _read_state(directory or "."))


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
