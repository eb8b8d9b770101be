"""Model dirs belong to an experiment: a task of another experiment fails before writing there,
naming the owner; `[tfexp] model_dir_roots` bounds where any task may write."""

from __future__ import annotations

import os
import threading

import pytest

from airflow_tfexp.experiment.storage.ownership import (
    OWNER_FILE,
    ModelDirOwnershipError,
    claim_model_dir,
    read_owner,
)
from airflow_tfexp.operators import EvaluateOperator, PublishOperator, TrainOperator
from tests.security.test_hostile_model_dirs import fingerprint

PROOF_FN = "tests.airflow.recording_experiment:leave_proof"


@pytest.fixture
def proof(tmp_path, monkeypatch):
    path = str(tmp_path / "proof")
    monkeypatch.setenv("TFEXP_TEST_PROOF", path)
    return path


def victim_dir(tmp_path) -> str:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "ckpt-20.index").write_bytes(b"the victim's checkpoint")
    claim_model_dir(str(victim), "team_a_training")
    return str(victim)


def test_the_first_writer_stamps_the_dir_and_later_writers_of_the_same_experiment_pass(model_dir):
    assert read_owner(model_dir) is None
    assert claim_model_dir(model_dir, "exp") is True
    assert claim_model_dir(model_dir, "exp") is False  # already ours: nothing rewritten
    assert read_owner(model_dir) == "exp"
    with pytest.raises(ModelDirOwnershipError, match=r"belongs to the experiment 'exp'"):
        claim_model_dir(model_dir, "other")


