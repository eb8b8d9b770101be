"""The Experiment engine: pure TensorFlow + Keras, no Airflow.

Importing this package is cheap: modules that need TensorFlow (`KerasEstimator`) load on first
use, so code that only configures experiments stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

from airflow_tfexp.experiment.checkpoints import CheckpointInfo, latest_checkpoint, list_checkpoints
from airflow_tfexp.experiment.early_stopping import EarlyStoppingHook
from airflow_tfexp.experiment.errors import CheckpointError
from airflow_tfexp.experiment.experiment import Experiment
from airflow_tfexp.experiment.exporters import (
    BestExporter,
    Exporter,
    FinalExporter,
    LatestExporter,
    metric_compare_fn,
)
from airflow_tfexp.experiment.hooks import CheckpointSaverListener, TrainingContext, TrainingHook
from airflow_tfexp.experiment.run_config import RunConfig

_LAZY = {"KerasEstimator": "airflow_tfexp.experiment.keras_estimator"}

__all__ = [
    "BestExporter",
    "CheckpointError",
    "CheckpointInfo",
    "CheckpointSaverListener",
    "EarlyStoppingHook",
    "Experiment",
    "Exporter",
    "FinalExporter",
    "KerasEstimator",
    "LatestExporter",
    "RunConfig",
    "TrainingContext",
    "TrainingHook",
    "latest_checkpoint",
    "list_checkpoints",
    "metric_compare_fn",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
