"""The Experiment engine: pure TensorFlow + Keras, no Airflow.

Importing this package is cheap: every public name loads its module on first use, and only
`KerasEstimator` needs TensorFlow.
"""

from __future__ import annotations

import importlib
from typing import Any

# Every public name loads its module on first use, so importing one light module of the
# engine (say experiment_fn, at DAG parse time) does not import the rest.
_LAZY = {
    "BestExporter": "airflow_tfexp.experiment.export.exporters",
    "BlessingSpec": "airflow_tfexp.experiment.retraining.blessing",
    "CheckpointError": "airflow_tfexp.experiment.errors",
    "CheckpointInfo": "airflow_tfexp.experiment.storage.checkpoints",
    "CheckpointSaverListener": "airflow_tfexp.experiment.hooks",
    "EarlyStoppingHook": "airflow_tfexp.experiment.evaluation.early_stopping",
    "Experiment": "airflow_tfexp.experiment.experiment",
    "Exporter": "airflow_tfexp.experiment.export.exporters",
    "FinalExporter": "airflow_tfexp.experiment.export.exporters",
    "KerasEstimator": "airflow_tfexp.experiment.keras_estimator",
    "LatestExporter": "airflow_tfexp.experiment.export.exporters",
    "PruningHook": "airflow_tfexp.experiment.tuning.pruning",
    "RunConfig": "airflow_tfexp.experiment.run_config",
    "StudySpec": "airflow_tfexp.experiment.tuning.study",
    "TrainingContext": "airflow_tfexp.experiment.hooks",
    "TrainingHook": "airflow_tfexp.experiment.hooks",
    "Trial": "airflow_tfexp.experiment.tuning.trials",
    "UploadError": "airflow_tfexp.experiment.storage.upload_queue",
    "WarmStartError": "airflow_tfexp.experiment.retraining.warm_start",
    "WarmStartSettings": "airflow_tfexp.experiment.retraining.warm_start",
    "latest_published": "airflow_tfexp.experiment.retraining.publishing",
    "publish_export": "airflow_tfexp.experiment.retraining.publishing",
    "latest_checkpoint": "airflow_tfexp.experiment.storage.checkpoints",
    "list_checkpoints": "airflow_tfexp.experiment.storage.checkpoints",
    "metric_compare_fn": "airflow_tfexp.experiment.export.exporters",
    "open_study": "airflow_tfexp.experiment.tuning.study",
    "tune": "airflow_tfexp.experiment.tuning.tune",
}

__all__ = sorted(_LAZY)


def __dir__() -> list[str]:
    return sorted(__all__)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