def test_two_experiments_claiming_at_once_leave_exactly_one_owner(tmp_path):
    # Local only: the GCS emulator does not enforce ifGenerationMatch=0 (real GCS does).
    model_dir = str(tmp_path / "m")
    outcomes: dict[str, object] = {}
    start = threading.Barrier(8)

    def claim(name: str) -> None:
        start.wait()
        try:
            outcomes[name] = claim_model_dir(model_dir, name)
        except ModelDirOwnershipError as err:
            outcomes[name] = err

    threads = [threading.Thread(target=claim, args=(f"exp{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [name for name, outcome in outcomes.items() if outcome is True]
    assert len(winners) == 1
    assert read_owner(model_dir) == winners[0]
    assert all(
        isinstance(o, ModelDirOwnershipError) for n, o in outcomes.items() if n not in winners
    )
    assert [n for n in os.listdir(model_dir) if n.startswith(".tmp-")] == []


def test_a_stamp_that_is_not_one_is_refused_not_read_as_unowned(tmp_path):
    model_dir = tmp_path / "m"
    model_dir.mkdir()
    (model_dir / OWNER_FILE).write_text("[1, 2]")
    with pytest.raises(ModelDirOwnershipError, match="is not an owner stamp"):
        claim_model_dir(str(model_dir), "exp")


def test_training_into_another_experiments_model_dir_fails_before_anything_runs(tmp_path, proof):
    victim = victim_dir(tmp_path)
    before = fingerprint(victim)
    task = TrainOperator(
        task_id="train", experiment_fn=PROOF_FN, model_dir=victim, experiment_id="team_b"
    )
    with pytest.raises(ModelDirOwnershipError) as err:
        task.execute({"params": {}})
    assert "belongs to the experiment 'team_a_training'" in str(err.value)
    assert "'team_b'" in str(err.value)
    assert not os.path.exists(proof)  # experiment_fn was never imported or called
    assert fingerprint(victim) == before


def test_evaluating_into_another_experiments_model_dir_fails_too(tmp_path, proof):
    victim = victim_dir(tmp_path)
    before = fingerprint(victim)
    task = EvaluateOperator(task_id="ev", experiment_fn=PROOF_FN, model_dir=victim)
    with pytest.raises(ModelDirOwnershipError, match="team_a_training"):
        task.execute({"params": {}})
    assert not os.path.exists(proof)
    assert fingerprint(victim) == before


def test_publishing_into_another_experiments_publish_dir_fails_before_copying(tmp_path):
    victim = victim_dir(tmp_path)
    before = fingerprint(victim)
    mine = str(tmp_path / "mine")
    task = PublishOperator(
        task_id="publish", model_dir=mine, publish_dir=victim, experiment_id="team_b"
    )
    with pytest.raises(ModelDirOwnershipError, match="publish_dir .* belongs to"):
        task.execute({"params": {}})
    assert fingerprint(victim) == before


def test_a_model_dir_outside_the_roots_fails_before_anything_is_written(
    tmp_path, proof, monkeypatch
):
    roots = tmp_path / "roots"
    monkeypatch.setenv("AIRFLOW__TFEXP__MODEL_DIR_ROOTS", f"{roots}, gs://models/teams")
    outside = str(tmp_path / "elsewhere")
    task = TrainOperator(task_id="t", experiment_fn=PROOF_FN, model_dir=outside)
    with pytest.raises(ValueError) as err:
        task.execute({"params": {}})
    assert f"Invalid value for `model_dir`. Received: {outside!r}" in str(err.value)
    assert "model_dir_roots" in str(err.value)
    assert not os.path.exists(outside) and not os.path.exists(proof)
    # a link inside the roots that leads out is outside too
    roots.mkdir()
    os.symlink(str(tmp_path), str(roots / "link"))
    linked = TrainOperator(
        task_id="t2", experiment_fn=PROOF_FN, model_dir=str(roots / "link" / "x")
    )
    with pytest.raises(ValueError, match="outside the model dir roots"):
        linked.execute({"params": {}})
    warm = TrainOperator(
        task_id="t3",
        experiment_fn=PROOF_FN,
        model_dir=str(roots / "mine"),
        warm_start_from=str(tmp_path / "victim"),
    )
    with pytest.raises(ValueError, match="`warm_start_from`"):
        warm.execute({"params": {}})
    assert not os.path.exists(proof)


def test_gs_roots_match_whole_prefix_segments():
    from airflow_tfexp.experiment.storage.confinement import within_roots

    roots = ["gs://models/teams/a", "/srv/models"]
    assert within_roots("gs://models/teams/a/run1", roots)
    assert within_roots("gs://models/teams/a", roots)
    assert not within_roots("gs://models/teams/ab/run1", roots)
    assert not within_roots("gs://other/teams/a/run1", roots)
    assert not within_roots("/srv/models-evil/x", roots)
    assert within_roots("/srv/models/x", roots)


def test_experiment_id_is_fixed_in_the_dag_file(tmp_path):
    with pytest.raises(
        ValueError, match=r"Invalid value for `experiment_id`. Received: '\{\{ params.e \}\}'"
    ):
        TrainOperator(
            task_id="t",
            experiment_fn=PROOF_FN,
            model_dir=str(tmp_path),
            experiment_id="{{ params.e }}",
        )


def test_a_model_dir_inside_another_experiments_model_dir_is_refused(tmp_path, proof):
    victim = victim_dir(tmp_path)
    before = fingerprint(victim)
    nested = os.path.join(victim, "eval_mine")
    with pytest.raises(
        ModelDirOwnershipError,
        match="is inside .*victim, the model dir of the experiment 'team_a_training'",
    ):
        claim_model_dir(nested, "team_b")
    task = TrainOperator(
        task_id="t", experiment_fn=PROOF_FN, model_dir=nested, experiment_id="team_b"
    )
    with pytest.raises(ModelDirOwnershipError):
        task.execute({"params": {}})
    assert fingerprint(victim) == before and not os.path.exists(proof)
    claim_model_dir(os.path.join(victim, "sub"), "team_a_training")  # its own experiment may


@pytest.mark.parametrize("name", ["../../victim", "a/b", ".hidden", "x" * 101])
def test_an_evaluator_name_is_one_plain_segment(tmp_path, name):
    from airflow_tfexp.experiment.evaluation.results import eval_dir

    with pytest.raises(ValueError, match="Invalid value for `name`"):
        eval_dir(str(tmp_path), name)
    with pytest.raises(ValueError, match="Invalid value for `name`"):
        EvaluateOperator(task_id="ev", experiment_fn=PROOF_FN, model_dir=str(tmp_path), name=name)


def test_a_rendered_evaluator_name_or_checkpoint_from_conf_cannot_leave_the_model_dir(
    tmp_path, proof
):
    from airflow_tfexp.operators import ContinuousEvalOperator, ExportOperator

    victim = victim_dir(tmp_path)
    mine = str(tmp_path / "mine")
    templated = EvaluateOperator(
        task_id="ev", experiment_fn=PROOF_FN, model_dir=mine, name="{{ params.n }}"
    )
    templated.name = "../victim"  # as rendered from a run's conf
    with pytest.raises(ValueError, match="Invalid value for `name`. Received: '../victim'"):
        templated.execute({"params": {}})
    continuous = ContinuousEvalOperator(
        task_id="ce", experiment_fn=PROOF_FN, model_dir=mine, name="{{ params.n }}"
    )
    continuous.name = "x/../../victim"
    with pytest.raises(ValueError, match="Invalid value for `name`"):
        continuous.execute({"params": {}})
    for cls in (EvaluateOperator, ExportOperator):
        task = cls(
            task_id="x",
            experiment_fn=PROOF_FN,
            model_dir=mine,
            checkpoint_path=os.path.join(victim, "ckpt-20"),
        )
        with pytest.raises(ValueError, match="Invalid value for `checkpoint_path`"):
            task.execute({"params": {}})
    assert not os.path.exists(proof) and not os.path.exists(mine)


@pytest.mark.parametrize(
    "model_dir, message",
    [
        ("file:///tmp/victim", "write a local path without file://"),
        ("GS://bucket/victim", "the scheme 'GS://' is not supported"),
        ("/srv/models/a/..", "may not have '..' or"),
        ("/srv/models/a/./b", "may not have '..' or"),
    ],
)
def test_model_dirs_that_could_alias_another_are_invalid(model_dir, message):
    from airflow_tfexp.experiment.storage.locations import parse_model_dir

    with pytest.raises(ValueError, match=message):
        parse_model_dir(model_dir)


def test_a_root_or_a_dir_holding_another_experiments_dir_cannot_be_claimed(tmp_path):
    root = str(tmp_path)
    victim = victim_dir(tmp_path)  # tmp_path/victim, team_a_training's
    with pytest.raises(ModelDirOwnershipError, match="is \\(or holds\\) the model dir root"):
        claim_model_dir(root, "team_b", roots=[root])
    with pytest.raises(
        ModelDirOwnershipError,
        match="holds .*victim, the model dir of the experiment 'team_a_training'",
    ):
        claim_model_dir(root, "team_b")
    assert not os.path.exists(os.path.join(root, OWNER_FILE))
    assert claim_model_dir(os.path.join(root, "team_b_dir"), "team_b", roots=[root])
    assert read_owner(victim) == "team_a_training"


def test_links_in_a_model_dir_leading_out_stop_every_write(tmp_path, proof):
    from airflow_tfexp.experiment.errors import UnsafeModelDirError
    from airflow_tfexp.operators import ExportOperator

    victim = victim_dir(tmp_path)
    before = fingerprint(victim)
    mine = tmp_path / "mine"
    (mine / "export").mkdir(parents=True)
    os.symlink(victim, str(mine / "export" / "latest"))
    os.symlink(os.path.join(victim, "ckpt-20.index"), str(mine / "eval_x"))
    for task in (
        ExportOperator(task_id="e", experiment_fn=PROOF_FN, model_dir=str(mine)),
        EvaluateOperator(task_id="v", experiment_fn=PROOF_FN, model_dir=str(mine), name="x"),
    ):
        with pytest.raises(
            UnsafeModelDirError, match="is a link to .*victim.* outside the model dir"
        ):
            task.execute({"params": {}})
    assert fingerprint(victim) == before and not os.path.exists(proof)


def test_a_results_file_that_is_a_link_is_never_appended_to(tmp_path):
    from airflow_tfexp.experiment.storage.local import LOCAL

    target = tmp_path / "victim.jsonl"
    target.write_text("theirs\n")
    os.symlink(str(target), str(tmp_path / "results.jsonl"))
    with pytest.raises(OSError):
        LOCAL.append_line(str(tmp_path / "results.jsonl"), '{"global_step": 1}')
    assert target.read_text() == "theirs\n"


def test_a_blessing_naming_a_path_outside_the_model_dir_is_not_published(tmp_path):
    import json

    model_dir = tmp_path / "m"
    model_dir.mkdir()
    elsewhere = tmp_path / "secret_export"
    elsewhere.mkdir()
    (elsewhere / "saved_model.pb").write_bytes(b"not a blessed model")
    (model_dir / "blessing.json").write_text(
        json.dumps(
            {
                "blessed": True,
                "candidate_export": str(elsewhere),
                "reason": "x",
                "metric": "loss",
                "candidate": 0.1,
                "baseline": None,
            }
        )
    )
    publish = str(tmp_path / "publish")
    task = PublishOperator(task_id="p", model_dir=str(model_dir), publish_dir=publish, outlets=[])
    with pytest.raises(ValueError, match="which is not in the model dir: refusing to publish it"):
        task.execute({"dag_run": None})
    assert not os.path.exists(os.path.join(publish, "1"))


def test_latest_blessed_pointing_outside_the_roots_is_not_warm_started_from(
    tmp_path, proof, monkeypatch
):
    import json

    roots = tmp_path / "roots"
    publish = roots / "publish"
    publish.mkdir(parents=True)
    (publish / "LATEST").write_text(json.dumps({"version": 1, "path": str(tmp_path / "outside")}))
    monkeypatch.setenv("AIRFLOW__TFEXP__MODEL_DIR_ROOTS", str(roots))
    task = TrainOperator(
        task_id="t",
        experiment_fn=PROOF_FN,
        model_dir=str(roots / "mine"),
        warm_start_from="latest_blessed",
        publish_dir=str(publish),
    )
    with pytest.raises(ValueError, match="outside the model dir roots"):
        task.execute({"params": {}})
    assert not os.path.exists(proof)


def test_the_checkpoint_sensor_lists_no_dir_outside_the_roots(tmp_path, monkeypatch):
    from airflow_tfexp.sensors import CheckpointSensor

    monkeypatch.setenv("AIRFLOW__TFEXP__MODEL_DIR_ROOTS", str(tmp_path / "roots"))
    sensor = CheckpointSensor(task_id="w", model_dir=str(tmp_path / "outside"), deferrable=False)
    with pytest.raises(ValueError, match="outside the model dir roots"):
        sensor.poke({"params": {}})


def test_a_results_file_hard_linked_from_another_dir_or_in_a_linked_dir_is_not_appended_to(
    tmp_path,
):
    from airflow_tfexp.experiment.errors import UnsafeModelDirError
    from airflow_tfexp.experiment.storage.local import LOCAL

    theirs = tmp_path / "theirs" / "eval_holdout"
    theirs.mkdir(parents=True)
    (theirs / "results.jsonl").write_text("theirs\n")
    mine = tmp_path / "mine" / "eval_holdout"
    mine.mkdir(parents=True)
    os.link(str(theirs / "results.jsonl"), str(mine / "results.jsonl"))
    with pytest.raises(UnsafeModelDirError, match="hard-linked from elsewhere"):
        LOCAL.append_line(str(mine / "results.jsonl"), "{}")
    os.symlink(str(theirs), str(tmp_path / "mine" / "eval_x"))
    with pytest.raises(UnsafeModelDirError, match="is a link: refusing to append"):
        LOCAL.append_line(str(tmp_path / "mine" / "eval_x" / "results.jsonl"), "{}")
    assert (theirs / "results.jsonl").read_text() == "theirs\n"


def test_an_export_dir_linked_mid_task_is_neither_written_nor_collected(tmp_path):
    from airflow_tfexp.experiment.errors import UnsafeModelDirError
    from airflow_tfexp.experiment.export.export_dirs import ExportTarget, garbage_collect_exports

    theirs = tmp_path / "theirs" / "export" / "latest"
    for version in ("0000000001", "0000000002", "0000000003"):
        (theirs / version).mkdir(parents=True)
        (theirs / version / "saved_model.pb").write_bytes(b"their model")
    (tmp_path / "mine" / "export").mkdir(parents=True)
    target = ExportTarget(str(tmp_path / "mine" / "export" / "latest"))  # before the link
    os.rmdir(target.export_dir_base)  # empty: the export is still being written elsewhere
    os.symlink(str(theirs), str(tmp_path / "mine" / "export" / "latest"))  # planted mid-task
    with pytest.raises(UnsafeModelDirError, match="refusing to write or delete exports"):
        garbage_collect_exports(str(tmp_path / "mine" / "export" / "latest"), 1)
    with pytest.raises(UnsafeModelDirError):
        target.commit()
    assert sorted(os.listdir(theirs)) == ["0000000001", "0000000002", "0000000003"]


@pytest.mark.parametrize("value", ["/srv/models/a\x00b", "/srv/models/a\nb"])
def test_control_characters_make_an_invalid_model_dir(value):
    from airflow_tfexp.experiment.storage.locations import parse_model_dir

    with pytest.raises(ValueError, match="may not hold control characters"):
        parse_model_dir(value)
