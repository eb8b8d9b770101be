"""The airflow-tfexp UI plugin: the Experiments pages (see `experiments`)."""
