"""Ten SIGKILLs at random moments of one training run, a restart after each: the run still
ends at exactly train_steps, each restart repeats at most one checkpoint interval, and every
checkpoint left behind restores."""

from __future__ import annotations

import os
import random
import signal
import time

import pytest

from airflow_tfexp.experiment.evaluation.coordination import read_completion_marker
from airflow_tfexp.experiment.storage.checkpoints import list_checkpoints
from tests.experiment.processes import kill_group, run_cli, start_cli, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
KILLS = 10
INTERVAL = 20
TRAIN_STEPS = 2000


def trained_steps(step_log: str) -> list[int]:
    if not os.path.exists(step_log):
        return []
    with open(step_log) as handle:
        return [int(line) for line in handle if line.strip()]


def assert_restorable(model_dir: str) -> list[int]:
    import tensorflow as tf

    steps = []
    for checkpoint in list_checkpoints(model_dir):
        reader = tf.train.load_checkpoint(checkpoint.checkpoint_path)
        assert reader.get_variable_to_shape_map(), checkpoint.checkpoint_path
        steps.append(checkpoint.global_step)
    return steps


def test_ten_random_sigkills_lose_nothing_and_repeat_at_most_one_interval(tmp_path):
    seed = int(os.environ.get("TFEXP_KILL_SEED", time.time_ns() % 100_000))
    rng = random.Random(seed)
    print(f"kill seed {seed} (TFEXP_KILL_SEED={seed} replays it)")
    model_dir, step_log = str(tmp_path / "model"), str(tmp_path / "steps.log")
    params = {
        "train_steps": TRAIN_STEPS,
        "save_checkpoints_steps": INTERVAL,
        "keep_checkpoint_max": 3,
        "step_log": step_log,
        "step_sleep_secs": 0.004,
    }
    lives = []  # (index of the life's first line in the step log, its last step)
    for kill in range(KILLS):
        before = len(trained_steps(step_log))
        trainer = start_cli(model_dir, "train", params, log_path=tmp_path / f"life-{kill}.log")
        try:
            # Let this life train (its first step logged), then kill at a random moment:
            # mid-step, mid-checkpoint-write or between the two.
            wait_until(
                lambda before=before: len(trained_steps(step_log)) > before,
                timeout=120,
                what=f"life {kill} to train a step",
            )
            time.sleep(rng.uniform(0.0, 0.6))
            os.killpg(trainer.pid, signal.SIGKILL)
            trainer.wait(timeout=30)
        finally:
            kill_group(trainer)
        lives.append((before, trained_steps(step_log)[-1]))
        # Whatever the kill interrupted, the checkpoints a restart will see all restore.
        assert_restorable(model_dir)
    assert lives[-1][1] < TRAIN_STEPS, "training finished before the last kill: lengthen it"

    final_start = len(trained_steps(step_log))
    result = run_cli(model_dir, "train", params, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    steps = trained_steps(step_log)
    assert steps[-1] == TRAIN_STEPS
    assert read_completion_marker(model_dir)["global_step"] == TRAIN_STEPS
    assert assert_restorable(model_dir)[-1] == TRAIN_STEPS

    # Each life trained consecutive steps, starting right after the newest checkpoint the life
    # before it left: it repeated at most one checkpoint interval (the steps after that one).
    firsts = [steps[index] for index, _ in lives] + [steps[final_start]]
    assert firsts[0] == 1
    repeated = [last - (first - 1) for (_, last), first in zip(lives, firsts[1:], strict=True)]
    print(
        f"last step of each life: {[last for _, last in lives]}; repeated after each kill: "
        f"{repeated}"
    )
    assert all(0 <= r <= INTERVAL for r in repeated), repeated
    assert len(steps) - TRAIN_STEPS == sum(repeated)
    bounds = [index for index, _ in lives] + [final_start, len(steps)]
    for start, end in zip(bounds, bounds[1:], strict=False):
        assert steps[start:end] == list(range(steps[start], steps[start] + end - start))
