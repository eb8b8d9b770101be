"""Models written the way their users write them, each trained, evaluated, exported, served
from the SavedModel by feature name, and warm-started from that export (`tests/models/*.py`;
each module gives `model_fn`, `serving_input_fn`, `examples` and what it should reach)."""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np
import pytest

from airflow_tfexp.experiment import Experiment, KerasEstimator, LatestExporter, RunConfig

ZOO = [
    "sequential",
    "functional_dict",
    "multi_output",
    "subclassed",
    "preprocessing",
    "custom_objects",
    "mixed_precision",
]


def input_fn(model: Any, n: int, seed: int, repeat: bool = False) -> Any:
    def make() -> Any:
        import tensorflow as tf

        ds = tf.data.Dataset.from_tensor_slices(model.examples(n, seed))
        return (ds.shuffle(n, seed=seed).repeat() if repeat else ds).batch(32)

    return make


def as_rows(predictions: list[Any], names: list[str]) -> dict[str, np.ndarray]:
    """`predict`'s per-example outputs, stacked and keyed like the signature's outputs."""
    if isinstance(predictions[0], dict):
        return {name: np.stack([p[name] for p in predictions]) for name in names}
    (name,) = names
    return {name: np.stack(predictions)}


@pytest.mark.parametrize("name", ZOO)
def test_a_users_model_trains_exports_serves_by_feature_name_and_warm_starts(name, tmp_path):
    import tensorflow as tf

    model = importlib.import_module(f"tests.models.{name}")
    estimator = KerasEstimator(
        model.model_fn,
        model_dir=str(tmp_path / "model"),
        config=RunConfig(save_checkpoints_steps=model.TRAIN_STEPS, tf_random_seed=7),
    )
    experiment = Experiment(
        estimator,
        input_fn(model, 512, seed=0, repeat=True),
        input_fn(model, 256, seed=1),
        train_steps=model.TRAIN_STEPS,
        eval_steps=None,
        export_strategies=[LatestExporter("latest", model.serving_input_fn)],
    )
    metrics, (export,) = experiment.train_and_evaluate()
    if hasattr(model, "AT_LEAST"):
        assert metrics[model.METRIC] >= model.AT_LEAST, metrics
    else:
        assert metrics[model.METRIC] <= model.AT_MOST, metrics

    features, _ = model.examples(20, seed=2)
    request = {key: tf.constant(value) for key, value in model.as_request(features).items()}
    served = tf.saved_model.load(export).signatures["serving_default"](**request)
    assert sorted(served) == sorted(model.OUTPUTS)
    predict_input = lambda: tf.data.Dataset.from_tensor_slices(features).batch(8)  # noqa: E731
    predicted = as_rows(list(estimator.predict(predict_input)), model.OUTPUTS)
    for output in model.OUTPUTS:
        np.testing.assert_allclose(
            served[output].numpy(), predicted[output], rtol=1e-3, atol=1e-3, err_msg=output
        )

    # the export measured with the model's own loss, through its named signature
    from_export = estimator.evaluate_export(input_fn(model, 256, seed=1), export)
    assert from_export["loss"] == pytest.approx(metrics["loss"], rel=1e-3, abs=1e-3)

    # warm start from the export; a zero learning rate keeps the weights it brought
    warm = KerasEstimator(
        model.model_fn,
        model_dir=str(tmp_path / "warm"),
        params={"learning_rate": 0.0},
        warm_start_from=export,
    )
    warm.train(input_fn(model, 64, seed=3, repeat=True), max_steps=1)
    assert warm.warm_started_from == export
    rewarmed = as_rows(list(warm.predict(predict_input)), model.OUTPUTS)
    for output in model.OUTPUTS:
        np.testing.assert_allclose(
            rewarmed[output], served[output].numpy(), rtol=1e-3, atol=1e-3, err_msg=output
        )
