"""How the training loop runs a chunk of steps: in this process, or scheduled on the workers of
a parameter-server cluster by this process (the chief) through a ClusterCoordinator."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import tensorflow as tf

log = logging.getLogger(__name__)


class LocalSteps:
    """Steps run here under the model's strategy (default, Mirrored or MultiWorkerMirrored):
    a chunk is at most `steps_per_execution` steps of one compiled loop."""

    def __init__(self, state: Any, dataset: tf.data.Dataset, steps_per_execution: int) -> None:
        self._loop = state.train_steps_fn
        self._iterator = iter(state.strategy.experimental_distribute_dataset(dataset))
        self.max_chunk: int | None = steps_per_execution

    def run(self, steps: int) -> int:
        """Run up to `steps` steps; returns how many ran (fewer: the input ran out)."""
        return int(self._loop(self._iterator, tf.constant(steps, tf.int64)))


class CoordinatedSteps:
    """Steps scheduled on parameter-server workers: a chunk (up to the next log, summary or
    checkpoint boundary) is split into closures of `steps_per_execution` steps that the
    coordinator hands to whichever worker is free, then joined.

    Workers update variables asynchronously, and Keras increments the optimizer's `iterations`
    with a read-modify-write that concurrent workers race on; after each join the global step
    is set to the exact number of steps that ran, so checkpoints and `train_steps` stay exact.
    """

    max_chunk: int | None = None  # any chunk: closures spread it over the workers

    def __init__(
        self,
        state: Any,
        coordinator: Any,
        input_fn: Callable[[], Any],
        steps_per_execution: int,
        as_dataset: Callable[[Any], tf.data.Dataset],
    ) -> None:
        self._state = state
        self._coordinator = coordinator
        self._loop = state.train_steps_fn
        self._closure_steps = steps_per_execution
        # Every worker builds its own copy of the input; each step takes one whole batch.
        per_worker = coordinator.create_per_worker_dataset(lambda: as_dataset(input_fn()))
        self._iterator = iter(per_worker)

    def run(self, steps: int) -> int:
        first = self._state.global_step
        sizes = [self._closure_steps] * (steps // self._closure_steps)
        if steps % self._closure_steps:
            sizes.append(steps % self._closure_steps)
        results = [
            self._coordinator.schedule(
                self._loop, args=(self._iterator, tf.constant(size, tf.int64))
            )
            for size in sizes
        ]
        self._coordinator.join()
        done = sum(int(result.fetch()) for result in results)
        self._state.model.optimizer.iterations.assign(first + done)
        return done
