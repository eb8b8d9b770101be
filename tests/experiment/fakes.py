"""A fast fake estimator and clock for testing Experiment's semantics without TensorFlow.

The fake writes real checkpoint-shaped files (`ckpt-N.index` + one data shard) so the engine's
file-level checkpoint discovery, results file and coordination are exercised for real.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from airflow_tfexp.experiment.export.export_dirs import ExportTarget
from airflow_tfexp.experiment.hooks import HookList, ListenerList, TrainingContext
from airflow_tfexp.experiment.run_config import RunConfig
from airflow_tfexp.experiment.storage.checkpoints import (
    checkpoint_step,
    latest_checkpoint,
    state_latest_step,
)
from airflow_tfexp.experiment.storage.fs import filesystem, join


def write_checkpoint(model_dir: str, step: int) -> str:
    """Checkpoint-shaped files, local or on GCS: data, index, then the state (like TensorFlow)."""
    prefix = join(model_dir, f"ckpt-{step}")
    fs = filesystem(prefix)
    fs.write_bytes(prefix + ".data-00000-of-00001", str(step).encode())
    fs.write_bytes(prefix + ".index", b"index")
    update_state(model_dir, step)
    return prefix


def write_file(path: str, data: bytes = b"") -> None:
    filesystem(path).write_bytes(path, data)


def update_state(model_dir: str, step: int) -> None:
    """Write the checkpoint state file the way CheckpointManager does: after the files."""
    state = join(model_dir, "checkpoint")
    fs = filesystem(state)
    current = fs.read_bytes(state)
    latest = state_latest_step(current.decode()) if current else None
    if latest is None or step > latest:
        fs.write_bytes(state, f'model_checkpoint_path: "ckpt-{step}"\n'.encode())


class FakeEstimator:
    """Trains by counting steps and saving every `save_every` steps; evaluation returns
    `loss = loss_fn(step)`."""

    def __init__(
        self,
        model_dir: str,
        config: RunConfig | None = None,
        save_every: int = 10,
        input_size: int | None = None,
        loss_fn: Callable[[int], float] | None = None,
    ) -> None:
        self.model_dir = str(model_dir)
        self.config = config or RunConfig(model_dir=self.model_dir, tf_config="")
        self.save_every = save_every
        self.input_size = input_size  # batches the train input yields per train() call
        self.loss_fn = loss_fn or (lambda step: 1.0 / (1 + step))
        self.train_calls: list[dict] = []
        self.evaluate_calls: list[dict] = []
        self.exports: list[dict] = []

    def _step(self) -> int:
        latest = latest_checkpoint(self.model_dir)
        return latest.global_step if latest else 0

    def latest_checkpoint(self) -> str | None:
        latest = latest_checkpoint(self.model_dir)
        return latest.checkpoint_path if latest else None

    def train(self, input_fn, hooks=None, steps=None, max_steps=None, saving_listeners=None):
        self.train_calls.append(
            {
                "steps": steps,
                "max_steps": max_steps,
                "hooks": list(hooks or []),
                "listeners": list(saving_listeners or []),
            }
        )
        hooks, listeners = HookList(hooks), ListenerList(saving_listeners)
        step = self._step()
        target = max_steps if max_steps is not None else (step + steps if steps else None)
        context = TrainingContext(self.model_dir, step, target)
        hooks.begin(context)
        listeners.begin(context)
        if latest_checkpoint(self.model_dir) is None:
            write_checkpoint(self.model_dir, 0)
        batches, stop = 0, False
        while (target is None or step < target) and not stop:
            if self.input_size is not None and batches >= self.input_size:
                break
            step += 1
            batches += 1
            stop = bool(hooks.after_step(step, {"loss": self.loss_fn(step)}))
            if step % self.save_every == 0:
                listeners.before_save(step)
                stop = (
                    bool(listeners.after_save(step, write_checkpoint(self.model_dir, step))) or stop
                )
        if self._step() != step:
            listeners.before_save(step)
            listeners.after_save(step, write_checkpoint(self.model_dir, step))
        hooks.end(step)
        listeners.end(step)
        return self

    def evaluate(self, input_fn, steps=None, hooks=None, checkpoint_path=None, name=None):
        path = checkpoint_path or self.latest_checkpoint()
        step = checkpoint_step(path)
        self.evaluate_calls.append(
            {"step": step, "steps": steps, "name": name, "input_fn": input_fn}
        )
        return {"global_step": step, "loss": self.loss_fn(step)}

    def export_saved_model(self, export_dir_base, serving_input_fn=None, checkpoint_path=None):
        target = ExportTarget(export_dir_base)
        os.makedirs(target.temp_path)
        with open(os.path.join(target.temp_path, "saved_model.pb"), "w") as handle:
            handle.write(str(checkpoint_path))
        path = target.commit()
        self.exports.append(
            {"base": export_dir_base, "checkpoint_path": checkpoint_path, "path": path}
        )
        return path


class FakeClock:
    """Time advances only when slept; `on_sleep(clock, seconds)` lets a test act meanwhile."""

    def __init__(self, start: float = 1_000_000.0, on_sleep: Callable | None = None) -> None:
        self.now = start
        self.sleeps: list[float] = []
        self.on_sleep = on_sleep

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        if self.on_sleep:
            self.on_sleep(self, seconds)


def train_input_fn():
    return "train-data"


def eval_input_fn():
    return "eval-data"
