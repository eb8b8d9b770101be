"""tf.estimator users write `def input_fn(params)` (and `mode`, `config`): KerasEstimator calls
such a function with them, as the Estimator did; a function declaring none is called bare."""

from __future__ import annotations

import functools

import pytest

from airflow_tfexp.experiment import KerasEstimator, RunConfig
from airflow_tfexp.experiment.estimator.input_functions import bind_input_fn
from tests.experiment import tiny_experiment as tiny


def test_an_input_fn_gets_the_params_mode_and_config_it_declares(tmp_path):
    seen = []

    def train_input_fn(params, mode, config):
        seen.append((params["batch_size"], mode, config.model_dir))
        return tiny.train_input_fn(batch_size=params["batch_size"])

    def eval_input_fn(params, mode):
        seen.append((params["batch_size"], mode))
        return tiny.eval_input_fn()

    model_dir = str(tmp_path / "model")
    estimator = KerasEstimator(
        tiny.model_fn, config=RunConfig(model_dir=model_dir), params={"batch_size": 8}
    )
    estimator.train(train_input_fn, max_steps=5)
    estimator.evaluate(eval_input_fn)

    def predict_input_fn(mode):
        seen.append(mode)
        return tiny.eval_input_fn().map(lambda x, y: x)

    assert len(list(estimator.predict(predict_input_fn))) == tiny.NUM_EXAMPLES
    assert seen == [(8, "train", model_dir), (8, "eval"), "infer"]


def test_bound_arguments_win_and_a_bare_function_stays_bare():
    def input_fn(params=None, mode=None):
        return params, mode

    own = functools.partial(input_fn, params={"mine": 1})
    assert bind_input_fn(own, "eval", {"estimators": 2}, None)() == ({"mine": 1}, "eval")

    def bare():
        return "called"

    assert bind_input_fn(bare, "train", {"a": 1}, None) is bare


def test_a_non_callable_input_fn_is_named(tmp_path):
    estimator = KerasEstimator(tiny.model_fn, model_dir=str(tmp_path / "model"))
    with pytest.raises(ValueError, match=r"Invalid value for `input_fn`\. Received: 'data\.csv'"):
        estimator.train("data.csv", max_steps=1)
