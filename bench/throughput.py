"""Training throughput: `KerasEstimator.train` / plain Keras `model.fit`, same model, data,
batch size, checkpoint cadence and summary cadence, measured alternately in one process.

Both sides: the digits data (64 features, 10 classes) repeated and batched, a fresh compiled
model per run, a `tf.train.Checkpoint` of model and optimizer saved every `--checkpoint-every`
steps through a `tf.train.CheckpointManager`, training scalars written every
`--summary-every` steps. The estimator gets them from its RunConfig; `fit` from a checkpoint
callback at the end of each epoch of `--checkpoint-every` steps and Keras' TensorBoard callback
(`update_freq`). steps/s = steps / wall time of the whole call (tracing included), the median
of `--rounds` alternating runs. Models: the example MLP and a small convnet on the same pixels.

    .venv/bin/python bench/throughput.py [--steps 2000] [--rounds 3] [--steps-per-execution 1]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
BATCH_SIZE = 32


def mlp(params: dict[str, Any]) -> Any:
    import keras

    return keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(10),
        ]
    )


def convnet(params: dict[str, Any]) -> Any:
    import keras

    return keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Reshape((8, 8, 1)),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(10),
        ]
    )


def compiled(build: Any, steps_per_execution: int) -> Any:
    import keras

    keras.utils.set_random_seed(1)
    model = build({})
    model.compile(
        optimizer=keras.optimizers.Adam(0.003),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        steps_per_execution=steps_per_execution,
    )
    return model


def dataset() -> Any:
    import tensorflow as tf

    from airflow_tfexp.examples.digits import load_digits

    x, y, _, _ = load_digits()
    return (
        tf.data.Dataset.from_tensor_slices((x, y))
        .shuffle(len(x), seed=1)
        .repeat()
        .batch(BATCH_SIZE)
        .prefetch(2)
    )


def estimator_steps_per_sec(build: Any, args: argparse.Namespace, model_dir: str) -> float:
    from airflow_tfexp.experiment import KerasEstimator, RunConfig

    config = RunConfig(
        model_dir=model_dir,
        save_checkpoints_steps=args.checkpoint_every,
        save_summary_steps=args.summary_every,
        log_step_count_steps=args.summary_every,
        keep_checkpoint_max=5,
    )
    estimator = KerasEstimator(
        lambda params: compiled(build, args.steps_per_execution), config=config
    )
    started = time.perf_counter()
    estimator.train(dataset, max_steps=args.steps)
    return args.steps / (time.perf_counter() - started)


def fit_steps_per_sec(build: Any, args: argparse.Namespace, model_dir: str) -> float:
    import keras
    import tensorflow as tf

    model = compiled(build, args.steps_per_execution)
    checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer)
    manager = tf.train.CheckpointManager(checkpoint, model_dir, max_to_keep=5)

    class SaveCheckpoint(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            manager.save(checkpoint_number=int(model.optimizer.iterations.numpy()))

    callbacks = [
        SaveCheckpoint(),
        keras.callbacks.TensorBoard(model_dir, update_freq=args.summary_every, write_graph=False),
    ]
    started = time.perf_counter()
    model.fit(
        dataset(),
        steps_per_epoch=args.checkpoint_every,
        epochs=args.steps // args.checkpoint_every,
        callbacks=callbacks,
        verbose=0,
    )
    return args.steps / (time.perf_counter() - started)


def measure(name: str, build: Any, args: argparse.Namespace) -> float:
    ratios, ours, theirs = [], [], []
    for _ in range(args.rounds):
        for runner, results in ((fit_steps_per_sec, theirs), (estimator_steps_per_sec, ours)):
            model_dir = tempfile.mkdtemp(prefix="tfexp-bench-throughput-")
            try:
                results.append(runner(build, args, model_dir))
            finally:
                shutil.rmtree(model_dir, ignore_errors=True)
        ratios.append(ours[-1] / theirs[-1])
    ratio = statistics.median(ratios)
    print(
        f"{name}: KerasEstimator.train {statistics.median(ours):.1f} steps/s, "
        f"model.fit {statistics.median(theirs):.1f} steps/s; ratio {ratio:.2f} "
        f"(median of {args.rounds} alternating rounds: {', '.join(f'{r:.2f}' for r in ratios)})"
    )
    return ratio


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--checkpoint-every", type=int, default=200)
    parser.add_argument("--summary-every", type=int, default=100)
    parser.add_argument("--steps-per-execution", type=int, default=1)
    args = parser.parse_args()
    if args.steps % args.checkpoint_every:
        parser.error("--steps must be a multiple of --checkpoint-every (fit's epochs)")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    print(
        f"{args.steps} steps, batch {BATCH_SIZE}, checkpoint every {args.checkpoint_every}, "
        f"summaries every {args.summary_every}, steps_per_execution "
        f"{args.steps_per_execution}, {os.cpu_count()} CPUs"
    )
    measure("mlp", mlp, args)
    measure("convnet", convnet, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
