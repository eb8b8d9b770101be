"""Training hooks and checkpoint-saver listeners (the TF2 successors of SessionRunHook).

Both are base classes of documented no-op methods; a list of them is itself one (`HookList`,
`ListenerList`), so the training loop calls one object. A `True` return from `after_step` or
`after_save` asks training to stop, as `CheckpointSaverListener.after_save` did in tf.estimator.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any


@dataclasses.dataclass(frozen=True)
class TrainingContext:
    """What a hook may want to know when training begins."""

    model_dir: str
    global_step: int
    max_steps: int | None
    is_chief: bool = True


class TrainingHook:
    """Called around training steps. Subclass and override what you need."""

    def begin(self, context: TrainingContext) -> None:
        """Training is about to start (the model is built and restored)."""

    def before_step(self, step: int) -> None:
        """A run of steps starting after global step `step` is about to execute."""

    def after_step(self, step: int, logs: Mapping[str, float]) -> bool | None:
        """Global step `step` finished with these metrics (loss, ...). Return True to stop.

        With `steps_per_execution > 1` in `model.compile`, this is called once per execution,
        like Keras' `on_train_batch_end`.
        """
        return None

    def end(self, step: int) -> None:
        """Training ended at global step `step` (for any reason)."""


class CheckpointSaverListener:
    """Called around every checkpoint save."""

    def begin(self, context: TrainingContext) -> None:
        """Training is about to start."""

    def before_save(self, step: int) -> None:
        """A checkpoint of global step `step` is about to be written."""

    def after_save(self, step: int, checkpoint_path: str) -> bool | None:
        """The checkpoint is complete and visible at `checkpoint_path`. Return True to stop
        training."""
        return None

    def reads_checkpoint(self, step: int) -> bool:
        """Whether `after_save(step, ...)` may read the checkpoint, so that training must wait
        for its upload (gs://) first. Default: whenever `after_save` is overridden."""
        return type(self).after_save is not CheckpointSaverListener.after_save

    def end(self, step: int) -> None:
        """Training ended; the final checkpoint has been saved."""


def as_sequence(items: Any, argument: str) -> list[Any]:
    """Hooks or listeners as given, in a list: the estimator checks their kind (a
    bring-your-own estimator may take its own), only a list or tuple is checked here."""
    if items is None:
        return []
    if not isinstance(items, list | tuple):
        raise ValueError(
            f"Invalid value for `{argument}`. Received: {items!r}. Expected a list of hooks."
        )
    return list(items)


def _check_all(kind: type, items: Iterable[Any], argument: str) -> list[Any]:
    items = list(items or [])
    for item in items:
        if not isinstance(item, kind):
            raise ValueError(
                f"Invalid value in `{argument}`. Received: {item!r}. "
                f"Expected instances of {kind.__module__}.{kind.__name__}."
            )
    return items


class HookList(TrainingHook):
    """Several hooks as one; any of them may stop training."""

    def __init__(
        self, hooks: Sequence[TrainingHook] | None = None, argument: str = "hooks"
    ) -> None:
        self.hooks = _check_all(TrainingHook, hooks or [], argument)

    def begin(self, context: TrainingContext) -> None:
        for hook in self.hooks:
            hook.begin(context)

    def before_step(self, step: int) -> None:
        for hook in self.hooks:
            hook.before_step(step)

    def after_step(self, step: int, logs: Mapping[str, float]) -> bool:
        # Every hook sees every step, even after one has asked to stop.
        return any([bool(hook.after_step(step, logs)) for hook in self.hooks])

    def end(self, step: int) -> None:
        for hook in self.hooks:
            hook.end(step)


class ListenerList(CheckpointSaverListener):
    """Several listeners as one; any of them may stop training."""

    def __init__(
        self,
        listeners: Sequence[CheckpointSaverListener] | None = None,
        argument: str = "saving_listeners",
    ) -> None:
        self.listeners = _check_all(CheckpointSaverListener, listeners or [], argument)

    def begin(self, context: TrainingContext) -> None:
        for listener in self.listeners:
            listener.begin(context)

    def before_save(self, step: int) -> None:
        for listener in self.listeners:
            listener.before_save(step)

    def after_save(self, step: int, checkpoint_path: str) -> bool:
        return any(
            [bool(listener.after_save(step, checkpoint_path)) for listener in self.listeners]
        )

    def reads_checkpoint(self, step: int) -> bool:
        return any(listener.reads_checkpoint(step) for listener in self.listeners)

    def end(self, step: int) -> None:
        for listener in self.listeners:
            listener.end(step)
