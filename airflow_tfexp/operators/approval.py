"""ApproveModelOperator: a person approves a blessed candidate before it is published.

Built on Airflow's human-in-the-loop `ApprovalOperator`: on Airflow 3.3 the task waits in the
`awaiting_input` state (no worker slot, no triggerer) with the candidate's and the baseline's
metrics and a link to the run's Experiments page. Approve: the publish step runs. Reject, or
no answer within `response_timeout`: the publish step is skipped. Either way the decision, who
made it and why go to the run's lineage (`run.json`, section `approval`) and to OpenLineage.
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import Param, ParamsDict

from airflow_tfexp._airflow import is_templated
from airflow_tfexp.experiment.storage.locations import parse_model_dir
from airflow_tfexp.operators._lineage import LineageMixin

if TYPE_CHECKING:
    from airflow.sdk import Context

DEFAULT_RESPONSE_TIMEOUT = datetime.timedelta(days=1)
REASON = "reason"
_PLAIN = re.compile(r"[^\w./:@+-]")


class ApproveModelOperator(LineageMixin, ApprovalOperator):
    """Ask a person to approve the blessed candidate of `model_dir` (between bless and publish).

    A candidate that was not blessed is skipped without asking anyone (the publish step then
    skips too). The answer's `reason` (a form field) is recorded with the decision.

    :param model_dir: the run's model dir, where `blessing.json` is (templated).
    :param publish_dir: where the candidate would be published (templated; shown to the person).
    :param response_timeout: how long to wait for an answer (a timedelta or seconds); then the
        answer is Reject. Default: one day.
    :param approvers: Airflow user ids who may answer (None: anyone with access to the DAG's
        human-in-the-loop actions). Fixed in the DAG file.
    :param trial: a sweep's trial (the best, say): its model dir holds the blessing.
    """

    template_fields: Sequence[str] = (
        *ApprovalOperator.template_fields,
        "model_dir",
        "publish_dir",
        "trial",
    )
    ui_color = "#fff59d"

    def __init__(
        self,
        *,
        model_dir: str,
        publish_dir: str | None = None,
        response_timeout: datetime.timedelta | float | None = DEFAULT_RESPONSE_TIMEOUT,
        approvers: Sequence[str] | None = None,
        trial: Any = None,
        **kwargs: Any,
    ) -> None:
        for value, what in ((model_dir, "model_dir"), (publish_dir, "publish_dir")):
            if value is not None and not is_templated(value):
                parse_model_dir(value, what)
        if isinstance(response_timeout, int | float) and not isinstance(response_timeout, bool):
            response_timeout = datetime.timedelta(seconds=response_timeout)
        if response_timeout is not None and (
            not isinstance(response_timeout, datetime.timedelta)
            or response_timeout.total_seconds() <= 0
        ):
            raise ValueError(
                f"Invalid value for `response_timeout`. Received: {response_timeout!r}. Expected "
                "a positive timedelta or number of seconds (then the answer is Reject)."
            )
        kwargs.setdefault("subject", "Publish the candidate model of {{ dag.dag_id }}?")
        # Airflow hands the DAG's params in too (as Params marked "dag"): the form shows only
        # the task's own, so they are passed on as Param objects, with the reason field added.
        given = kwargs.pop("params", None)
        given = given if isinstance(given, ParamsDict) else ParamsDict(given or {})
        reason = Param(
            "",
            type="string",
            maxLength=2000,
            title="Reason",
            description="Why you approve or reject: recorded in the run's lineage.",
            source="task",
        )
        super().__init__(
            defaults=[ApprovalOperator.REJECT],
            response_timeout=response_timeout,
            params=ParamsDict({**{k: given.get_param(k) for k in given}, REASON: reason}),
            assigned_users=_assigned(approvers),
            **kwargs,
        )
        self.model_dir = model_dir
        self.publish_dir = publish_dir
        self.trial = trial

    def candidate_blessing(self) -> dict[str, Any]:
        """The blessing of the (rendered) model dir, inside the configured roots."""
        from airflow_tfexp.experiment.retraining.blessing import read_blessing
        from airflow_tfexp.operators._ownership import check_inside_roots

        if self.trial is not None:
            from airflow_tfexp.operators._tuning import checked_trial

            parse_model_dir(self.model_dir)
            self.model_dir = checked_trial(self.trial, self.model_dir)["model_dir"]
            self.trial = None
        for value, what in ((self.model_dir, "model_dir"), (self.publish_dir, "publish_dir")):
            if value is not None:
                parse_model_dir(value, what)
                check_inside_roots(value, what)
        blessing = read_blessing(self.model_dir)
        if blessing is None:
            raise ValueError(
                f"No blessing in {self.model_dir}: run the bless step (BlessOperator) first."
            )
        return blessing

    def execute(self, context: Context) -> Any:
        from airflow.sdk.exceptions import AirflowSkipException

        blessing = self.candidate_blessing()
        if not blessing.get("blessed"):
            raise AirflowSkipException(
                f"Not asking for approval: the candidate was not blessed ({blessing.get('reason')})."
            )
        self.body = approval_body(
            blessing, self.publish_dir, _run_page(context), self.response_timeout
        )
        self.log.info(
            "Waiting for a person to approve %s (Reject after %s without an answer).",
            blessing.get("candidate_export"),
            self.response_timeout or "no limit",
        )
        return super().execute(context)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        """Record the answer, then let ApprovalOperator act on it: Approve returns, Reject
        skips the publish step (by raising, so the record is written first)."""
        from airflow_tfexp.experiment.retraining.lineage import update_lineage

        if "error" in event:
            return super().execute_complete(context, event)
        self.validate_chosen_options(event["chosen_options"])
        self.validate_params_input(event.get("params_input") or {})
        record = answer_record(event, self.candidate_blessing(), self.response_timeout)
        update_lineage(self.model_dir, {"approval": record})
        self.log.info(
            "%s by %s: %s", record["decision"].upper(), record["responded_by"], record["reason"]
        )
        self.remember_for_lineage(context, record)
        super().execute_complete(context, event)
        return record

    def note_lineage(self, step: Any, result: Any) -> None:
        if isinstance(result, Mapping):
            step.add_inputs(result.get("candidate_export"))
            step.approval = dict(result)
        else:
            step.add_inputs(self.model_dir)


def answer_record(
    event: Mapping[str, Any], blessing: Mapping[str, Any], timeout: datetime.timedelta | None
) -> dict[str, Any]:
    """The decision as the lineage keeps it: approved, rejected or timed_out (no answer in
    time: the default, Reject), with the reason, who answered and when."""
    user = event.get("responded_by_user")
    approved = list(event["chosen_options"]) == [ApprovalOperator.APPROVE]
    decision = "approved" if approved else "timed_out" if event.get("timedout") else "rejected"
    reason = (event.get("params_input") or {}).get(REASON) or None
    if decision == "timed_out" and not reason:
        reason = f"no answer within {timeout}"
    return {
        "decision": decision,
        "reason": reason,
        "responded_by": (user.get("name") or user.get("id")) if isinstance(user, Mapping) else None,
        "responded_at": str(event.get("responded_at")),
        "candidate_export": blessing.get("candidate_export"),
    }


def _assigned(approvers: Sequence[str] | None) -> list[dict[str, str]] | None:
    if approvers is None:
        return None
    if isinstance(approvers, str) or not all(isinstance(a, str) and a for a in approvers):
        raise ValueError(
            f"Invalid value for `approvers`. Received: {approvers!r}. Expected a list of Airflow "
            "user ids."
        )
    return [{"id": a, "name": a} for a in approvers]


def _run_page(context: Context) -> str:
    from airflow_tfexp.links import run_page_url

    run = context.get("dag_run")
    return run_page_url(getattr(run, "dag_id", ""), getattr(run, "run_id", ""))


def approval_body(
    blessing: Mapping[str, Any],
    publish_dir: str | None,
    run_page: str,
    timeout: datetime.timedelta | None,
) -> str:
    """Markdown for the person answering: both sides' metrics, where it goes, the run page.
    Names and paths from the model dir are reduced to plain characters (a hostile file must
    not write markup into the approval page)."""
    candidate = blessing.get("candidate_metrics") or {}
    baseline = blessing.get("baseline_metrics") or {}
    version = blessing.get("baseline_version")
    rows = [
        f"| {_plain(name)} | {_number(candidate.get(name))} | {_number(baseline.get(name))} |"
        for name in sorted(set(candidate) | set(baseline), key=str)[:50]
    ]
    lines = [
        f"**Candidate**: `{_plain(blessing.get('candidate_export'))}`",
        f"**Blessed** on `{_plain(blessing.get('metric'))}`: {_plain(blessing.get('reason'), 300, keep_spaces=True)}",
        "",
        f"| metric | candidate | baseline ({'version ' + _plain(version) if version is not None else 'none published'}) |",
        "| --- | --- | --- |",
        *rows,
        "",
        f"Approve publishes it to `{_plain(publish_dir)}`. Reject keeps production as it is"
        + (f"; no answer within {timeout} is a Reject." if timeout else "."),
        "Give a reason either way: it is recorded in the run's lineage.",
        "",
        f"[The run's Experiments page]({run_page})",
    ]
    return "\n".join(lines)


def _plain(value: Any, limit: int = 200, keep_spaces: bool = False) -> str:
    text = str(value)[:limit]
    if keep_spaces:
        return re.sub(r"[^\w .,:;()'=<>+-]", "", text).replace("<", "&lt;").replace(">", "&gt;")
    return _PLAIN.sub("_", text)


def _number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return "-"
    return f"{value:.6g}"
