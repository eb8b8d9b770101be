"""What an approval gate accepts, checked the same way by the factory (at parse time) and by
ApproveModelOperator: how long it waits for an answer and who may give it. Light to import."""

from __future__ import annotations

import datetime
import math
from collections.abc import Sequence
from typing import Any

# What a gate records in run.json's `approval` (a timeout is the default answer, Reject)
DECISIONS = ("approved", "rejected", "timed_out")
MIN_APPROVAL_SECS = 1.0
MAX_APPROVAL_SECS = 366 * 86400  # past this, Airflow's deadline arithmetic overflows soon after


def approval_seconds_error(seconds: float) -> str | None:
    """Why `seconds` is no approval timeout (None when it is one)."""
    if math.isfinite(seconds) and MIN_APPROVAL_SECS <= seconds <= MAX_APPROVAL_SECS:
        return None
    return "expected a duration of at least 1 s and at most 366 days"


def check_response_timeout(value: Any) -> datetime.timedelta | None:
    """The operator's `response_timeout` (a timedelta or seconds) as a timedelta; None waits
    for as long as it takes."""
    if value is None:
        return None
    if isinstance(value, datetime.timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        seconds = math.nan
    error = approval_seconds_error(seconds)
    if error:
        raise ValueError(
            f"Invalid value for `response_timeout`. Received: {value!r}. Expected a timedelta or "
            f"a number of seconds from {MIN_APPROVAL_SECS:g} s to 366 days (then the answer is "
            "Reject), or None to wait without a limit."
        )
    return value if isinstance(value, datetime.timedelta) else datetime.timedelta(seconds=seconds)


def approvers_error(approvers: Any) -> str | None:
    """Why `approvers` is no list of Airflow user ids (None when it is one). An empty list would
    let anyone answer; a template would stay a literal id (approvers are fixed in the DAG)."""
    if isinstance(approvers, str) or not isinstance(approvers, Sequence) or not approvers:
        return "expected a non-empty list of Airflow user ids"
    for user in approvers:
        if not isinstance(user, str) or not user.strip():
            return "expected a non-empty list of Airflow user ids"
        if "{{" in user or "{%" in user:
            return f"user id {user!r} is a template: approvers are fixed in the DAG file"
        if not user.isprintable():
            return f"user id {user!r} has a control character"
    if len(set(approvers)) != len(approvers):
        return "lists a user id twice"
    return None


def check_approvers(approvers: Sequence[str] | None) -> list[dict[str, str]] | None:
    """Airflow's assigned users for `approvers` (None: anyone the DAG's access rules allow)."""
    if approvers is None:
        return None
    error = approvers_error(approvers)
    if error:
        raise ValueError(
            f"Invalid value for `approvers`. Received: {approvers!r}. Expected a non-empty list "
            f"of distinct Airflow user ids ({error})."
        )
    return [{"id": a, "name": a} for a in approvers]
