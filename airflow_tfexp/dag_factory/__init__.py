"""The DAG factory: parameters (YAML or dict) -> validated spec -> stages -> DAG.

Imports no TensorFlow, Keras or Google client: a factory DAG file parses as fast as a plain one.
"""

from airflow_tfexp.dag_factory.builder import (
    build_experiment_dag,
    load_experiment_dag,
    load_experiment_dags,
)
from airflow_tfexp.dag_factory.spec import ExperimentConfigError, ExperimentSpec, parse_spec

__all__ = [
    "ExperimentConfigError",
    "ExperimentSpec",
    "build_experiment_dag",
    "load_experiment_dag",
    "load_experiment_dags",
    "parse_spec",
]
