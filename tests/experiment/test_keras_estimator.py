"""KerasEstimator on a tiny real model: steps, resume, checkpoints, evaluation, predict, export."""

from __future__ import annotations

import glob
import os

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from airflow_tfexp.experiment import (  # noqa: E402
    CheckpointError,
    Experiment,
    KerasEstimator,
    RunConfig,
    TrainingHook,
)
from airflow_tfexp.experiment.evaluation.coordination import (  # noqa: E402
    EvaluatorRegistration,
    read_completion_marker,
)
from airflow_tfexp.experiment.evaluation.results import read_results, record_result  # noqa: E402
from airflow_tfexp.experiment.storage.checkpoints import list_checkpoints  # noqa: E402
from tests.experiment import tiny_experiment as tiny  # noqa: E402


def estimator(model_dir, model_fn=tiny.model_fn, params=None, **config):
    config.setdefault("save_checkpoints_steps", 20)
    config.setdefault("log_step_count_steps", 20)
    return KerasEstimator(
        model_fn,
        config=RunConfig(model_dir=str(model_dir), tf_config="", **config),
        params=params or {},
    )


def steps(model_dir):
    return [c.global_step for c in list_checkpoints(str(model_dir))]


def test_train_is_step_based_checkpoints_by_global_step_and_resumes(tmp_path):
    est = estimator(tmp_path, keep_checkpoint_max=None)
    est.train(tiny.train_input_fn, max_steps=50)
    assert steps(tmp_path) == [0, 20, 40, 50]
    assert est.latest_checkpoint() == str(tmp_path / "ckpt-50")
    # A new estimator (a new process) resumes from step 50; `steps` adds to it.
    again = estimator(tmp_path, keep_checkpoint_max=None)
    again.train(tiny.train_input_fn, steps=30)
    assert steps(tmp_path)[-2:] == [60, 80]
    again.train(tiny.train_input_fn, max_steps=80)  # already there: nothing to do
    assert steps(tmp_path)[-1] == 80
    assert glob.glob(str(tmp_path / "events.out.tfevents.*"))  # loss and steps/s summaries


def test_steps_per_execution_still_stops_exactly(tmp_path):
    est = estimator(tmp_path, params={"steps_per_execution": 8})
    est.train(tiny.train_input_fn, max_steps=45)
    assert steps(tmp_path)[-1] == 45


def test_training_stops_when_the_input_runs_out(tmp_path):
    est = estimator(tmp_path)
    est.train(lambda: tiny.train_input_fn(batch_size=16, repeat=False), max_steps=1000)
    assert steps(tmp_path)[-1] == 15  # 240 examples / 16


def test_hooks_see_steps_and_can_stop(tmp_path):
    seen = []

    class Stop(TrainingHook):
        def after_step(self, step, logs):
            seen.append((step, sorted(logs)))
            return step == 7

    estimator(tmp_path).train(tiny.train_input_fn, hooks=[Stop()], max_steps=100)
    assert seen[0] == (1, ["accuracy", "loss"]) and seen[-1][0] == 7
    assert steps(tmp_path)[-1] == 7


def test_keep_checkpoint_max_spares_checkpoints_a_live_evaluator_needs(tmp_path):
    registration = EvaluatorRegistration(str(tmp_path), "continuous", every_checkpoint=True)
    registration.heartbeat()
    record_result(str(tmp_path), "continuous", {"global_step": 0}, "ckpt-0", 0.0)
    est = estimator(tmp_path, keep_checkpoint_max=2)
    est.train(tiny.train_input_fn, max_steps=100)
    assert steps(tmp_path) == [20, 40, 60, 80, 100]  # 0 was evaluated; the rest are still needed
    registration.withdraw()
    est.train(tiny.train_input_fn, max_steps=120)
    assert steps(tmp_path) == [100, 120]  # without an evaluator, exactly keep_checkpoint_max


def test_evaluate_returns_global_step_loss_and_metrics(tmp_path):
    est = estimator(tmp_path)
    est.train(tiny.train_input_fn, max_steps=200)
    result = est.evaluate(tiny.eval_input_fn, name="holdout")
    assert set(result) == {"global_step", "loss", "accuracy"}
    assert result["global_step"] == 200 and result["accuracy"] > 0.8
    early = est.evaluate(tiny.eval_input_fn, steps=1, checkpoint_path=str(tmp_path / "ckpt-120"))
    assert early["global_step"] == 120
    assert glob.glob(str(tmp_path / "eval_holdout" / "events.out.tfevents.*"))


