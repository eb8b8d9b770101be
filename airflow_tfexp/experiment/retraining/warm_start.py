"""Warm start: a new model begins from the weights of an earlier checkpoint or export.

Variables are matched by their object path in the model (the names `tf.train.Checkpoint` uses,
e.g. `_functional/_operations/1/_kernel`), so Keras' auto-generated layer names (`dense_3`)
do not matter, and an export and a checkpoint of the same architecture are interchangeable.
Checkpoints carry these paths in their object graph; exports written by this engine carry them
in `assets.extra/variables.json` (an export's own variable keys are only positions).

Optimizer state (slots, iterations) can come along from a checkpoint only: exports hold none.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

log = logging.getLogger(__name__)

VARIABLES_INDEX = os.path.join("assets.extra", "variables.json")
_VALUE = ".ATTRIBUTES/VARIABLE_VALUE"


class WarmStartError(ValueError):
    """The warm-start source cannot be used for this model (names the variables that differ)."""


def object_paths(model: Any, include_optimizer: bool = False) -> dict[str, Any]:
    """`{object path: variable}` as `tf.train.Checkpoint(model=..., optimizer=...)` names them:
    a breadth-first walk from that root (the same walk `_checkpoint_keys` makes), each shared
    object entered once, the first path to a variable kept. The optimizer's variables are
    included when asked (`optimizer/...`)."""
    import collections

    import keras
    import tensorflow as tf

    roots = {"model": model}
    if include_optimizer and model.optimizer is not None:
        roots["optimizer"] = model.optimizer
    found: dict[int, tuple[str, Any]] = {}
    entered = {id(o) for o in roots.values()}
    queue = collections.deque((name, obj) for name, obj in roots.items())
    while queue:
        path, obj = queue.popleft()
        for name, child in tf.train.TrackableView(obj).children(obj).items():
            if path == "model" and name == "optimizer":
                continue  # the optimizer is its own root
            child_path = f"{path}/{name}"
            if isinstance(child, keras.Variable | tf.Variable):
                found.setdefault(id(child), (child_path, child))
            elif id(child) not in entered:
                entered.add(id(child))
                queue.append((child_path, child))
    return dict(found.values())


def variables_index(model: Any, archive_variables: list[Any]) -> dict[str, Any]:
    """The index an export carries: object path -> position in the export's `variables`."""
    position = {id(v): i for i, v in enumerate(archive_variables)}
    return {
        "format": 1,
        "variables": {
            path: {"position": position[id(v)], "name": v.path, "shape": list(v.shape)}
            for path, v in object_paths(model).items()
            if id(v) in position
        },
    }


def _checkpoint_keys(prefix: str) -> dict[str, str]:
    """`{object path: checkpoint key}` of the variables in a checkpoint's object graph, walked
    like `object_paths` walks a model (breadth first, shared objects entered once)."""
    import collections

    import tensorflow as tf
    from tensorflow.core.protobuf import trackable_object_graph_pb2

    reader = tf.train.load_checkpoint(prefix)
    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    graph.ParseFromString(reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))

    def variable_key(node: Any) -> str | None:
        return next((a.checkpoint_key for a in node.attributes if a.name == "VARIABLE_VALUE"), None)

    keys: dict[str, str] = {}
    entered = {0}
    queue = collections.deque([("", 0)])
    while queue:
        path, node_id = queue.popleft()
        for child in graph.nodes[node_id].children:
            if path == "model" and child.local_name == "optimizer":
                continue
            child_path = f"{path}/{child.local_name}" if path else child.local_name
            key = variable_key(graph.nodes[child.node_id])
            if key is not None:
                keys.setdefault(child_path, key)
            elif child.node_id not in entered:
                entered.add(child.node_id)
                queue.append((child_path, child.node_id))
    return keys


class WarmStartSource:
    """The variables of a checkpoint or an export, by object path.

    `path` is where the source lives (local or gs://, recorded in lineage); `local_path` is
    the copy TensorFlow reads."""

    def __init__(self, path: str, local_path: str, is_export: bool) -> None:
        import tensorflow as tf

        self.path = path
        self.is_export = is_export
        if is_export:
            index_file = os.path.join(local_path, VARIABLES_INDEX)
            if not os.path.exists(index_file):
                raise WarmStartError(
                    f"Cannot warm start from {path!r}: it is not an export written by "
                    f"airflow-tfexp (no {VARIABLES_INDEX}). Use one of its exports or a checkpoint."
                )
            with open(index_file) as handle:
                index = json.load(handle)["variables"]
            self.keys = {p: f"variables/{v['position']}/{_VALUE}" for p, v in index.items()}
            self.reader = tf.train.load_checkpoint(
                os.path.join(local_path, "variables", "variables")
            )
        else:
            try:
                self.keys = _checkpoint_keys(local_path)
            except Exception as err:  # noqa: BLE001 - TF raises NotFoundError, DataLossError, ...
                raise WarmStartError(f"Cannot read the checkpoint {path!r}: {err}") from err
            self.reader = tf.train.load_checkpoint(local_path)


