"""Argument checks whose errors name the argument, the value received and what is allowed."""

from __future__ import annotations

from typing import Any


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_int(name: str, value: Any, *, minimum: int = 0) -> int:
    if not _is_int(value) or value < minimum:
        raise ValueError(
            f"Invalid value for `{name}`. Received: {value!r}. Expected an int >= {minimum}."
        )
    return value


def check_optional_int(name: str, value: Any, *, minimum: int = 0) -> int | None:
    if value is None:
        return None
    if not _is_int(value) or value < minimum:
        raise ValueError(
            f"Invalid value for `{name}`. Received: {value!r}. Expected None or an int >= {minimum}."
        )
    return value


def check_optional_seconds(name: str, value: Any) -> float | None:
    """Delays and throttles: None or a number of seconds >= 0."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(
            f"Invalid value for `{name}`. Received: {value!r}. Expected None or a number of seconds >= 0."
        )
    return value


def check_optional_callable(name: str, value: Any) -> Any:
    if value is not None and not callable(value):
        raise ValueError(
            f"Invalid value for `{name}`. Received: {value!r}. Expected a callable or None."
        )
    return value


METRIC_MODES = ("min", "max")


def check_metric(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(
            f"Invalid value for `{name}`. Received: {value!r}. Expected a metric name."
        )
    return value


def check_mode(name: str, value: Any) -> str:
    """A metric's direction: "min" (smaller is better) or "max"."""
    if value not in METRIC_MODES:
        raise ValueError(
            f"Invalid value for `{name}`. Received: {value!r}. Expected one of {list(METRIC_MODES)}."
        )
    return value
