"""Every experiment described in dags/experiments/*.yaml, built by airflow-tfexp's DAG factory."""

from pathlib import Path

from airflow_tfexp.dag_factory import load_experiment_dags

globals().update(load_experiment_dags(str(Path(__file__).parent / "experiments")))
