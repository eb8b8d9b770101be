"""`python -m airflow_tfexp.experiment`: run one Experiment method; what a remote worker runs.

    python -m airflow_tfexp.experiment --experiment-fn module:function --model-dir DIR \
        [--schedule NAME] [--params JSON] [--schedule-args JSON]

`experiment_fn(run_config, params)` must return an Experiment. Without `--schedule` the method is
learn_runner's default for the `TF_CONFIG` task type. `--schedule tune` runs a sweep's trials
in this process (`tune`; --schedule-args holds its study, trials, ...). The result is printed as
one JSON line.
"""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

from airflow_tfexp.experiment.evaluation.results import to_jsonable
from airflow_tfexp.experiment.experiment import Experiment
from airflow_tfexp.experiment.experiment_fn import build_experiment
from airflow_tfexp.experiment.run_config import CHIEF, EVALUATOR, MASTER, PS, WORKER, RunConfig

SCHEDULES = (
    "train",
    "evaluate",
    "continuous_eval",
    "continuous_eval_on_train_data",
    "train_and_evaluate",
    "continuous_train_and_eval",
    "local_run",
    "test",
    "run_std_server",
    "export",  # the latest (or --schedule-args' checkpoint_path) through the export strategies
    "tune",  # trials of a sweep (learn_runner.tune): --schedule-args '{"study": {...}, "trials": n}'
)
# what --schedule-args may give `tune` (the experiment_fn, model dir and params are flags)
TUNE_ARGS = ("study", "trials", "storage_url", "timeout_secs", "worker", "export_best")
_DEFAULT_SCHEDULES = {
    None: "train_and_evaluate",
    MASTER: "train_and_evaluate",
    CHIEF: "train_and_evaluate",
    WORKER: "train",
    PS: "run_std_server",
    EVALUATOR: "continuous_eval",
}


def default_schedule(config: RunConfig) -> str:
    """learn_runner's choice for this task type."""
    return _DEFAULT_SCHEDULES[config.task_type]


def summarize(schedule: str, value: Any, experiment: Experiment) -> dict[str, Any]:
    """A JSON-able summary of what the method returned."""
    summary: dict[str, Any] = {"schedule": schedule, "model_dir": experiment.model_dir}
    if isinstance(value, tuple) and len(value) == 2:
        eval_result, export_results = value
        summary["metrics"] = to_jsonable(eval_result) if eval_result else None
        summary["export_paths"] = list(export_results or [])
    elif isinstance(value, dict):
        summary["metrics"] = to_jsonable(value)
    elif isinstance(value, list):  # export: one path (or None) per export strategy
        summary["export_paths"] = value
    latest = experiment.latest_checkpoint()
    summary["latest_checkpoint"] = latest.as_dict() if latest else None
    return summary


def _parse_object(flag: str, raw: str | None) -> dict[str, Any]:
    if raw is None:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as err:
        raise ValueError(
            f"Invalid value for `{flag}`: not JSON ({err}). Received: {raw!r}."
        ) from None
    if not isinstance(value, dict):
        raise ValueError(f"Invalid value for `{flag}`. Received: {raw!r}. Expected a JSON object.")
    return value


def _check_schedule_args(experiment: Experiment, schedule: str, kwargs: dict[str, Any]) -> None:
    accepted = inspect.signature(getattr(experiment, schedule)).parameters
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ValueError(
            f"Invalid `--schedule-args` for {schedule}: unknown {unknown}. Allowed: {sorted(accepted)}."
        )


def run_tune(
    args: argparse.Namespace, params: dict[str, Any], schedule_args: dict[str, Any]
) -> dict:
    """`--schedule tune`: the sweep's trials in this process; ValueError for bad arguments."""
    from airflow_tfexp.experiment.tuning.tune import tune

    unknown = sorted(set(schedule_args) - set(TUNE_ARGS))
    missing = sorted({"study", "trials"} - set(schedule_args))
    if unknown or missing:
        raise ValueError(
            f"Invalid `--schedule-args` for tune: unknown {unknown}, missing {missing}. "
            f"Allowed: {list(TUNE_ARGS)} (study and trials required)."
        )
    out = tune(args.experiment_fn, params=params, model_dir=args.model_dir, **schedule_args)
    return {"schedule": "tune", "model_dir": args.model_dir, **out}


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_tfexp.experiment", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--experiment-fn", required=True, help='"module:function" returning an Experiment'
    )
    parser.add_argument(
        "--model-dir", required=True, help="directory for checkpoints, results and exports"
    )
    parser.add_argument(
        "--schedule", choices=SCHEDULES, help="Experiment method (default: by TF_CONFIG task type)"
    )
    parser.add_argument("--params", help="JSON object of hyperparameters passed to experiment_fn")
    parser.add_argument(
        "--schedule-args",
        help="JSON object of keyword arguments for the method, e.g. '{\"every_checkpoint\": true}'",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        run_config = RunConfig(model_dir=args.model_dir)
        params = _parse_object("--params", args.params)
        schedule_args = _parse_object("--schedule-args", args.schedule_args)
        if args.schedule == "tune":
            print(json.dumps(run_tune(args, params, schedule_args), sort_keys=True), flush=True)
            return 0
        experiment = build_experiment(args.experiment_fn, run_config, params)
        schedule = args.schedule or default_schedule(run_config)
        _check_schedule_args(experiment, schedule, schedule_args)
    except ValueError as err:
        parser.exit(2, f"error: {err}\n")
    logging.getLogger(__name__).info(
        "Running %s in %s (task %s:%s).",
        schedule,
        args.model_dir,
        run_config.task_type,
        run_config.task_id,
    )
    value = getattr(experiment, schedule)(**schedule_args)
    print(json.dumps(summarize(schedule, value, experiment), sort_keys=True), flush=True)
    return 0
