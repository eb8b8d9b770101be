"""airflow-tfexp: TensorFlow's Experiment as Apache Airflow 3 building blocks."""

__version__ = "0.1.0"