def test_predict_yields_one_prediction_per_example(tmp_path):
    est = estimator(tmp_path)
    est.train(tiny.train_input_fn, max_steps=20)
    predictions = list(est.predict(tiny.eval_input_fn))
    assert len(predictions) == tiny.NUM_EXAMPLES and predictions[0].shape == (3,)


def test_export_is_a_loadable_saved_model_with_a_serving_signature(tmp_path):
    est = estimator(tmp_path)
    est.train(tiny.train_input_fn, max_steps=40)
    path = est.export_saved_model(str(tmp_path / "export"))
    assert os.path.basename(path).isdigit() and len(os.path.basename(path)) == 10
    assert not glob.glob(str(tmp_path / "export" / "temp-*"))
    loaded = tf.saved_model.load(path)
    x, _ = tiny.data(1)
    (served,) = loaded.signatures["serving_default"](features=tf.constant(x[:5])).values()
    expected = np.stack(
        list(est.predict(lambda: tf.data.Dataset.from_tensor_slices(x[:5]).batch(5)))
    )
    np.testing.assert_allclose(served.numpy(), expected, rtol=1e-5, atol=1e-6)
    # An explicit serving signature and an older checkpoint.
    named = est.export_saved_model(
        str(tmp_path / "export2"),
        serving_input_fn=lambda: tf.TensorSpec([None, 4], tf.float32, name="pixels"),
        checkpoint_path=str(tmp_path / "ckpt-20"),
    )
    served = tf.saved_model.load(named).signatures["serving_default"](pixels=tf.constant(x[:5]))
    np.testing.assert_allclose(served["output_0"].numpy().shape, (5, 3))


def test_uncompiled_model_is_rejected(tmp_path):
    est = estimator(tmp_path, model_fn=tiny.uncompiled_model_fn)
    with pytest.raises(ValueError, match="uncompiled model"):
        est.train(tiny.train_input_fn, max_steps=1)


def test_model_fn_must_return_a_model(tmp_path):
    with pytest.raises(ValueError, match="must return a compiled keras.Model. Received: dict"):
        estimator(tmp_path, model_fn=lambda params: {}).train(tiny.train_input_fn, max_steps=1)


