"""Evaluator registrations are per instance: two evaluators of one name (mapped tasks of one
evaluator, a retry beside a straggler) each keep their own claim, and one withdrawing never
drops the other's protection."""

from __future__ import annotations

import json

from airflow_tfexp.experiment.evaluation.coordination import (
    REGISTRATION_FILE,
    EvaluatorRegistration,
    protection_reason,
)


def test_withdrawing_one_same_name_evaluator_keeps_the_others_checkpoint_protected(model_dir):
    first = EvaluatorRegistration(model_dir, "holdout", every_checkpoint=False)
    second = EvaluatorRegistration(model_dir, "holdout", every_checkpoint=False)
    first.heartbeat(evaluating_step=20)
    second.heartbeat(evaluating_step=40)
    assert first.path != second.path
    assert protection_reason(model_dir, 20) == "evaluator 'holdout' is evaluating it"
    first.withdraw()
    assert protection_reason(model_dir, 20) is None
    assert protection_reason(model_dir, 40) == "evaluator 'holdout' is evaluating it"
    second.withdraw()
    assert protection_reason(model_dir, 40) is None


def test_one_instance_id_is_one_registration_across_passes(tmp_path):
    model_dir = str(tmp_path)
    for step in (10, 20, 30):  # three passes of one deferred task, each a new process
        EvaluatorRegistration(model_dir, "c", False, instance_id="task-a").heartbeat(step)
    assert sorted(p.name for p in (tmp_path / "eval_c").iterdir()) == ["evaluator-task-a.json"]
    assert protection_reason(model_dir, 30) is not None
    assert protection_reason(model_dir, 10) is None


def test_a_registration_of_the_earlier_layout_still_protects(tmp_path):
    import time

    (tmp_path / "eval_old").mkdir()
    (tmp_path / "eval_old" / REGISTRATION_FILE).write_text(
        json.dumps(
            {
                "name": "old",
                "every_checkpoint": False,
                "evaluating_step": 7,
                "heartbeat": time.time(),
            }
        )
    )
    assert protection_reason(str(tmp_path), 7) == "evaluator 'old' is evaluating it"
