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


# -- found by a stranger's models (each failed at the export, after training, or served wrong) --
def export(model, tmp_path, serving_input_fn=None):
    import tensorflow as tf

    from airflow_tfexp.experiment.export.saved_model import export_keras_model

    path = export_keras_model(model, str(tmp_path / "export"), serving_input_fn)
    return tf.saved_model.load(path).signatures["serving_default"]


def test_an_unnamed_head_never_takes_the_name_of_a_named_one(tmp_path):
    import keras
    import tensorflow as tf

    x = keras.Input((1,), name="x")
    hidden = keras.layers.Dense(4)(x)
    heads = [keras.layers.Dense(1, name="output_1")(hidden), keras.layers.Dense(2)(hidden)]
    signature = export(keras.Model(x, heads), tmp_path)
    served = signature(x=tf.ones([3, 1]))
    assert {name: tuple(t.shape) for name, t in served.items()} == {
        "output_1": (3, 1),
        "output_1_": (3, 2),
    }


def test_a_sequential_built_from_a_batch_serves_any_batch_size(tmp_path):
    import keras
    import tensorflow as tf

    model = keras.Sequential([keras.layers.Dense(2, name="score")])
    model(tf.zeros([8, 3]))  # built from a first batch of 8, as the estimator builds it
    served = export(model, tmp_path)(inputs=tf.ones([5, 3]))
    assert served["score"].shape == (5, 2)


def test_unnamed_inputs_of_a_list_model_are_served_as_inputs_0_and_inputs_1(tmp_path):
    import keras
    import tensorflow as tf

    a, b = keras.Input((1,)), keras.Input((2,))
    model = keras.Model([a, b], keras.layers.Dense(1, name="y")(keras.layers.Concatenate()([a, b])))
    signature = export(model, tmp_path)
    assert sorted(signature.structured_input_signature[1]) == ["inputs_0", "inputs_1"]
    assert signature(inputs_0=tf.ones([2, 1]), inputs_1=tf.ones([2, 2]))["y"].shape == (2, 1)


def test_names_tensorflow_would_merge_are_refused_before_training(tmp_path):
    import keras

    def model_fn(params):
        inputs = {name: keras.Input((1,), name=name) for name in ("user.age", "user_age")}
        joined = keras.layers.Concatenate()(list(inputs.values()))
        model = keras.Model(inputs, keras.layers.Dense(1)(joined))
        model.compile("adam", "mse")
        return model

    serving = lambda: {"user.age": spec([None, 1]), "user_age": spec([None, 1])}  # noqa: E731
    with pytest.raises(ValueError, match=r"'user\.age' and 'user_age' are the same signature"):
        experiment(tmp_path, serving, model_fn=model_fn).train()


def test_a_wrong_feature_size_is_refused_before_training(tmp_path):
    with pytest.raises(ValueError, match=r"Serving input 'features' has shape \(None, 5\)"):
        experiment(tmp_path, lambda: {"features": spec([None, 5])}).train()
    assert_nothing_trained(tmp_path)


def test_a_subclassed_models_call_is_tried_on_the_serving_inputs_before_training(tmp_path):
    from tests.models import subclassed

    def model_fn(params):
        return subclassed.model_fn(params)

    def train_input_fn():
        import tensorflow as tf

        return tf.data.Dataset.from_tensor_slices(subclassed.examples(64, 0)).repeat().batch(16)

    missing_extra = lambda: {"dense": spec([None, 3])}  # noqa: E731
    experiment = Experiment(
        KerasEstimator(model_fn, model_dir=str(tmp_path / "model")),
        train_input_fn,
        train_input_fn,
        train_steps=5,
        export_strategies=[LatestExporter("latest", missing_extra)],
    )
    with pytest.raises(ValueError, match=r"fails on the serving inputs .* \(dense\).*KeyError"):
        experiment.train()
    assert_nothing_trained(tmp_path)