def test_corrupt_or_half_written_checkpoints_fail_loudly_naming_them(tmp_path):
    est = estimator(tmp_path)
    est.train(tiny.train_input_fn, max_steps=40)
    data = tmp_path / "ckpt-40.data-00000-of-00001"
    content = data.read_bytes()
    data.write_bytes(content[: len(content) // 2])  # truncated
    with pytest.raises(CheckpointError, match="ckpt-40 is corrupt"):
        estimator(tmp_path).evaluate(tiny.eval_input_fn, checkpoint_path=str(tmp_path / "ckpt-40"))
    os.unlink(data)  # a shard missing: never evaluated, not even tried
    with pytest.raises(CheckpointError, match="ckpt-40 is missing or incomplete"):
        estimator(tmp_path).evaluate(tiny.eval_input_fn, checkpoint_path=str(tmp_path / "ckpt-40"))


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="`model_dir`"):
        KerasEstimator(tiny.model_fn, config=RunConfig(tf_config=""))
    with pytest.raises(ValueError, match="`model_fn`"):
        KerasEstimator("model", model_dir=str(tmp_path))
    est = estimator(tmp_path)
    with pytest.raises(ValueError, match="both `steps`"):
        est.train(tiny.train_input_fn, steps=1, max_steps=2)
    with pytest.raises(ValueError, match="`max_steps`. Received: -1"):
        est.train(tiny.train_input_fn, max_steps=-1)
    with pytest.raises(ValueError, match="tf.data.Dataset"):
        est.train(lambda: [1, 2], max_steps=1)
    with pytest.raises(ValueError, match="no complete checkpoint"):
        est.evaluate(tiny.eval_input_fn)


def test_experiment_on_keras_estimator_end_to_end(tmp_path):
    experiment = tiny.experiment_fn(
        RunConfig(model_dir=str(tmp_path), tf_config=""), {"train_steps": 60}
    )
    assert isinstance(experiment, Experiment)
    eval_result, (export_path,) = experiment.train_and_evaluate()
    assert eval_result["global_step"] == 60 and os.path.isdir(export_path)
    assert read_completion_marker(str(tmp_path))["global_step"] == 60
    # A separate evaluator evaluating every checkpoint finishes at once: the marker says done.
    evaluator = tiny.experiment_fn(
        RunConfig(model_dir=str(tmp_path), tf_config=""), {"train_steps": 60}
    )
    last = evaluator.continuous_eval(every_checkpoint=True)
    assert last["global_step"] == 60
    assert steps(tmp_path) == [c.global_step for c in list_checkpoints(str(tmp_path))]


def tiny_experiment(model_dir, **params):
    return tiny.experiment_fn(RunConfig(model_dir=str(model_dir), tf_config=""), params)


def test_experiment_test_continuous_train_and_eval_and_evaluate_on_keras(tmp_path):
    smoke = tiny_experiment(tmp_path / "smoke").test()
    assert smoke["global_step"] == 1 and set(smoke) == {"global_step", "loss", "accuracy"}

    experiment = tiny_experiment(tmp_path / "model", train_steps=60, train_steps_per_iteration=25)
    eval_result, (export_path,) = experiment.continuous_train_and_eval()
    assert eval_result["global_step"] == 60 and os.path.isdir(export_path)
    evaluated = [r["global_step"] for r in read_results(str(tmp_path / "model"), None)]
    assert evaluated == [25, 50, 60]
    again = experiment.evaluate(delay_secs=0, name="again")
    assert again == pytest.approx(eval_result)  # same checkpoint, same data: same numbers


def test_time_based_checkpoints(tmp_path):
    # every checkpoint kept: on a loaded machine the clock saves more than keep_checkpoint_max
    est = estimator(
        tmp_path, save_checkpoints_steps=None, save_checkpoints_secs=1, keep_checkpoint_max=None
    )
    est.train(
        tiny.train_input_fn, hooks=[tiny.StepLog(str(tmp_path / "s.log"), 0.02)], max_steps=120
    )
    saved = steps(tmp_path)
    # Step 0, the final step, and at least one save in between triggered by the clock alone.
    assert saved[0] == 0 and saved[-1] == 120 and len(saved) >= 3


def test_eval_metrics_are_computed_beside_the_compiled_ones(tmp_path):
    def hit_rate(y_true, y_pred):  # accuracy written by hand: must equal the compiled one
        return tf.cast(tf.equal(tf.argmax(y_pred, axis=1), tf.cast(y_true, tf.int64)), tf.float32)

    config = RunConfig(model_dir=str(tmp_path), save_checkpoints_steps=20, tf_config="")
    experiment = Experiment(
        KerasEstimator(tiny.model_fn, config=config),
        tiny.train_input_fn,
        tiny.eval_input_fn,
        eval_metrics={"hit_rate": hit_rate, "xent": "sparse_categorical_crossentropy"},
        train_steps=40,
        eval_steps=None,
    )
    eval_result, _ = experiment.train_and_evaluate()
    assert eval_result["hit_rate"] == pytest.approx(eval_result["accuracy"])
    assert eval_result["xent"] > 0
    with pytest.raises(ValueError, match=r"`eval_metrics\['bad'\]`. Received: 42"):
        experiment.estimator.evaluate(tiny.eval_input_fn, metrics={"bad": 42})


def test_training_and_evaluation_log_progress_for_the_task_log(tmp_path, caplog):
    import logging

    caplog.set_level(logging.INFO)
    est = estimator(tmp_path, log_step_count_steps=10)
    est.train(tiny.train_input_fn, max_steps=30)
    lines = [r.getMessage() for r in caplog.records if r.name.endswith("progress")]
    training = [line for line in lines if line.startswith("training step")]
    assert [line.split(",")[0] for line in training] == [
        "training step 10/30",
        "training step 20/30",
        "training step 30/30",
    ]
    assert all("loss " in line and "steps/s" in line for line in training)
    assert "ETA " in training[0]  # the remaining steps at the measured rate
    caplog.clear()
    est.evaluate(tiny.eval_input_fn)
    messages = [r.getMessage() for r in caplog.records]
    final = next(m for m in messages if m.startswith("Evaluation of"))
    assert "loss" in final and "accuracy" in final and "global_step" in final
