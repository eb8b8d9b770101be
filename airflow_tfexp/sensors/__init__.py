"""Sensors of airflow-tfexp."""

from airflow_tfexp.sensors.checkpoint import CheckpointSensor

__all__ = ["CheckpointSensor"]
