"""A sweep's search space: `{name: {type: float|int|categorical, low, high, log, step, choices}}`.

Checked without Optuna (cheap enough for DAG parse time); `distributions` turns a checked space
into Optuna's distributions when trials are asked for. Every error names the field path.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from airflow_tfexp.names import PROVIDER_PARAM_PREFIX

TYPES = ("float", "int", "categorical")
_KEYS = {
    "float": {"type", "low", "high", "log", "step"},
    "int": {"type", "low", "high", "log", "step"},
    "categorical": {"type", "choices"},
}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")
MAX_GRID_POINTS = 100_000


def _number(path: str, value: Any, kind: str) -> float | int:
    wanted = int if kind == "int" else (int, float)
    if isinstance(value, bool) or not isinstance(value, wanted) or not math.isfinite(value):
        raise ValueError(
            f"{path}: expected {'an int' if kind == 'int' else 'a number'} (got {value!r})"
        )
    return value


def _range(path: str, kind: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    for key in ("low", "high"):
        if key not in spec:
            raise ValueError(f"{path}.{key}: required for type {kind}")
    low, high = (
        _number(f"{path}.low", spec["low"], kind),
        _number(f"{path}.high", spec["high"], kind),
    )
    if low > high:
        raise ValueError(f"{path}.high: must be >= low ({low}) (got {high!r})")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise ValueError(f"{path}.log: expected true or false (got {log!r})")
    step = spec.get("step")
    if step is not None:
        step = _number(f"{path}.step", step, kind)
        if step <= 0:
            raise ValueError(f"{path}.step: must be > 0 (got {step!r})")
        if log and (kind == "float" or step != 1):
            raise ValueError(f"{path}: log and step cannot be combined (step must be 1 with log)")
    if log and low <= 0:
        raise ValueError(f"{path}.low: must be > 0 with log: true (got {low!r})")
    if kind == "int" and step is None:
        step = 1
    return {"type": kind, "low": low, "high": high, "log": log, "step": step}


def _choices(path: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    choices = spec.get("choices")
    if not isinstance(choices, list) or not choices:
        raise ValueError(f"{path}.choices: expected a non-empty list (got {choices!r})")
    for index, choice in enumerate(choices):
        if choice is not None and not isinstance(choice, bool | int | float | str):
            raise ValueError(
                f"{path}.choices[{index}]: expected null, a bool, a number or a string (got {choice!r})"
            )
        if isinstance(choice, float) and not math.isfinite(choice):
            raise ValueError(f"{path}.choices[{index}]: expected a finite number (got {choice!r})")
    if len(set(choices)) != len(choices):  # 1, 1.0 and True are one value to Optuna
        raise ValueError(
            f"{path}.choices: must be distinct values (1, 1.0 and true are the same one) "
            f"(got {choices!r})"
        )
    return {"type": "categorical", "choices": list(choices)}


def check_search_space(space: Any, path: str = "search_space") -> dict[str, dict[str, Any]]:
    """The space with defaults filled in (`log: false`, int `step: 1`), or a ValueError naming
    the first bad field, e.g. "search_space.learning_rate.low: must be > 0 with log: true"."""
    if not isinstance(space, Mapping) or not space:
        raise ValueError(f"{path}: expected a mapping of parameter names to ranges (got {space!r})")
    checked: dict[str, dict[str, Any]] = {}
    for name, spec in space.items():
        where = f"{path}.{name}"
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(f"{path}: {name!r} is not a parameter name (letters, digits, _)")
        if name.startswith(PROVIDER_PARAM_PREFIX):
            raise ValueError(f"{where}: {PROVIDER_PARAM_PREFIX}* params are the provider's own")
        if not isinstance(spec, Mapping):
            raise ValueError(
                f"{where}: expected {{type: float|int|categorical, ...}} (got {spec!r})"
            )
        kind = spec.get("type")
        if kind not in TYPES:
            raise ValueError(f"{where}.type: expected one of {list(TYPES)} (got {kind!r})")
        unknown = sorted(set(spec) - _KEYS[kind])
        if unknown:
            raise ValueError(
                f"{where}: unknown keys {unknown} for type {kind} (allowed: {sorted(_KEYS[kind])})"
            )
        checked[name] = (
            _choices(where, spec) if kind == "categorical" else _range(where, kind, spec)
        )
    return checked


def grid(space: Mapping[str, Mapping[str, Any]], path: str = "search_space") -> dict[str, list]:
    """Every value of each dimension, for the grid sampler: categorical choices, or the steps of
    an int or stepped float range (a float range without `step` has no grid)."""
    values: dict[str, list] = {}
    for name, spec in space.items():
        if spec["type"] == "categorical":
            values[name] = list(spec["choices"])
            continue
        if spec["step"] is None:
            raise ValueError(
                f"{path}.{name}: the grid sampler needs a step for a float range (or choices)"
            )
        count = int(math.floor((spec["high"] - spec["low"]) / spec["step"] + 1e-9)) + 1
        if count > MAX_GRID_POINTS:
            raise ValueError(f"{path}.{name}: {count} grid points; at most {MAX_GRID_POINTS}")
        points = [spec["low"] + i * spec["step"] for i in range(count)]
        values[name] = [int(p) for p in points] if spec["type"] == "int" else points
    return values


def grid_size(space: Mapping[str, Mapping[str, Any]]) -> int:
    return math.prod(len(v) for v in grid(space).values())


def distributions(space: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Optuna's distributions for a checked space (imports Optuna)."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    made: dict[str, Any] = {}
    for name, spec in space.items():
        if spec["type"] == "categorical":
            made[name] = CategoricalDistribution(spec["choices"])
        elif spec["type"] == "int":
            made[name] = IntDistribution(
                spec["low"], spec["high"], log=spec["log"], step=spec["step"]
            )
        else:
            made[name] = FloatDistribution(
                spec["low"], spec["high"], log=spec["log"], step=spec["step"]
            )
    return made
