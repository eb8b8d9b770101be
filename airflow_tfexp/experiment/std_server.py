"""`Experiment.run_std_server`: serve this task's `tf.distribute.Server` until training is over.

Unlike the original, which joined forever, the server returns once the chief has written the
completion marker (a marker older than the server is from an earlier run and ignored), so no
parameter server outlives its training.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow_tfexp.experiment._clock import Clock
from airflow_tfexp.experiment.evaluation.coordination import current_completion

log = logging.getLogger(__name__)


def serve_until_training_complete(
    config: Any, model_dir: str, clock: Clock, check_interval_secs: float
) -> None:
    """Start the server `config` (a RunConfig: cluster_spec, task_type, task_id) names and
    return once training in `model_dir` has completed."""
    cluster = getattr(config, "cluster_spec", None)
    task_type = getattr(config, "task_type", None)
    task_id = getattr(config, "task_id", None)
    if not cluster or task_type is None or task_id is None or task_type not in cluster:
        raise ValueError(
            "Could not start a server: the estimator's config needs `cluster_spec`, `task_type` "
            f"and `task_id` (set TF_CONFIG). Received: cluster_spec={cluster!r}, "
            f"task_type={task_type!r}, task_id={task_id!r}."
        )
    import tensorflow as tf  # only servers need it; the engine stays light to import

    started = clock.time()
    server = tf.distribute.Server(
        tf.train.ClusterSpec(cluster),
        job_name=task_type,
        task_index=task_id,
        protocol="grpc",
        start=True,
    )
    log.info(
        "Started %s:%d std server at %s; serving until training completes.",
        task_type,
        task_id,
        server.target,
    )
    while True:
        marker = current_completion(model_dir, started)
        if marker is not None:
            log.info(
                "Training completed at step %d; %s:%d server exits.",
                marker["global_step"],
                task_type,
                task_id,
            )
            return
        clock.sleep(check_interval_secs)
