"""Hooks pass through, as in tf.estimator's Experiment: `train_monitors`, `eval_hooks` and
saving listeners reach the estimator as they are. A bring-your-own estimator may take its own
kind of hook (before, Experiment refused anything but its TrainingHook); KerasEstimator checks
them and names the argument and the value."""

from __future__ import annotations

import pytest

from airflow_tfexp.experiment import Experiment, RunConfig
from tests.experiment.tiny_experiment import eval_input_fn, experiment_fn, train_input_fn


class SessionRunHookLike:
    """A hook of another framework (say, a tf.estimator SessionRunHook)."""


class OwnLoopEstimator:
    """A user's own training loop: hooks of its own kind, recorded as received."""

    def __init__(self, model_dir: str) -> None:
        self.model_dir = model_dir
        self.received: dict = {}

    def train(self, input_fn, hooks=None, steps=None, max_steps=None, saving_listeners=None):
        self.received = {"hooks": list(hooks or []), "listeners": list(saving_listeners or [])}
        return self

    def evaluate(self, input_fn, steps=None, hooks=None, checkpoint_path=None, name=None):
        return {"global_step": 0, "loss": 0.0}


def test_a_bring_your_own_estimator_gets_its_hooks_as_they_are(tmp_path):
    hook, listener = SessionRunHookLike(), SessionRunHookLike()
    estimator = OwnLoopEstimator(str(tmp_path / "model"))
    experiment = Experiment(
        estimator,
        train_input_fn,
        eval_input_fn,
        train_steps=10,
        train_monitors=[hook],
        saving_listeners=[listener],
    )
    experiment.train(delay_secs=0)
    assert estimator.received == {"hooks": [hook], "listeners": [listener]}


def test_keras_estimator_names_the_argument_and_the_value(tmp_path):
    hook = SessionRunHookLike()
    experiment = experiment_fn(RunConfig(model_dir=str(tmp_path / "model")), {"train_steps": 5})
    experiment.extend_train_hooks([hook])
    with pytest.raises(
        ValueError, match=r"Invalid value in `hooks`. Received: <.*SessionRunHookLike"
    ):
        experiment.train(delay_secs=0)