def warm_start_source(path: str) -> WarmStartSource:
    """An export dir, a model dir (its latest checkpoint) or a checkpoint prefix; gs:// paths
    are downloaded to the staging dir first."""
    from airflow_tfexp.experiment.export.export_dirs import SAVED_MODEL_FILE
    from airflow_tfexp.experiment.storage import checkpoints as ckpts
    from airflow_tfexp.experiment.storage.fs import dirname, filesystem, is_gcs, join

    path = path.rstrip("/")
    fs = filesystem(path)
    if SAVED_MODEL_FILE in fs.listdir(path):
        local = path
        if is_gcs(path):
            from airflow_tfexp.experiment.storage.gcs_staging import GcsStaging

            local = GcsStaging(dirname(path)).fetch_export(path)
        return WarmStartSource(path, local, is_export=True)
    latest = ckpts.latest_checkpoint(path) if fs.listdir(path) else None
    prefix = latest.checkpoint_path if latest is not None else path
    if not ckpts.is_complete(prefix):
        raise WarmStartError(
            f"Cannot warm start from {path!r}: it is neither an export (no {SAVED_MODEL_FILE}), "
            "nor a model dir with a complete checkpoint, nor a complete checkpoint prefix "
            f"(e.g. {join(path, 'ckpt-100')!r})."
        )
    local = prefix
    if is_gcs(prefix):
        from airflow_tfexp.experiment.storage.gcs_staging import GcsStaging

        local = GcsStaging(dirname(prefix)).fetch_checkpoint(prefix)
    return WarmStartSource(prefix, local, is_export=False)


def warm_start(model: Any, source: WarmStartSource, include_optimizer: bool = False) -> int:
    """Assign the source's values to the model's variables; return how many were assigned.

    Every model variable must be in the source with the same shape (a partial warm start is a
    silent bug): otherwise a WarmStartError lists the missing and mismatched variables."""
    if include_optimizer and source.is_export:
        raise WarmStartError(
            f"Cannot warm start the optimizer from the export {source.path!r}: exports hold no "
            "optimizer state. Use a checkpoint, or set include_optimizer to False."
        )
    targets = object_paths(model, include_optimizer)
    missing, mismatched, values = [], [], {}
    for path, variable in targets.items():
        key = source.keys.get(path)
        if key is None:
            missing.append(f"{variable.path} ({path})")
            continue
        value = source.reader.get_tensor(key)
        if tuple(value.shape) != tuple(variable.shape):
            mismatched.append(
                f"{variable.path} ({path}): the model has shape {tuple(variable.shape)}, "
                f"the source {tuple(value.shape)}"
            )
            continue
        values[path] = value
    if missing or mismatched:
        lines = [f"Cannot warm start from {source.path!r}: its variables do not match the model."]
        if missing:
            lines.append(f"Missing from the source ({len(missing)}): " + "; ".join(missing[:20]))
        if mismatched:
            lines.append(f"Different shapes ({len(mismatched)}): " + "; ".join(mismatched[:20]))
        raise WarmStartError("\n".join(lines))
    for path, value in values.items():
        targets[path].assign(value)
    ignored = sorted(set(source.keys) - set(targets))
    model_only = [p for p in ignored if p.startswith("model/")]
    if model_only:
        log.info(
            "Warm start from %s ignored %d source variables the model does not have: %s",
            source.path,
            len(model_only),
            ", ".join(model_only[:10]),
        )
    log.info(
        "Warm started %d variables from %s%s.",
        len(values),
        source.path,
        " (with optimizer state)" if include_optimizer else "",
    )
    return len(values)


class WarmStartSettings:
    """Where a model with no checkpoint yet starts from (tf.estimator's WarmStartSettings).

    :param source: a checkpoint prefix, a model dir (its latest checkpoint) or an export dir,
        local or gs://.
    :param include_optimizer: also restore the optimizer's state (checkpoints only).
    """

    def __init__(self, source: str, include_optimizer: bool = False) -> None:
        if not isinstance(source, str) or not source:
            raise ValueError(
                f"Invalid value for `warm_start_from`. Received: {source!r}. Expected a "
                "checkpoint, a model dir or an export dir."
            )
        if not isinstance(include_optimizer, bool):
            raise ValueError(
                f"Invalid value for `include_optimizer`. Received: {include_optimizer!r}. "
                "Expected True or False."
            )
        self.source = source
        self.include_optimizer = include_optimizer

    def __repr__(self) -> str:
        return f"WarmStartSettings({self.source!r}, include_optimizer={self.include_optimizer})"


def as_warm_start_settings(value: Any) -> WarmStartSettings | None:
    """None, a path, or WarmStartSettings -> WarmStartSettings or None."""
    if value is None or isinstance(value, WarmStartSettings):
        return value
    return WarmStartSettings(value)


def apply_warm_start(experiment: Any, source: str | None, include_optimizer: bool) -> None:
    """Tell the experiment's estimator to warm start from `source` (a checkpoint, model dir or
    export path; None: no warm start) when it trains with no checkpoint of its own. One path for
    every launcher: an Airflow task training locally and each Ray worker alike."""
    if source is None:
        return
    set_warm_start = getattr(experiment.estimator, "set_warm_start", None)
    if set_warm_start is None:
        raise ValueError(
            f"`warm_start_from` needs an estimator that can warm start (KerasEstimator); "
            f"{type(experiment.estimator).__name__} cannot."
        )
    set_warm_start(WarmStartSettings(source, include_optimizer))
