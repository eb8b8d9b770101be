"""How a trainer and its evaluators, in separate processes, coordinate through the model dir.

- The trainer writes a completion marker with its final step when training ends (steps reached,
  input exhausted or a hook asked to stop); evaluators stop after evaluating that checkpoint and
  parameter servers exit.
- A continuous evaluator registers itself (name, mode, the checkpoint it is evaluating, a
  heartbeat) in a file of its own instance (`eval_<name>/evaluator-<id>.json`: two evaluators
  of one name never share one, so one withdrawing leaves the other's claim); the trainer keeps
  checkpoints that a live evaluator still needs even past `keep_checkpoint_max`, so they are
  not deleted before they are read.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from airflow_tfexp.experiment.evaluation.results import eval_dir, evaluated_steps
from airflow_tfexp.experiment.storage.checkpoints import STATE_FILE
from airflow_tfexp.experiment.storage.files import read_json, write_json_atomic
from airflow_tfexp.experiment.storage.fs import filesystem, join

log = logging.getLogger(__name__)
COMPLETION_MARKER = "training_complete.json"
REGISTRATION_FILE = "evaluator.json"  # the one-per-name layout of earlier releases, still read
REGISTRATION_PREFIX = "evaluator-"
MIN_STALE_SECS = 900.0


def completion_marker_path(model_dir: str) -> str:
    return join(model_dir, COMPLETION_MARKER)


def completion_reason(global_step: int, train_steps: int | None) -> str:
    """Why training ended at `global_step`, for the completion marker and the log."""
    if train_steps is not None and global_step >= train_steps:
        return f"train_steps={train_steps} reached"
    if train_steps is None:
        return "the training input ran out or a hook stopped training (train_steps=None)"
    return f"stopped before train_steps={train_steps}: the input ran out or a hook stopped training"


def write_completion_marker(model_dir: str, global_step: int, reason: str) -> None:
    """Write the marker, then touch the checkpoint state: waiters look at the state's version
    only (`model_dir_scan`), and must look again to see the marker."""
    write_json_atomic(
        completion_marker_path(model_dir),
        {"global_step": int(global_step), "reason": reason, "wall_time": time.time()},
    )
    state = join(model_dir, STATE_FILE)
    filesystem(state).touch(state)


def read_completion_marker(model_dir: str) -> dict[str, Any] | None:
    """The marker's content ({global_step, reason, wall_time}), or None while training runs."""
    return read_json(completion_marker_path(model_dir))


# When the run this code works for started (Unix time; None outside Airflow): a completion
# marker written before it is an earlier run's, and says nothing about this run's training.
_COMPLETED_AFTER: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "tfexp_completed_after", default=None
)


@contextlib.contextmanager
def completions_after(timestamp: float | None) -> Iterator[None]:
    """Readers in this context ignore completion markers written before `timestamp` (set by
    the operators to their DAG run's start: a rerun with more `train_steps` is evaluated)."""
    token = _COMPLETED_AFTER.set(timestamp)
    try:
        yield
    finally:
        _COMPLETED_AFTER.reset(token)


def is_current(marker: dict[str, Any] | None, completed_after: float | None) -> bool:
    """Whether `marker` belongs to the run that started at `completed_after` (or any run)."""
    if marker is None:
        return False
    wall_time = marker.get("wall_time")
    if completed_after is None:
        return True
    return isinstance(wall_time, int | float) and wall_time >= completed_after


def current_completion(
    model_dir: str, completed_after: float | None = None, *, marker: Any = ...
) -> dict[str, Any] | None:
    """The completion marker when it is this run's, else None (also while training runs): the
    one test every reader applies. `completed_after` defaults to the context's
    (`completions_after`); `marker`, when given, is one already read."""
    after = _COMPLETED_AFTER.get() if completed_after is None else completed_after
    found = read_completion_marker(model_dir) if marker is ... else marker
    if found is not None and not is_current(found, after):
        log.info(
            "Ignoring %s: written at %s, before this run started (%s); it is an earlier run's.",
            completion_marker_path(model_dir),
            found.get("wall_time"),
            after,
        )
        return None
    return found


def clear_completion_marker(model_dir: str) -> None:
    path = completion_marker_path(model_dir)
    filesystem(path).delete(path)


@dataclasses.dataclass
class EvaluatorRegistration:
    """A continuous evaluator's claim on checkpoints, refreshed on every pass of its loop."""

    model_dir: str
    name: str | None
    every_checkpoint: bool
    stale_after_secs: float = MIN_STALE_SECS
    # this evaluator's own registration file: unique per instance (a retry is a new instance;
    # the registration of the try it replaces expires after stale_after_secs)
    instance_id: str = dataclasses.field(default_factory=lambda: uuid.uuid4().hex[:16])

    @property
    def path(self) -> str:
        return join(
            eval_dir(self.model_dir, self.name), f"{REGISTRATION_PREFIX}{self.instance_id}.json"
        )

    def heartbeat(self, evaluating_step: int | None = None) -> None:
        write_json_atomic(
            self.path,
            {
                "name": self.name,
                "every_checkpoint": self.every_checkpoint,
                "evaluating_step": evaluating_step,
                "heartbeat": time.time(),
                "stale_after_secs": self.stale_after_secs,
                "pid": os.getpid(),
                "instance_id": self.instance_id,
            },
        )

    def withdraw(self) -> None:
        filesystem(self.path).delete(self.path)


def _live_registrations(model_dir: str, now: float) -> list[dict[str, Any]]:
    names = [
        n for n in filesystem(model_dir).listdir(model_dir) if n == "eval" or n.startswith("eval_")
    ]
    live = []
    for name in names:
        directory = join(model_dir, name)
        files = [
            f
            for f in filesystem(directory).listdir(directory)
            if f == REGISTRATION_FILE or (f.startswith(REGISTRATION_PREFIX) and f.endswith(".json"))
        ]
        for file in files:
            try:
                data = read_json(join(directory, file))
            except ValueError:
                continue  # a registration being rewritten; the next sweep sees it
            if not isinstance(data, dict):
                continue
            heartbeat, stale = (
                data.get("heartbeat", 0),
                data.get("stale_after_secs", MIN_STALE_SECS),
            )
            if isinstance(heartbeat, int | float) and isinstance(stale, int | float):
                if now - heartbeat <= stale:
                    live.append(data)
    return live


def protection_check(model_dir: str, now: float | None = None) -> Callable[[int], str | None]:
    """A function telling why a checkpoint step must not be deleted yet (None: it may be).

    Reads the registrations and the results they depend on once, so a garbage-collection sweep
    over many checkpoints costs a few reads, not a few per checkpoint.
    """
    now = time.time() if now is None else now
    claims = []
    for registration in _live_registrations(model_dir, now):
        name = registration.get("name")
        evaluated = (
            evaluated_steps(model_dir, name) if registration.get("every_checkpoint") else None
        )
        claims.append((name, registration.get("evaluating_step"), evaluated))

    def reason(global_step: int) -> str | None:
        for name, evaluating, evaluated in claims:
            if evaluating == global_step:
                return f"evaluator {name!r} is evaluating it"
            if evaluated is not None and global_step not in evaluated:
                return f"evaluator {name!r} evaluates every checkpoint and has not evaluated it yet"
        return None

    return reason


def protection_reason(model_dir: str, global_step: int, now: float | None = None) -> str | None:
    """Why the checkpoint at `global_step` must not be deleted yet, or None if it may be."""
    return protection_check(model_dir, now)(global_step)
