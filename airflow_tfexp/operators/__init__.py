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

__all__ = [
    "ContinuousEvalOperator",
    "EvaluateOperator",
    "ExperimentTestOperator",
    "ExportOperator",
    "StdServerOperator",
    "TrainAndEvaluateOperator",
    "TrainOperator",
]
