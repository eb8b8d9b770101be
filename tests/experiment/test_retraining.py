"""Retraining building blocks on real TensorFlow: warm start, export evaluation, the blessing
decision, publishing (local and gs://) and lineage."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from airflow_tfexp.experiment import RunConfig
from airflow_tfexp.experiment.retraining.blessing import (
    BlessingSpec,
    decide,
    read_blessing,
    write_blessing,
)
from airflow_tfexp.experiment.retraining.lineage import read_lineage, update_lineage
from airflow_tfexp.experiment.retraining.publishing import latest_published, publish_export
from airflow_tfexp.experiment.retraining.warm_start import WarmStartError
from airflow_tfexp.experiment.storage.fs import filesystem, join
from tests.experiment.tiny_experiment import experiment_fn


def trained(model_dir: str, **params):
    experiment = experiment_fn(RunConfig(model_dir=model_dir), {"train_steps": 40, **params})
    experiment.train()
    return experiment


def model_weights(experiment) -> list:
    estimator = experiment.estimator
    return [v.numpy() for v in estimator._train_state.model.variables]


def test_warm_start_from_an_export_or_a_checkpoint_copies_every_weight(model_dir, tmp_path):
    source = trained(join(model_dir, "day1"))
    (export,) = source.export()
    source_weights = model_weights(source)
    checkpoint = source.latest_checkpoint().checkpoint_path
    # an export, a model dir (its latest checkpoint), a checkpoint prefix
    for start, used in (
        (export, export),
        (join(model_dir, "day1"), checkpoint),
        (checkpoint, checkpoint),
    ):
        target_dir = str(tmp_path / f"from-{len(os.listdir(tmp_path))}")
        # Training 1 step from the warm start: the weights differ from the source by one step.
        target = experiment_fn(
            RunConfig(model_dir=target_dir),
            {"train_steps": 1, "warm_start_from": start, "learning_rate": 1e-9},
        )
        target.train()
        assert target.estimator.warm_started_from == used
        for got, want in zip(model_weights(target), source_weights, strict=True):
            np.testing.assert_allclose(got, want, atol=1e-6)
        # The optimizer was not warm started: its step count restarts.
        assert target.latest_checkpoint().global_step == 1


def test_warm_start_only_applies_to_a_model_dir_without_checkpoints(tmp_path):
    source = trained(str(tmp_path / "source"))
    target_dir = str(tmp_path / "target")
    trained(target_dir, train_steps=20)  # a retry of a run that already checkpointed
    resumed = experiment_fn(
        RunConfig(model_dir=target_dir),
        {"train_steps": 40, "warm_start_from": source.model_dir},
    )
    resumed.train()
    assert resumed.estimator.warm_started_from is None
    assert resumed.latest_checkpoint().global_step == 40


def test_a_warm_start_from_a_different_architecture_names_the_variables(tmp_path):
    source = trained(str(tmp_path / "source"))
    target = experiment_fn(
        RunConfig(model_dir=str(tmp_path / "target")),
        {"train_steps": 1, "warm_start_from": source.model_dir, "hidden_units": 8},
    )
    with pytest.raises(WarmStartError) as err:
        target.train()
    message = str(err.value)
    assert "do not match the model" in message
    assert "Different shapes (3)" in message  # the output bias (3,) still fits
    assert "the model has shape (4, 8), the source (4, 16)" in message
    assert "/kernel" in message and "/bias" in message


def test_optimizer_state_comes_from_checkpoints_only(tmp_path):
    source = trained(str(tmp_path / "source"))
    (export,) = source.export()
    from airflow_tfexp.experiment import KerasEstimator, WarmStartSettings
    from tests.experiment.tiny_experiment import model_fn, train_input_fn

    with pytest.raises(WarmStartError, match="exports hold no optimizer state"):
        KerasEstimator(
            model_fn, str(tmp_path / "a"), warm_start_from=WarmStartSettings(export, True)
        ).train(train_input_fn, max_steps=1)
    estimator = KerasEstimator(
        model_fn,
        str(tmp_path / "b"),
        warm_start_from=WarmStartSettings(source.model_dir, include_optimizer=True),
    )
    estimator.train(train_input_fn, steps=1)
    assert estimator._train_state.global_step == 41  # the iterations came along


def test_not_a_warm_start_source_says_what_would_be(tmp_path):
    (tmp_path / "empty").mkdir()
    target = experiment_fn(
        RunConfig(model_dir=str(tmp_path / "target")),
        {"train_steps": 1, "warm_start_from": str(tmp_path / "empty")},
    )
    with pytest.raises(WarmStartError, match="neither an export .* nor a model dir"):
        target.train()


def test_an_export_evaluates_like_its_checkpoint(model_dir):
    experiment = trained(model_dir)
    (export,) = experiment.export()
    from_checkpoint = experiment.evaluate(name="check")
    from_export = experiment.evaluate_export(export)
    assert from_export["loss"] == pytest.approx(from_checkpoint["loss"], rel=1e-5)
    assert from_export["accuracy"] == pytest.approx(from_checkpoint["accuracy"], rel=1e-5)


DECISIONS = [
    # spec, candidate, baseline, blessed, words in the reason
    (BlessingSpec("loss"), {"loss": 0.4}, {"loss": 0.5}, True, "lower than the baseline"),
    (BlessingSpec("loss"), {"loss": 0.5}, {"loss": 0.5}, False, "is not lower"),
    (BlessingSpec("loss", min_delta=0.2), {"loss": 0.4}, {"loss": 0.5}, False, "min_delta 0.2"),
    (BlessingSpec("accuracy", "max"), {"accuracy": 0.9}, {"accuracy": 0.8}, True, "higher"),
    (BlessingSpec("accuracy", "max"), {"accuracy": 0.7}, {"accuracy": 0.8}, False, "not higher"),
    (BlessingSpec("accuracy", "max", threshold=0.95), {"accuracy": 0.9}, None, False, "threshold"),
    (BlessingSpec("accuracy", "max", threshold=0.8), {"accuracy": 0.9}, None, True, "alone"),
    (BlessingSpec("loss"), {"loss": 9.0}, None, True, "no published model"),
    (
        BlessingSpec("loss", bless_without_baseline=False),
        {"loss": 0.1},
        None,
        False,
        "bless_without_baseline is false",
    ),
    (BlessingSpec("loss", threshold=0.3), {"loss": 0.4}, {"loss": 0.9}, False, "at most 0.3"),
]


@pytest.mark.parametrize("spec, candidate, baseline, blessed, words", DECISIONS)
def test_blessing_decisions(spec, candidate, baseline, blessed, words):
    record = decide(spec, candidate, baseline)
    assert record["blessed"] is blessed
    assert words in record["reason"]
    assert record["candidate"] == candidate[spec.metric]
    assert record["baseline"] == (baseline or {}).get(spec.metric)


def test_a_blessing_metric_missing_from_the_evaluation_lists_the_available_ones():
    with pytest.raises(ValueError) as err:
        decide(BlessingSpec("auc"), {"loss": 0.3, "accuracy": 0.9, "global_step": 5}, None)
    assert str(err.value) == (
        "The blessing metric 'auc' is not in the candidate's evaluation. "
        "Available metrics: ['accuracy', 'loss']."
    )


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"metric": ""}, "`metric`"),
        ({"metric": "loss", "mode": "up"}, "`mode`"),
        ({"metric": "loss", "min_delta": -1}, "`min_delta`"),
        ({"metric": "loss", "threshold": "high"}, "`threshold`"),
    ],
)
def test_a_bad_blessing_spec_names_the_argument(kwargs, field):
    with pytest.raises(ValueError, match=field):
        BlessingSpec(**kwargs)


def test_publishing_copies_whole_versions_and_moves_the_pointer(model_dir, tmp_path):
    experiment = trained(join(model_dir, "run"))
    (first,) = experiment.export()
    more = experiment_fn(RunConfig(model_dir=join(model_dir, "run")), {"train_steps": 60})
    more.train()
    (second,) = more.export()
    publish_dir = join(model_dir, "published")
    assert latest_published(publish_dir) is None
    pointer = publish_export(first, publish_dir, {"run_id": "day1"})
    assert (pointer["version"], pointer["source"], pointer["run_id"]) == (1, first, "day1")
    again = publish_export(first, publish_dir)  # a retry: same version, nothing copied twice
    assert again["version"] == 1
    pointer = publish_export(second, publish_dir, {"run_id": "day2"})
    assert pointer["version"] == 2
    assert latest_published(publish_dir)["path"] == join(publish_dir, "2")
    fs = filesystem(publish_dir)
    assert sorted(n for n in fs.listdir(publish_dir) if n.isdigit()) == ["1", "2"]
    assert "saved_model.pb" in fs.listdir(join(publish_dir, "2"))
    assert "variables" in fs.listdir(join(publish_dir, "2"))
    # The published copy is a working model: it evaluates like the export it came from.
    assert more.evaluate_export(join(publish_dir, "2"))["loss"] == pytest.approx(
        more.evaluate_export(second)["loss"], rel=1e-5
    )


def test_blessing_and_lineage_records_round_trip(model_dir):
    write_blessing(model_dir, {"blessed": True, "reason": "because"})
    assert read_blessing(model_dir)["reason"] == "because"
    update_lineage(model_dir, {"config": {"a": 1}, "warm_start": None})
    record = update_lineage(model_dir, {"blessing": {"blessed": True}})
    assert read_lineage(model_dir) == record
    assert record["config"] == {"a": 1} and record["warm_start"] is None
    assert json.loads(filesystem(model_dir).read_bytes(join(model_dir, "run.json")))["blessing"]
