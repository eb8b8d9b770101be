"""Operators for each Experiment step. Light to import: TensorFlow loads inside execute()."""

from airflow_tfexp.operators.continuous_eval import ContinuousEvalOperator
from airflow_tfexp.operators.experiment import (
    EvaluateOperator,
    ExperimentTestOperator,
    ExportOperator,
    StdServerOperator,
    TrainAndEvaluateOperator,
    TrainOperator,
)

_LAZY = {  # the retraining operators load on first use: most DAG files never need them
    "ApproveModelOperator": "airflow_tfexp.operators.approval",
    "BlessOperator": "airflow_tfexp.operators.retraining",
    "PublishOperator": "airflow_tfexp.operators.retraining",
    "TriggeringCheckpointsOperator": "airflow_tfexp.operators.checkpoint_events",
    "CompleteTrialsOperator": "airflow_tfexp.operators.tuning",
    "ContinueSweepOperator": "airflow_tfexp.operators.tuning",
    "NextWaveOperator": "airflow_tfexp.operators.tuning",
    "SuggestTrialsOperator": "airflow_tfexp.operators.tuning",
}

__all__ = [
    "ApproveModelOperator",
    "BlessOperator",
    "CompleteTrialsOperator",
    "ContinueSweepOperator",
    "ContinuousEvalOperator",
    "EvaluateOperator",
    "ExperimentTestOperator",
    "ExportOperator",
    "NextWaveOperator",
    "PublishOperator",
    "StdServerOperator",
    "SuggestTrialsOperator",
    "TrainAndEvaluateOperator",
    "TrainOperator",
    "TriggeringCheckpointsOperator",
]


def __getattr__(name: str):
    import importlib

    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
