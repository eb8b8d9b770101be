"""ApproveModelOperator: a person approves a blessed candidate before it is published.

Built on Airflow's human-in-the-loop `ApprovalOperator`: on Airflow 3.3 the task waits in the
`awaiting_input` state (no worker slot, no triggerer) with the candidate's and the baseline's
metrics and a link to the run's Experiments page. Approve: the publish step runs. Reject, or
no answer within `response_timeout`: the publish step is skipped. Either way the decision, who
made it and why go to the run's lineage (`run.json`, section `approval`) and to OpenLineage.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import Param, ParamsDict

from airflow_tfexp._airflow import is_templated, stops_on_sigterm
from airflow_tfexp._approval_rules import check_approvers, check_response_timeout
from airflow_tfexp.experiment.retraining.blessing import is_blessed
from airflow_tfexp.experiment.storage.locations import parse_model_dir
from airflow_tfexp.operators._approval_text import duration
from airflow_tfexp.operators._lineage import LineageMixin

if TYPE_CHECKING:
    from airflow.sdk import Context

DEFAULT_RESPONSE_TIMEOUT = datetime.timedelta(days=1)
REASON = "reason"


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
        response_timeout = check_response_timeout(response_timeout)
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
            assigned_users=check_approvers(approvers),
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
        if not is_blessed(blessing):
            raise AirflowSkipException(
                "Not asking for approval: the candidate was not blessed "
                f"({str(blessing.get('reason'))[:300]})."
            )
        from airflow_tfexp.operators._approval_text import approval_body

        self.body = approval_body(
            blessing, self.publish_dir, _run_page(context), self.response_timeout
        )
        self.log.info(
            "Waiting for a person to approve %s (Reject after %s without an answer).",
            blessing.get("candidate_export"),
            self.response_timeout or "no limit",
        )
        with stops_on_sigterm(self.task_id):  # under dag.test() the wait for an answer, too
            return super().execute(context)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        """Record the answer, then let ApprovalOperator act on it: Approve returns, Reject
        skips the publish step (by raising, so the record is written first)."""
        from airflow_tfexp.experiment.retraining.lineage import update_lineage

        if "error" in event:
            return super().execute_complete(context, event)
        event = {**event, "params_input": self.form_answer(event.get("params_input"))}
        self.validate_chosen_options(event["chosen_options"])
        event = self.from_an_approver(event)
        record = answer_record(event, self.candidate_blessing(), self.response_timeout)
        update_lineage(self.model_dir, {"approval": record})
        by = f" by {record['responded_by']}" if record["responded_by"] else ""
        self.log.info("%s%s: %s", record["decision"].upper(), by, record["reason"])
        self.remember_for_lineage(context, record)
        super().execute_complete(context, event)
        return record

    def from_an_approver(self, event: dict[str, Any]) -> dict[str, Any]:
        """The answer, or a Reject when someone outside `approvers` gave it (Airflow's API
        checks this too: a second check where the decision is acted on)."""
        allowed = {u["id"] for u in self.assigned_users or ()}
        user = event.get("responded_by_user")
        user_id = user.get("id") if isinstance(user, Mapping) else None
        if not allowed or event.get("timedout") or user_id in allowed:
            return event
        self.log.error("Refusing the answer of %r: not among the approvers %s.", user_id, allowed)
        reason = f"answered by {user_id!r}, who is not among the approvers"
        return {
            **event,
            "chosen_options": [ApprovalOperator.REJECT],
            "params_input": {**event["params_input"], REASON: reason},
        }

    def form_answer(self, params_input: Any) -> dict[str, Any]:
        """The form's fields as answered: fields the form does not have are ignored (with a
        warning; Airflow stores an answer as it comes, and locks it), the reason is text."""
        given = dict(params_input) if isinstance(params_input, Mapping) else {}
        extra = sorted(str(k) for k in given if k not in self.params)
        if extra:
            self.log.warning("Ignoring answer fields the form does not have: %s", extra[:20])
        answer = {k: given[k] for k in self.params if k in given}
        if REASON in answer:
            answer[REASON] = str(answer[REASON] or "")[:2000]
        return answer

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
        reason = f"no answer within {duration(timeout)}"
    responded_at = event.get("responded_at")
    if isinstance(responded_at, datetime.datetime):
        responded_at = responded_at.isoformat()
    user = user if isinstance(user, Mapping) else {}
    return {
        "decision": decision,
        "reason": reason,
        "responded_by": str(user.get("name") or user.get("id") or "") or None,
        "responded_by_id": str(user["id"]) if user.get("id") is not None else None,
        "responded_at": str(responded_at) if responded_at is not None else None,
        "candidate_export": blessing.get("candidate_export"),
    }


def _run_page(context: Context) -> str:
    from airflow_tfexp.links import run_page_url

    run = context.get("dag_run")
    return run_page_url(getattr(run, "dag_id", ""), getattr(run, "run_id", ""))
