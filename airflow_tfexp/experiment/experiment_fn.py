"""`experiment_fn` references: "package.module:function", checked early and imported late.

The check (`parse_experiment_fn`) is a regular expression, cheap enough for DAG parse time;
the import happens only when the experiment runs.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def parse_experiment_fn(spec: Any, argument: str = "experiment_fn") -> tuple[str, str]:
    """Split "module:function"; a ValueError names the argument and shows the expected form."""
    module, sep, attribute = spec.partition(":") if isinstance(spec, str) else ("", "", "")
    dotted = (module.split("."), attribute.split("."))
    if not sep or not all(part.isidentifier() for parts in dotted for part in parts):
        raise ValueError(
            f'Invalid value for `{argument}`. Received: {spec!r}. Expected "module:function", '
            'e.g. "airflow_tfexp.examples.digits:experiment_fn".'
        )
    return module, attribute


def load_experiment_fn(spec: str, argument: str = "--experiment-fn") -> Callable[..., Any]:
    """Import the function; a ValueError says what could not be found (the ImportError chained)."""
    module_name, attribute = parse_experiment_fn(spec, argument)
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(
            f"`{argument}` {spec!r}: cannot import module {module_name!r}: {err}"
        ) from err
    target: Any = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise ValueError(
                f"`{argument}` {spec!r}: module {module_name!r} has no attribute {attribute!r}."
            )
        target = getattr(target, part)
    if not callable(target):
        raise ValueError(f"`{argument}` {spec!r} is not callable: {target!r}.")
    return target


def build_experiment(
    spec: str, run_config: Any, params: dict[str, Any], argument: str = "--experiment-fn"
) -> Any:
    """Call `experiment_fn(run_config, params)` and check that it returned an Experiment."""
    from airflow_tfexp.experiment.experiment import Experiment

    experiment = load_experiment_fn(spec, argument)(run_config, params)
    if not isinstance(experiment, Experiment):
        raise ValueError(
            f"`{argument}` {spec!r} must return an Experiment. Received: {type(experiment).__name__}."
        )
    return experiment
