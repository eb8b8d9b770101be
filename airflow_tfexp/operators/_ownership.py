"""Before a task writes: its dirs are inside `[tfexp] model_dir_roots` and belong to its
experiment (the owner stamp, see `experiment.storage.ownership`)."""

from __future__ import annotations

import logging
from typing import Any

from airflow_tfexp._airflow import is_templated


def check_experiment_id(experiment_id: Any) -> None:
    """`experiment_id` is fixed in the DAG file: it decides which model dirs a task may write."""
    if experiment_id is not None and (
        not isinstance(experiment_id, str) or not experiment_id or is_templated(experiment_id)
    ):
        raise ValueError(
            f"Invalid value for `experiment_id`. Received: {experiment_id!r}. Expected the "
            "dag_id of the experiment's training DAG, written in the DAG file (not a template: "
            "it decides which model dirs this task may write), or None for this DAG's own."
        )


def check_inside_roots(path: str, what: str) -> None:
    """ValueError naming `what` when `path` is outside `[tfexp] model_dir_roots`."""
    from airflow_tfexp._config import model_dir_roots
    from airflow_tfexp.experiment.storage.confinement import check_within_roots

    check_within_roots(path, model_dir_roots(), what)


def claim_for_writing(path: str, experiment: str, what: str, log: logging.Logger | Any) -> None:
    """Fail before anything is written when `path` is another experiment's; stamp it as
    `experiment`'s when it is nobody's yet (`check_inside_roots` comes first, without I/O)."""
    from airflow_tfexp._config import model_dir_roots
    from airflow_tfexp.experiment.storage.ownership import claim_model_dir

    if claim_model_dir(path, experiment, what, model_dir_roots()):
        log.info(
            "%s %s now belongs to the experiment %r (owner stamp written).", what, path, experiment
        )
