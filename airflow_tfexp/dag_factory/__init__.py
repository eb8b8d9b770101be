"""The DAG factory: parameters (YAML or dict) -> validated spec -> stages -> DAG.

Imports no TensorFlow, Keras or Google client: a factory DAG file parses as fast as a plain one.
"""

from airflow_tfexp.dag_factory.builder import (
    build_experiment_dag,
    build_experiment_dags,
    load_experiment_dag,
    load_experiment_dags,
)
from airflow_tfexp.dag_factory.errors import ExperimentConfigError

_LAZY = {  # the spec (pydantic) loads only when a config is validated
    "ExperimentSpec": "airflow_tfexp.dag_factory.spec",
    "parse_spec": "airflow_tfexp.dag_factory.spec",
}

__all__ = [
    "ExperimentConfigError",
    "ExperimentSpec",
    "build_experiment_dag",
    "build_experiment_dags",
    "load_experiment_dag",
    "load_experiment_dags",
    "parse_spec",
]


def __getattr__(name: str):
    import importlib

    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
