"""Triggers of airflow-tfexp (run in the triggerer; importable from the installed package)."""
