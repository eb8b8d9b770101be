"""The experiment_fn of factory DAGs: an Experiment from the spec carried in the task's params."""

from __future__ import annotations

import functools
import inspect
import json
from typing import Any

from airflow_tfexp.dag_factory.spec import EXPERIMENT_ARGUMENTS
from airflow_tfexp.names import SPEC_PARAM


def _bind_params(fn: Any, params: dict[str, Any]) -> Any:
    """tf.estimator's convention: an input_fn with a `params` argument receives the params."""
    if "params" in inspect.signature(fn).parameters:
        return functools.partial(fn, params=params)
    return fn


def _exporter(spec: dict[str, Any]) -> Any:
    from airflow_tfexp.experiment import (
        BestExporter,
        FinalExporter,
        LatestExporter,
        metric_compare_fn,
    )
    from airflow_tfexp.experiment.experiment_fn import load_experiment_fn

    serving = (
        load_experiment_fn(spec["serving_input_fn"], "serving_input_fn")
        if spec.get("serving_input_fn")
        else None
    )
    name = spec.get("name") or spec["type"]
    if spec["type"] == "latest":
        return LatestExporter(name, serving, exports_to_keep=spec.get("exports_to_keep"))
    if spec["type"] == "best":
        compare = metric_compare_fn(spec.get("metric", "loss"), spec.get("mode", "min"))
        return BestExporter(
            name, serving, compare_fn=compare, exports_to_keep=spec.get("exports_to_keep")
        )
    return FinalExporter(name, serving)


def experiment_from_spec(run_config: Any, params: dict[str, Any]) -> Any:
    from airflow_tfexp.experiment import Experiment, KerasEstimator
    from airflow_tfexp.experiment.experiment_fn import load_experiment_fn

    params = dict(params)
    spec = params.pop(SPEC_PARAM)
    if isinstance(spec, str):  # carried as JSON (see stages.experiment_params)
        spec = json.loads(spec)
    run_settings = {
        k: v for k, v in spec["run_config"].items() if v is not None or k == "keep_checkpoint_max"
    }
    config = run_config.replace(**run_settings)
    estimator = KerasEstimator(
        load_experiment_fn(spec["model_fn"], "model_fn"), config=config, params=params
    )
    arguments = {key: spec[key] for key in EXPERIMENT_ARGUMENTS}
    return Experiment(
        estimator,
        _bind_params(load_experiment_fn(spec["train_input_fn"], "train_input_fn"), params),
        _bind_params(load_experiment_fn(spec["eval_input_fn"], "eval_input_fn"), params),
        export_strategies=[_exporter(e) for e in spec["exporters"]],
        **arguments,
    )
