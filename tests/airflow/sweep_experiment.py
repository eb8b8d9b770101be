"""A sweep's experiment without TensorFlow: the fake estimator, whose loss depends on the
trial's `x` (best at 0.3) and falls with the step, so sweeps run in seconds."""

from __future__ import annotations

from typing import Any

from airflow_tfexp.experiment import Experiment, FinalExporter
from tests.experiment.fakes import FakeEstimator, eval_input_fn, train_input_fn


def loss(x: float, step: int) -> float:
    return abs(x - 0.3) + 10.0 / (1 + step)


def experiment_fn(run_config: Any, params: dict[str, Any]) -> Experiment:
    x = float(params["x"])
    estimator = FakeEstimator(
        run_config.model_dir, config=run_config, save_every=10, loss_fn=lambda s: loss(x, s)
    )
    return Experiment(
        estimator,
        train_input_fn,
        eval_input_fn,
        train_steps=params.get("train_steps", 30),
        eval_steps=None,
        eval_delay_secs=0,
        export_strategies=[FinalExporter("final")],
    )
