"""The checkpoints an event-driven run was triggered for, from its asset events."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_tfexp._airflow import is_templated
from airflow_tfexp.experiment.storage.locations import parse_model_dir

if TYPE_CHECKING:
    from airflow.sdk import Context


def checkpoints_from_events(events: list[dict[str, Any]], model_dir: str) -> list[dict[str, Any]]:
    """`[{"checkpoint_path", "global_step"}]` in step order, each checkpoint once, from asset
    event extras written by `CheckpointEventTrigger` (payload under "payload")."""
    found: dict[int, dict[str, Any]] = {}
    for extra in events:
        payload = extra.get("payload", extra)
        if not isinstance(payload, dict) or "checkpoint_path" not in payload:
            continue
        if payload.get("model_dir", model_dir).rstrip("/") != model_dir.rstrip("/"):
            continue
        step = int(payload["global_step"])
        found[step] = {"checkpoint_path": payload["checkpoint_path"], "global_step": step}
    return [found[step] for step in sorted(found)]


class TriggeringCheckpointsOperator(BaseOperator):
    """The checkpoints this event-driven run must evaluate: map an evaluation over its output.

    Those named by the asset events that triggered the run (several may be collapsed into one
    run), plus every complete checkpoint evaluator `name` has not evaluated yet, minus those it
    has. Why more than the events: Airflow queues an asset-triggered run when the first event
    arrives and gives it only the events up to that moment; events arriving in the same instant
    wait for the next event to be seen. Looking at the model dir too, no checkpoint waits, and
    a late event for a checkpoint already evaluated costs nothing.

    :param model_dir: the watched model dir (templated).
    :param name: the evaluator (results in `model_dir/eval_<name>/`); None: events only.
    :return: ``[{"checkpoint_path", "global_step"}, ...]`` in step order, each once.
    """

    template_fields: Sequence[str] = ("model_dir",)
    ui_color = "#e8f4fd"

    def __init__(self, *, model_dir: str, name: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not is_templated(model_dir):
            parse_model_dir(model_dir)
        self.model_dir = model_dir
        self.name = name

    def execute(self, context: Context) -> list[dict[str, Any]]:
        from airflow_tfexp.operators._ownership import check_inside_roots

        parse_model_dir(self.model_dir)
        check_inside_roots(self.model_dir, "model_dir")
        extras = [
            dict(getattr(ref, "extra", None) or {})
            for refs in dict(context.get("triggering_asset_events") or {}).values()
            for ref in refs
        ]
        from_events = checkpoints_from_events(extras, self.model_dir)
        self.log.info(
            "%d asset event(s) name checkpoint(s) %s.",
            len(extras),
            ", ".join(str(c["global_step"]) for c in from_events) or "none",
        )
        if self.name is None:
            return from_events
        from airflow_tfexp.experiment.evaluation.model_dir_scan import scan_model_dir
        from airflow_tfexp.experiment.evaluation.results import evaluated_steps

        done = evaluated_steps(self.model_dir, self.name)
        wanted = {c["global_step"]: c for c in from_events}
        for checkpoint in scan_model_dir(self.model_dir).checkpoints:
            wanted.setdefault(checkpoint.global_step, checkpoint.as_dict())
        already = sorted(step for step in wanted if step in done)
        if already:
            self.log.info("Already evaluated by %r, skipped: %s.", self.name, already)
        checkpoints = [wanted[step] for step in sorted(wanted) if step not in done]
        self.log.info(
            "To evaluate: %s.", ", ".join(str(c["global_step"]) for c in checkpoints) or "nothing"
        )
        return checkpoints
