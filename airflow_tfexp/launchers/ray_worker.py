"""What every Ray worker of a training job runs: build its experiment (TF_CONFIG set by the
launcher), warm start applied, train, and report its end state to the driver.

Shared by the multi-worker launcher (`ray_launcher`) and the parameter-server cluster
(`ray_parameter_server`).
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any


def build_worker_experiment(config: dict[str, Any]) -> Any:
    """The experiment of one Ray worker (its TF_CONFIG already set), warm start applied."""
    from airflow_tfexp.experiment import RunConfig
    from airflow_tfexp.experiment.experiment_fn import build_experiment

    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s", force=True)
    for chatty in ("tensorflow", "absl"):  # per-step strategy and session-config chatter
        logging.getLogger(chatty).setLevel(logging.WARNING)
    run_config = RunConfig(model_dir=config["model_dir"])
    experiment = build_experiment(
        config["experiment_fn"], run_config, config["params"], "experiment_fn"
    )
    from airflow_tfexp.experiment.retraining.warm_start import apply_warm_start

    apply_warm_start(
        experiment, config.get("warm_start_from"), config.get("warm_start_optimizer", False)
    )
    return experiment


def train_and_summarize(experiment: Any) -> dict[str, Any]:
    """Train to the experiment's train_steps; this worker's end state for the driver."""
    started = time.monotonic()
    experiment.train(delay_secs=0)
    estimator = experiment.estimator
    config = estimator.config
    return {
        "task": f"{config.task_type}-{config.task_id}",
        "pid": os.getpid(),
        "global_step": estimator.global_step(),
        "variables_fingerprint": estimator.variables_fingerprint(),
        "train_secs": round(time.monotonic() - started, 3),
        **_latest_checkpoint(experiment),
        "warm_started_from": getattr(estimator, "warm_started_from", None),
    }


def _latest_checkpoint(experiment: Any) -> dict[str, Any]:
    latest = experiment.latest_checkpoint()
    return {"checkpoint_path": latest.checkpoint_path if latest else None}
