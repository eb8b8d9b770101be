"""Durations in a config: seconds as a number, or "90s", "15m", "2h", "1d"."""

from __future__ import annotations

import datetime
import re
from typing import Any

DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d)$")


def parse_duration(value: Any) -> datetime.timedelta | None:
    """Seconds as a number, or "90s", "15m", "2h", "1d"."""
    if value is None or isinstance(value, datetime.timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return datetime.timedelta(seconds=value)
    match = DURATION.match(str(value).strip())
    if not match:
        raise ValueError(
            'expected seconds (a number > 0) or a duration like "90s", "15m", "2h", "1d"'
        )
    number, unit = float(match.group(1)), match.group(2)
    return datetime.timedelta(
        **{{"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[unit]: number}
    )
