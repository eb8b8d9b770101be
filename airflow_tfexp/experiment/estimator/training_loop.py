"""One call of `KerasEstimator.train`: step chunks, progress logs, summaries, checkpoints, hooks.

Steps run in chunks that end at the next log, summary, checkpoint or target boundary, so the
compiled loop runs without per-step Python in between.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time

from airflow_tfexp.experiment._progress import ProgressLogger
from airflow_tfexp.experiment.estimator.model_state import ModelState, metrics_as_floats
from airflow_tfexp.experiment.estimator.step_runners import CoordinatedSteps, LocalSteps
from airflow_tfexp.experiment.estimator.summaries import SummaryWriters
from airflow_tfexp.experiment.hooks import HookList, ListenerList, TrainingContext
from airflow_tfexp.experiment.run_config import RunConfig
from airflow_tfexp.experiment.storage import checkpoints as ckpts
from airflow_tfexp.experiment.storage.model_dir_storage import ModelDirStorage

log = logging.getLogger(__name__)


class TrainingLoop:
    """One call of `KerasEstimator.train`: step chunks, logs, summaries, checkpoints, hooks."""

    def __init__(
        self,
        state: ModelState,
        *,
        config: RunConfig,
        storage: ModelDirStorage,
        summaries: SummaryWriters,
        hooks: HookList,
        listeners: ListenerList,
        target: int | None,
    ) -> None:
        self.state = state
        self.config = config
        self.storage = storage
        self.summaries = summaries
        self.hooks = hooks
        self.listeners = listeners
        self.target = target
        self.max_chunk: int | None = None
        self.last_saved_step = ckpts.latest_checkpoint(storage.model_dir)
        self.last_saved_step = self.last_saved_step.global_step if self.last_saved_step else None
        self.last_save_time = time.monotonic()
        self.progress = ProgressLogger("training", total=target, every=config.log_step_count_steps)

    def _chunk(self, step: int) -> int:
        """Steps to run before the next log, summary, checkpoint or target boundary."""
        bounds = [
            _to_next(step, self.config.log_step_count_steps),
            _to_next(step, self.config.save_summary_steps),
        ]
        if self.config.save_checkpoints_steps:
            bounds.append(_to_next(step, self.config.save_checkpoints_steps))
        if self.target is not None:
            bounds.append(self.target - step)
        if self.max_chunk is not None:
            bounds.append(self.max_chunk)
        return max(1, min(bounds))

    def run(self, steps: LocalSteps | CoordinatedSteps) -> None:
        """Train until the target, the end of the input or a stop request; every checkpoint
        is visible to readers when this returns (or raises)."""
        try:
            self._run(steps)
        except BaseException:
            # the last checkpoint made visible is what a retry resumes from; the error that
            # stopped training is the one to raise, not a later upload's
            with contextlib.suppress(Exception):
                self.storage.wait_for_uploads()
            raise

    def _run(self, steps: LocalSteps | CoordinatedSteps) -> None:
        state, model = self.state, self.state.model
        self.max_chunk = steps.max_chunk
        step = state.global_step
        context = TrainingContext(self.storage.model_dir, step, self.target, self.config.is_chief)
        self.hooks.begin(context)
        self.listeners.begin(context)
        self.progress.start(step)
        if self.last_saved_step is None:
            self._save(step)  # an evaluator can start from step 0, as with the Estimator
        model.reset_metrics()
        stop_reason = None
        while stop_reason is None:
            chunk = self._chunk(step)
            self.hooks.before_step(step)
            done = steps.run(chunk)
            step = state.global_step
            ran_out = done < chunk
            reached = self.target is not None and step >= self.target
            at_boundary = self._at_log_or_summary(step) or ran_out or reached
            # Reading metrics syncs with the device: only when someone will look at them.
            wanted = done and (self.hooks.hooks or at_boundary)
            logs = metrics_as_floats(model) if wanted else {}
            if done and self.hooks.after_step(step, logs):
                stop_reason = "a training hook requested a stop"
            if ran_out and stop_reason is None:
                stop_reason = f"the training input ran out after global step {step}"
            if reached:
                stop_reason = f"max_steps={self.target} reached"
            if done and (at_boundary or stop_reason is not None):
                self._log_and_summarize(step, logs, final=stop_reason is not None)
            if stop_reason is None and self._checkpoint_due(step):
                if self._save(step):
                    stop_reason = "a saving listener requested a stop"
        if self.last_saved_step != step:
            self._save(step)
        if not self.config.is_chief:
            shutil.rmtree(self.state.manager.directory, ignore_errors=True)
        self.storage.wait_for_uploads()  # the final checkpoint is visible before `end`
        log.info("Training stopped at global step %d: %s.", step, stop_reason)
        self.hooks.end(step)
        self.listeners.end(step)

    def _at_log_or_summary(self, step: int) -> bool:
        config = self.config
        return step % config.log_step_count_steps == 0 or step % config.save_summary_steps == 0

    def _checkpoint_due(self, step: int) -> bool:
        if self.last_saved_step == step:
            return False
        if self.config.save_checkpoints_steps:
            return step % self.config.save_checkpoints_steps == 0
        return time.monotonic() - self.last_save_time >= self.config.save_checkpoints_secs

    def _log_and_summarize(self, step: int, logs: dict[str, float], final: bool) -> None:
        rate = self.progress.update(step, logs, force=final)
        at_summary = final or step % self.config.save_summary_steps == 0
        if at_summary and self.config.is_chief:
            scalars = dict(logs)
            if rate is not None:
                scalars["global_step/sec"] = rate
            self.summaries.write(self.storage.local_dir, step, scalars)
        if step % self.config.log_step_count_steps == 0:
            self.state.model.reset_metrics()

    def _save(self, step: int) -> bool:
        # The previous checkpoint's upload, running while training stepped on, must be done
        # before this save rewrites the checkpoint state and garbage-collects its files.
        self.storage.wait_for_uploads()
        self.listeners.before_save(step)
        path = self.state.manager.save(checkpoint_number=step)
        self.last_saved_step = step
        self.last_save_time = time.monotonic()
        log.info("Saved checkpoint for step %d: %s", step, path)
        if not self.config.is_chief:
            return False
        path = self.storage.push_checkpoint(path)
        if self.listeners.reads_checkpoint(step):
            self.storage.wait_for_uploads()  # e.g. an in-training evaluation of `path`
        return bool(self.listeners.after_save(step, path))


def _to_next(step: int, every: int) -> int:
    return every - step % every
