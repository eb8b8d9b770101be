"""A tiny real experiment (4 features, 3 classes) for tests, importable by subprocesses as
`tests.experiment.tiny_experiment:experiment_fn`."""

from __future__ import annotations

import functools
from typing import Any

from airflow_tfexp.experiment import (
    CheckpointSaverListener,
    EarlyStoppingHook,
    Experiment,
    KerasEstimator,
    LatestExporter,
    TrainingHook,
)

NUM_EXAMPLES = 240


def data(seed: int = 0, label_noise: float = 0.0) -> tuple[Any, Any]:
    """Learnable examples (the label is the largest of 3 features); `label_noise` replaces
    that fraction of the labels with random ones (a bad day of data)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(NUM_EXAMPLES, 4)).astype("float32")
    y = (np.argmax(x[:, :3], axis=1)).astype("int64")
    noisy = rng.random(NUM_EXAMPLES) < label_noise
    y[noisy] = rng.integers(0, 3, size=int(noisy.sum()))
    return x, y


def model_fn(params: dict[str, Any]) -> Any:
    import keras

    model = keras.Sequential(
        [
            keras.Input((4,), name="features"),
            keras.layers.Dense(params.get("hidden_units", 16), activation="relu"),
            keras.layers.Dense(3),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(params.get("learning_rate", 0.01)),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        steps_per_execution=params.get("steps_per_execution", 1),
    )
    return model


def uncompiled_model_fn(params: dict[str, Any]) -> Any:
    import keras

    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])


def train_input_fn(
    batch_size: int = 16, repeat: bool = True, seed: int = 0, label_noise: float = 0.0
) -> Any:
    import tensorflow as tf

    examples = data(seed, label_noise)
    ds = tf.data.Dataset.from_tensor_slices(examples).shuffle(NUM_EXAMPLES, seed=1)
    return (ds.repeat() if repeat else ds).batch(batch_size)


def eval_input_fn(batch_size: int = 60) -> Any:
    import tensorflow as tf

    return tf.data.Dataset.from_tensor_slices(data(1)).batch(batch_size)


class StepLog(TrainingHook):
    """Appends every trained global step to a file (to count steps repeated after a crash) and
    optionally sleeps after each step (to make training last long enough to watch)."""

    def __init__(
        self, path: str | None, sleep_secs: float = 0.0, pid_file: str | None = None
    ) -> None:
        self.path, self.sleep_secs, self.pid_file = path, sleep_secs, pid_file

    def begin(self, context):
        import os

        if self.pid_file:  # which process trains, for tests that kill it
            with open(self.pid_file, "w") as handle:
                handle.write(str(os.getpid()))

    def after_step(self, step, logs):
        import time

        if self.path:
            with open(self.path, "a") as handle:
                handle.write(f"{step}\n")
        if self.sleep_secs:
            time.sleep(self.sleep_secs)


class FailAt(TrainingHook):
    """Raises once training reaches `step`: every time, or only the first time when `once_file`
    is given (the file records that it failed)."""

    def __init__(self, step: int, once_file: str | None = None) -> None:
        self.step, self.once_file = step, once_file

    def after_step(self, step, logs):
        import os

        if step < self.step:
            return
        if self.once_file:
            if os.path.exists(self.once_file):
                return
            open(self.once_file, "w").close()
        raise RuntimeError(f"injected failure at step {step}")


class FillDiskAt(TrainingHook):
    """Takes every free byte of the file system of `path` once training reaches `step` (a
    disk filling up mid-training, after the trainer lease was written)."""

    def __init__(self, step: int, path: str) -> None:
        self.step, self.path, self.done = step, path, False

    def after_step(self, step, logs):
        import os

        if step < self.step or self.done:
            return
        self.done = True
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT)
        try:
            while True:
                os.write(fd, b"\0" * 4096)
        except OSError:
            pass
        finally:
            os.close(fd)


class SlowSaves(CheckpointSaverListener):
    def __init__(self, secs: float) -> None:
        self.secs = secs

    def after_save(self, step, checkpoint_path):
        import time

        time.sleep(self.secs)


def experiment_fn(run_config: Any, params: dict[str, Any] | None) -> Experiment:
    params = dict(params or {})
    config = run_config.replace(
        save_checkpoints_steps=params.get("save_checkpoints_steps", 20),
        keep_checkpoint_max=params.get("keep_checkpoint_max", 5),
        log_step_count_steps=params.get("log_step_count_steps", 20),
        save_summary_steps=params.get("log_step_count_steps", 20),
        tf_random_seed=3,
    )
    hooks = []
    if params.get("step_log") or params.get("step_sleep_secs") or params.get("pid_file"):
        hooks.append(
            StepLog(
                params.get("step_log"), params.get("step_sleep_secs", 0.0), params.get("pid_file")
            )
        )
    if params.get("fail_at_step"):
        hooks.append(FailAt(params["fail_at_step"], params.get("fail_once_file")))
    if params.get("fill_disk_at_step"):
        hooks.append(FillDiskAt(params["fill_disk_at_step"], params["fill_disk_path"]))
    if params.get("early_stopping"):
        hooks.append(EarlyStoppingHook(**params["early_stopping"], check_interval_secs=0))
    listeners = [SlowSaves(params["save_sleep_secs"])] if params.get("save_sleep_secs") else []
    return Experiment(
        KerasEstimator(
            model_fn, config=config, params=params, warm_start_from=params.get("warm_start_from")
        ),
        train_input_fn=functools.partial(
            train_input_fn,
            repeat=params.get("repeat", True),
            seed=params.get("data_seed", 0),
            label_noise=params.get("label_noise", 0.0),
        ),
        eval_input_fn=eval_input_fn,
        train_steps=params.get("train_steps", 100),
        train_steps_per_iteration=params.get("train_steps_per_iteration"),
        eval_steps=None,
        train_monitors=hooks,
        saving_listeners=listeners,
        eval_delay_secs=0,
        continuous_eval_throttle_secs=params.get("throttle_secs", 0),
        check_interval_secs=0.2,
        export_strategies=[LatestExporter("latest", exports_to_keep=2)],
    )


def not_an_experiment(run_config: Any, params: dict[str, Any] | None) -> str:
    return "an experiment, honest"
