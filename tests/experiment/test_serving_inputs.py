"""`serving_input_fn` is checked against the model when training starts (not after it), and
the errors name the feature, the model's input and what would be valid."""

from __future__ import annotations

import os

import pytest

from airflow_tfexp.experiment import Experiment, FinalExporter, KerasEstimator, LatestExporter
from tests.experiment import tiny_experiment as tiny
from tests.models import functional_dict


def experiment(tmp_path, serving_input_fn, model_fn=tiny.model_fn):
    return Experiment(
        KerasEstimator(model_fn, model_dir=str(tmp_path / "model")),
        tiny.train_input_fn,
        tiny.eval_input_fn,
        train_steps=20,
        export_strategies=[LatestExporter("latest", serving_input_fn)],
    )


def spec(shape, dtype="float32"):
    import tensorflow as tf

    return tf.TensorSpec(shape, dtype)


def assert_nothing_trained(tmp_path):
    model_dir = tmp_path / "model"
    assert not any(name.startswith("ckpt-") for name in os.listdir(model_dir))


def test_a_string_serving_input_on_a_float_model_fails_before_the_first_step(tmp_path):
    with pytest.raises(ValueError) as error:
        experiment(tmp_path, lambda: {"features": spec([None, 4], "string")}).train()
    message = str(error.value)
    assert "Serving input 'features' is string" in message and "float32" in message
    assert "StringLookup" in message
    assert_nothing_trained(tmp_path)


def test_names_that_miss_the_models_inputs_are_listed(tmp_path):
    def serving():
        return {"age": spec([None, 1]), "incme": spec([None, 1])}

    with pytest.raises(ValueError) as error:
        experiment(tmp_path, serving, model_fn=functional_dict.model_fn).train()
    message = str(error.value)
    assert "missing: income" in message and "unknown: incme" in message
    assert "keras.Input(name=...)" in message
    assert_nothing_trained(tmp_path)


@pytest.mark.parametrize(
    "returned, expected",
    [
        ({"features": [1.0, 2.0]}, "The value for 'features' is [1.0, 2.0], not a tf.TensorSpec"),
        ({}, "It returned an empty dict"),
        ({"my feature": "spec"}, "Invalid feature name 'my feature'"),
        ("features", "Received: 'features'"),
    ],
)
def test_a_serving_input_fn_of_the_wrong_kind_is_reported_before_training(
    tmp_path, returned, expected
):
    with pytest.raises(ValueError) as error:
        experiment(tmp_path, lambda: returned).train()
    assert expected in str(error.value)
    assert "must return a tf.TensorSpec, or a dict of them keyed by feature name" in str(
        error.value
    )
    assert_nothing_trained(tmp_path)


def test_two_inputs_for_a_one_input_model_are_refused(tmp_path):
    serving = lambda: {"a": spec([None, 2]), "b": spec([None, 2])}  # noqa: E731
    with pytest.raises(ValueError, match=r"returned 2 inputs \(a, b\) .* one input"):
        experiment(tmp_path, serving).train()


def test_an_incompatible_rank_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"Serving input 'features' has shape \(None, 4, 4, 4\)"):
        experiment(tmp_path, lambda: {"features": spec([None, 4, 4, 4])}).train()


def test_the_final_exporter_is_checked_too_and_a_good_one_trains(tmp_path):
    bad = Experiment(
        KerasEstimator(tiny.model_fn, model_dir=str(tmp_path / "model")),
        tiny.train_input_fn,
        tiny.eval_input_fn,
        train_steps=20,
        export_strategies=[FinalExporter("final", lambda: spec([None, 4], "string"))],
    )
    with pytest.raises(ValueError, match="is string"):
        bad.train()
    good = experiment(tmp_path, lambda: {"pixels": spec([None, 4])})
    good.train()
    assert good.latest_checkpoint().global_step == 20
