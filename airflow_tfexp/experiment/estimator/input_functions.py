"""tf.estimator's input-function convention: an `input_fn` that declares `params`, `config`
or `mode` is called with them (the estimator's params, its RunConfig, and "train" / "eval" /
"infer", the values of `tf.estimator.ModeKeys`); one that declares none is called bare."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any

TRAIN, EVAL, PREDICT = "train", "eval", "infer"


def bind_input_fn(
    input_fn: Callable[..., Any], mode: str, params: Mapping[str, Any], config: Any
) -> Callable[[], Any]:
    """`input_fn` as a function of no arguments, given what it declares."""
    if not callable(input_fn):
        raise ValueError(
            f"Invalid value for `input_fn`. Received: {input_fn!r}. Expected a callable returning "
            "a tf.data.Dataset."
        )
    try:
        declared = inspect.signature(input_fn).parameters
    except (TypeError, ValueError):  # a builtin or C callable: nothing to inspect
        return input_fn
    bound = input_fn.keywords if isinstance(input_fn, functools.partial) else {}
    offered = {"params": dict(params), "config": config, "mode": mode}
    kwargs = {k: v for k, v in offered.items() if k in declared and k not in bound}
    return functools.partial(input_fn, **kwargs) if kwargs else input_fn
