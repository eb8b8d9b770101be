"""What a waiting sensor or trigger needs to know about a model dir, read in O(1) requests.

`scan_model_dir` lists the model dir's top level once and reads the checkpoint state, the
completion marker and (for a named evaluator) its results only when they exist: four reads at
most, however many checkpoints there are. Given the waiter's previous scan, it first reads the
checkpoint state's version (one metadata read: a Class B request on GCS, a `stat` locally) and
reuses that scan while it is unchanged: every new checkpoint, checkpoint deletion and the
completion marker (`coordination.write_completion_marker` touches the state) changes it. So an
idle look costs one request; before the first checkpoint (no state yet) it lists as well.
`checkpoints_to_report` is the one pure decision that the sync sensor and the async trigger
share.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Hashable
from typing import Any

from airflow_tfexp.experiment.evaluation.coordination import COMPLETION_MARKER, current_completion
from airflow_tfexp.experiment.evaluation.results import evaluated_steps
from airflow_tfexp.experiment.storage.checkpoints import (
    STATE_FILE,
    CheckpointInfo,
    checkpoints_from_listing,
    read_state,
)
from airflow_tfexp.experiment.storage.files import read_json
from airflow_tfexp.experiment.storage.fs import filesystem, join


class CheckpointEventStatus(enum.StrEnum):
    SUCCESS = "success"  # new complete checkpoints
    TRAINING_COMPLETE = "training_complete"  # training is over and nothing newer will come
    ERROR = "error"


@dataclasses.dataclass(frozen=True)
class ModelDirScan:
    checkpoints: list[CheckpointInfo]
    completion: dict[str, Any] | None  # the training completion marker, if present
    evaluated_max: int | None  # the named evaluator's highest evaluated step
    requests: int  # storage reads this scan cost
    model_dir: str = ""
    state_version: Hashable | None = None  # the checkpoint state's version when scanned


def scan_model_dir(
    model_dir: str,
    name: str | None = None,
    previous: ModelDirScan | None = None,
    *,
    watching: bool = False,
) -> ModelDirScan:
    """One look at a model dir (local or gs://): 1 listing plus at most 3 small reads; with
    `previous` (this waiter's last scan of the same dir), 1 metadata read while nothing
    changed. `watching`: record the state's version for the next look (the first of many)."""
    state_version = None
    if previous is not None or watching:
        state_path = join(model_dir, STATE_FILE)
        state_version = filesystem(state_path).version(state_path)
        unchanged = previous is not None and state_version == previous.state_version
        if unchanged and state_version is not None:
            return dataclasses.replace(previous, requests=1)
    names = filesystem(model_dir).listdir(model_dir)  # one request per 1,000 top-level entries
    requests = 1 + (previous is not None or watching)
    state = read_state(model_dir, names)
    requests += state is not None
    completion = None
    if COMPLETION_MARKER in names:
        requests += 1
        completion = read_json(join(model_dir, COMPLETION_MARKER))
    evaluated_max = None
    if name is not None:
        requests += 1
        steps = evaluated_steps(model_dir, name)
        evaluated_max = max(steps) if steps else None
    checkpoints = checkpoints_from_listing(model_dir, names, state)
    return ModelDirScan(checkpoints, completion, evaluated_max, requests, model_dir, state_version)


def watermark(after_step: int | None, scan: ModelDirScan) -> int:
    """Report checkpoints newer than this step: `after_step`, else the evaluator's last step."""
    if after_step is not None:
        return after_step
    return scan.evaluated_max if scan.evaluated_max is not None else -1


def checkpoints_to_report(
    scan: ModelDirScan,
    after_step: int | None,
    *,
    wait_for_training_complete: bool = False,
    completed_after: float | None = None,
) -> dict[str, Any] | None:
    """The event to fire now (status, checkpoints in step order, watermark), or None to wait.

    A completion marker written before `completed_after` (an earlier run's) is ignored.
    """
    floor = watermark(after_step, scan)
    new = [c.as_dict() for c in scan.checkpoints if c.global_step > floor]
    completion = current_completion(scan.model_dir, completed_after, marker=scan.completion)
    event = {"checkpoints": new, "watermark": floor, "completion": completion}
    if completion is not None:
        status = CheckpointEventStatus.SUCCESS if new else CheckpointEventStatus.TRAINING_COMPLETE
        return {"status": status.value, **event}
    if new and not wait_for_training_complete:
        return {"status": CheckpointEventStatus.SUCCESS.value, **event}
    return None
