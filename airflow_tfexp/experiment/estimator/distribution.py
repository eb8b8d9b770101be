"""Choose the tf.distribute strategy for this process from its RunConfig and its devices."""

from __future__ import annotations

import logging

import tensorflow as tf

from airflow_tfexp.experiment.run_config import EVALUATOR, RunConfig

log = logging.getLogger(__name__)


def _local(config: RunConfig) -> tf.distribute.Strategy:
    gpus = tf.config.list_physical_devices("GPU")
    if len(gpus) > 1:
        log.info("Using MirroredStrategy over %d GPUs.", len(gpus))
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def _multi_worker(config: RunConfig) -> tf.distribute.Strategy:
    log.info(
        "Using MultiWorkerMirroredStrategy as %s %d of %d workers.",
        config.task_type,
        config.task_id,
        config.num_worker_replicas,
    )
    return tf.distribute.MultiWorkerMirroredStrategy()


def _parameter_server(config: RunConfig) -> tf.distribute.Strategy:
    if not config.is_chief:
        raise ValueError(
            f"TF_CONFIG makes this process {config.task_type}:{config.task_id} of a "
            f"parameter-server cluster ({config.num_ps_replicas} ps): only the chief trains (it "
            "coordinates the workers); worker and ps tasks run `Experiment.run_std_server()`."
        )
    log.info(
        "Using ParameterServerStrategy as the coordinator of %d worker(s) and %d ps.",
        len(config.cluster_spec.get("worker", [])),
        config.num_ps_replicas,
    )
    resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
        tf.train.ClusterSpec(config.cluster_spec),
        task_type=config.task_type,
        task_id=config.task_id,
        rpc_layer="grpc",
    )
    return tf.distribute.ParameterServerStrategy(resolver)


def is_parameter_server(strategy: tf.distribute.Strategy) -> bool:
    return isinstance(strategy, tf.distribute.ParameterServerStrategy)


def select_strategy(config: RunConfig) -> tf.distribute.Strategy:
    """Default or Mirrored for one process, MultiWorkerMirrored for a worker cluster,
    ParameterServer for the chief of a cluster with ps tasks."""
    if config.task_type in (None, EVALUATOR) or config.num_worker_replicas <= 1:
        mode = "local"
    elif config.num_ps_replicas:
        mode = "parameter_server"
    else:
        mode = "multi_worker"
    return _STRATEGIES[mode](config)


_STRATEGIES = {
    "local": _local,
    "multi_worker": _multi_worker,
    "parameter_server": _parameter_server,
}
