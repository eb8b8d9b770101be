"""A checkpoint whose data file is gone (deleted by hand, lost by a sync) after it was saved:
every step asked for "the latest" says so, naming the missing file, instead of silently using
the previous checkpoint; the continuous evaluator logs the skip with the reason."""

from __future__ import annotations

import logging
import os

import pytest

from airflow_tfexp.experiment import RunConfig
from airflow_tfexp.experiment.errors import CheckpointError
from tests.experiment.tiny_experiment import experiment_fn

PARAMS = {"train_steps": 40, "save_checkpoints_steps": 20, "keep_checkpoint_max": None}


@pytest.fixture
def damaged(tmp_path):
    model_dir = str(tmp_path / "model")
    experiment = experiment_fn(RunConfig(model_dir=model_dir), PARAMS)
    experiment.train()
    os.unlink(os.path.join(model_dir, "ckpt-40.data-00000-of-00001"))
    return experiment, model_dir


def test_evaluate_and_export_name_the_missing_file(damaged):
    experiment, model_dir = damaged
    for step in (experiment.evaluate, experiment.export):
        with pytest.raises(CheckpointError) as raised:
            step()
        message = str(raised.value)
        assert f"{model_dir}/ckpt-40, the newest checkpoint checkpoint names" in message
        assert "it has no ckpt-40.data-00000-of-00001" in message
        assert f"the newest complete one is {model_dir}/ckpt-20" in message
    with pytest.raises(CheckpointError, match="has no ckpt-40.data-00000-of-00001"):
        experiment.evaluate_checkpoint(f"{model_dir}/ckpt-40")
    # the earlier checkpoint, named explicitly, is still usable
    assert experiment.evaluate_checkpoint(f"{model_dir}/ckpt-20")["global_step"] == 20


def test_the_continuous_evaluator_says_why_it_skips(damaged, caplog, capsys):
    experiment, model_dir = damaged
    caplog.set_level(logging.WARNING)
    outcome = experiment.continuous_eval_pass(name="c")
    assert [r["global_step"] for r in outcome.results] == [20]
    logged = caplog.text + capsys.readouterr().out
    assert f"skipping {model_dir}/ckpt-40, the newest checkpoint checkpoint names" in logged
    assert "has no ckpt-40.data-00000-of-00001" in logged


def test_a_model_dir_that_is_a_file_is_a_clear_error(tmp_path):
    path = tmp_path / "model"
    path.write_text("my notes")
    with pytest.raises(ValueError, match=r"`model_dir`. Received: .*model', which is a file"):
        experiment_fn(RunConfig(model_dir=str(path)), PARAMS)
