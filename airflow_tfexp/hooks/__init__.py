"""Connections of airflow-tfexp."""
