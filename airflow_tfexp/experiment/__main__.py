"""Entry point of `python -m airflow_tfexp.experiment` (see cli.py)."""

import sys

from airflow_tfexp.experiment.cli import main

sys.exit(main())
