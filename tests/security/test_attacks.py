"""The attacks of a user who may only trigger, on a real Airflow: api-server, scheduler,
dag-processor and triggerer on 127.0.0.1, LocalExecutor, and an auth manager with team rights.

alice may trigger and read the `team_a_*` DAGs; bob may read the `team_b_*` DAGs and their task
instances; carol may read the `team_b_*` DAGs but not their task instances. Team B's model dir
holds a secret. Every attack is triggered over the REST API as alice, all at once (the cluster
runs them side by side), then each test checks one: the attack failed with a clear error, its
side-effect file does not exist, team B's files are byte-identical, and the Experiments pages
answer 401/403 or problem lines, never 500.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
import uuid

import pytest
import yaml

from airflow_tfexp.experiment.storage.ownership import claim_model_dir
from tests.airflow.recording_experiment import RECEIVED
from tests.e2e.cluster import AirflowCluster
from tests.security.test_hostile_model_dirs import fingerprint

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
ONE_LINER = "from airflow_tfexp.dag_factory import load_experiment_dag\ndag = load_experiment_dag(__file__[:-3] + '.yaml')\n"
PASSWORDS = {"admin": "admin-pw", "alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw"}
RIGHTS = {
    "alice": {"team_a_": ["GET", "POST", "PUT", "TI"]},
    "bob": {"team_b_": ["GET", "TI"]},
    "carol": {"team_b_": ["GET"]},
}
SECRET = "team-b-secret-" + "7" * 12
TINY = "tests.experiment.tiny_experiment"

HAND_WRITTEN = """
from datetime import datetime
from airflow.sdk import DAG
from airflow_tfexp.operators import TrainOperator

with DAG("team_a_hand", schedule=None, start_date=datetime(2026, 1, 1), default_args={"retries": 0},
         params={"model_dir": "/tmp/unused", "note": "hello", "train_steps": 5,
                 "save_checkpoints_steps": 5, "log_step_count_steps": 5}):
    TrainOperator(task_id="train", experiment_fn="tests.airflow.recording_experiment:experiment_fn",
                  model_dir="{{ params.model_dir }}", delay_secs=0)
"""


def shell_template(proof: str) -> str:
    return "{{ cycler.__init__.__globals__.os.system('touch " + proof + "') }}"


def factory(dag_id: str, model_dir: str, **extra) -> dict:
    return {
        "dag_id": dag_id,
        "schedule_mode": "local",
        "model_dir": model_dir,
        "model_fn": f"{TINY}:model_fn",
        "train_input_fn": f"{TINY}:train_input_fn",
        "eval_input_fn": f"{TINY}:eval_input_fn",
        "train_steps": 10,
        "eval_steps": 2,
        "run_config": {"save_checkpoints_steps": 10, "keep_checkpoint_max": None},
        "default_args": {"retries": 0},
        **extra,
    }


def alias_bomb() -> str:
    lols = ", ".join(['"lol"'] * 9)
    levels = [f"l0: &l0 [{lols}]"] + [
        f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 9)
    ]
    return yaml.safe_dump(factory("team_a_bomb", "/tmp/unused")) + "\n".join(levels) + "\n"


class Session:
    """Calls to the cluster as one user (a JWT from the token endpoint)."""

    def __init__(self, cluster: AirflowCluster, user: str | None) -> None:
        self.cluster = cluster
        self.token = cluster.login(user, PASSWORDS[user]) if user else None

    def call(self, method: str, path: str, body=None) -> tuple[int, str]:
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(
            f"http://localhost:{self.cluster.port}{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers=headers,
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()

    def trigger(self, dag_id: str, conf: dict) -> tuple[int, str]:
        return self.call(
            "POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf}
        )


def make_victim(root) -> str:
    """Team B's model dir: stamped as theirs, a checkpoint, results and a run.json with a secret."""
    victim = root / "models" / "team_b"
    (victim / "eval").mkdir(parents=True)
    (victim / "ckpt-20.index").write_bytes(b"team b's checkpoint index")
    (victim / "ckpt-20.data-00000-of-00001").write_bytes(b"team b's weights")
    (victim / "checkpoint").write_text(
        'model_checkpoint_path: "ckpt-20"\nall_model_checkpoint_paths: "ckpt-20"\n'
    )
    (victim / "eval" / "results.jsonl").write_text(
        '{"global_step": 20, "metrics": {"loss": 0.3}}\n'
    )
    (victim / "run.json").write_text(json.dumps({"params": {"api_key": SECRET}}))
    claim_model_dir(str(victim), "team_b_victim")
    return str(victim)


def hostile_state_dir(root) -> str:
    """Alice's own model dir, with a state file naming team B's checkpoints."""
    mine = root / "models" / "team_a" / "hostile_state"
    mine.mkdir(parents=True)
    (mine / "checkpoint").write_text(
        'model_checkpoint_path: "../../team_b/ckpt-20"\nall_model_checkpoint_paths: "../../team_b/ckpt-20"\n'
    )
    return str(mine)


@pytest.fixture(scope="module")
def attacks(tmp_path_factory):
    root = tmp_path_factory.mktemp("attacks")
    dags = root / "dags"
    dags.mkdir()
    models = root / "models"
    victim = make_victim(root)
    (dags / "team_a_hand.py").write_text(HAND_WRITTEN)
    declared = {
        "model_dir": {"default": str(models / "team_a" / "factory"), "schema": {"type": "string"}},
        "learning_rate": {"default": 0.1, "schema": {"type": "number", "exclusiveMinimum": 0}},
    }
    configs = {
        "team_a_factory": factory("team_a_factory", "{{ params.model_dir }}", params=declared),
        "team_b_victim": factory("team_b_victim", victim),
    }
    for dag_id, config in configs.items():
        (dags / f"{dag_id}.yaml").write_text(yaml.safe_dump(config))
        (dags / f"{dag_id}.py").write_text(ONE_LINER)
    (dags / "team_a_bomb.yaml").write_text(alias_bomb())
    (dags / "team_a_bomb.py").write_text(ONE_LINER)
    passwords = root / "passwords.json"
    passwords.write_text(json.dumps(PASSWORDS))
    proof = str(root / "proof")
    cluster = AirflowCluster(str(root / "home"), str(dags), executor="LocalExecutor")
    cluster.env.update(
        {
            "AIRFLOW__CORE__AUTH_MANAGER": "tests.security.team_auth_manager.TeamAuthManager",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,alice:user,bob:viewer,carol:viewer",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__TFEXP__MODEL_DIR_ROOTS": str(models),
            "AIRFLOW__TFEXP__UI_MAX_FILE_MB": "1",
            "TFEXP_TEST_DAG_RIGHTS": json.dumps(RIGHTS),
            "TFEXP_TEST_PROOF": proof,
        }
    )
    cluster.start_components()
    try:
        admin = Session(cluster, "admin")
        cluster.token = admin.token
        for dag_id in ("team_a_hand", "team_a_factory", "team_b_victim"):
            cluster.wait_for(lambda d=dag_id: cluster._dag_exists(d), 180, f"DAG {dag_id}")
        alice = Session(cluster, "alice")
        before = fingerprint(victim)
        outside = f"/tmp/tfexp-outside-{uuid.uuid4().hex}"
        mine = str(models / "team_a" / "mine")
        runs_conf = {
            "template": ("team_a_hand", {"model_dir": mine, "note": shell_template(proof)}),
            "spec": (
                "team_a_factory",
                {
                    "tfexp_spec": json.dumps(
                        {"model_fn": "tests.airflow.recording_experiment:leave_proof"}
                    ),
                    "model_fn": "tests.airflow.recording_experiment:leave_proof",
                },
            ),
            "other_team": ("team_a_hand", {"model_dir": victim}),
            "outside_roots": ("team_a_hand", {"model_dir": outside}),
            "dot_dot": ("team_a_hand", {"model_dir": "gs://tfexp-bucket/../../../../tmp/x"}),
            "hostile_state": ("team_a_hand", {"model_dir": hostile_state_dir(root)}),
        }
        runs = {}
        for name, (dag_id, conf) in runs_conf.items():
            status, body = alice.trigger(dag_id, conf)
            assert status == 200, (name, status, body)
            runs[name] = (dag_id, json.loads(body)["dag_run_id"])

        def finished():
            states = {}
            for name, (dag_id, run_id) in runs.items():
                states[name] = cluster.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"]
            return states if all(s in ("success", "failed") for s in states.values()) else None

        states = cluster.wait_for(finished, 600, "the attack runs", interval=3)
        yield {
            "cluster": cluster,
            "alice": alice,
            "runs": runs,
            "states": states,
            "victim": victim,
            "victim_before": before,
            "proof": proof,
            "outside": outside,
            "mine": mine,
            "root": root,
            "passwords": str(passwords),
        }
    finally:
        cluster.stop()


def task_log(attacks, name: str) -> str:
    """The whole first-try log of the attack's task, exception details included (as JSON)."""
    from urllib.parse import quote

    dag_id, run_id = attacks["runs"][name]
    task_id = "train" if dag_id == "team_a_hand" else "train_and_evaluate"
    path = (
        f"/dags/{dag_id}/dagRuns/{quote(run_id)}/taskInstances/{task_id}/logs/1?full_content=true"
    )
    return json.dumps(attacks["cluster"].api("GET", path)["content"])


def experiment_page(
    attacks, session: Session, dag_id: str, run_id: str
) -> tuple[int, str, int, str]:
    from urllib.parse import quote

    path = f"/tfexp/dags/{quote(dag_id)}/runs/{quote(run_id)}"
    status, html = session.call("GET", path)
    api_status, body = session.call("GET", f"/tfexp/api/dags/{quote(dag_id)}/runs/{quote(run_id)}")
    return status, html, api_status, body


def test_a_template_in_run_conf_runs_no_shell_command(attacks):
    assert attacks["states"]["template"] == "success", task_log(attacks, "template")
    assert not os.path.exists(attacks["proof"])
    with open(os.path.join(attacks["mine"], RECEIVED)) as handle:
        received = json.load(handle)
    assert received["note"] == shell_template(attacks["proof"])  # data, verbatim


def test_code_named_in_run_conf_is_never_imported(attacks):
    assert attacks["states"]["spec"] == "success", task_log(attacks, "spec")
    assert not os.path.exists(attacks["proof"])
    log = task_log(attacks, "spec")
    assert "Ignoring the run's value of 'tfexp_spec'" in log
    assert "Ignoring the run's value of 'model_fn'" in log


def test_an_override_that_fails_its_schema_is_refused_before_any_task_naming_the_key(attacks):
    status, body = attacks["alice"].trigger("team_a_factory", {"learning_rate": -1})
    assert status == 400, (status, body)
    assert "learning_rate" in body
    runs = attacks["cluster"].api("GET", "/dags/team_a_factory/dagRuns")["dag_runs"]
    assert len(runs) == 1  # only the "spec" attack's run: none was created for this conf


def test_another_teams_model_dir_from_run_conf_is_not_written(attacks):
    assert attacks["states"]["other_team"] == "failed"
    log = task_log(attacks, "other_team")
    assert "belongs to the experiment 'team_b_victim'" in log and "'team_a_hand'" in log
    assert fingerprint(attacks["victim"]) == attacks["victim_before"]
    assert not os.path.exists(attacks["proof"])


def test_another_teams_model_dir_is_not_shown_on_the_attackers_run_page(attacks):
    dag_id, run_id = attacks["runs"]["other_team"]
    status, html, api_status, body = experiment_page(attacks, attacks["alice"], dag_id, run_id)
    assert (status, api_status) == (200, 200), (html[-2000:], body[-2000:])
    (model,) = json.loads(body)["models"]
    assert model["evaluations"] == {} and model["checkpoints"] == [] and model["lineage"] is None
    for text in (html, body):
        assert SECRET not in text
        assert "belongs to the experiment 'team_b_victim'" in text.replace("&#39;", "'")


def test_a_model_dir_outside_the_roots_is_refused_before_writing(attacks):
    assert attacks["states"]["outside_roots"] == "failed"
    assert "outside the model dir roots" in task_log(attacks, "outside_roots")
    assert not os.path.exists(attacks["outside"])


def test_a_gs_path_climbing_out_of_its_bucket_is_an_invalid_model_dir(attacks):
    assert attacks["states"]["dot_dot"] == "failed"
    assert "may not have '.', '..' or empty ('//') segments" in task_log(attacks, "dot_dot")
    assert not os.path.exists("/tmp/x")


def test_a_state_file_naming_another_teams_checkpoints_changes_nothing_there(attacks):
    assert attacks["states"]["hostile_state"] == "failed"
    log = task_log(attacks, "hostile_state")
    assert "CheckpointError" in log and "outside" in log
    assert fingerprint(attacks["victim"]) == attacks["victim_before"]


def test_other_teams_pages_are_403_and_anonymous_callers_401(attacks):
    cluster, alice = attacks["cluster"], attacks["alice"]
    bob, carol, anonymous = (
        Session(cluster, "bob"),
        Session(cluster, "carol"),
        Session(cluster, None),
    )
    path = "/tfexp/api/dags/team_b_victim/runs/none"
    assert alice.call("GET", path)[0] == 403
    assert anonymous.call("GET", path)[0] == 401
    assert carol.call("GET", path)[0] == 403  # may read the DAG, not its task instances
    status, body = bob.call("GET", path)
    assert status == 200 and SECRET in body  # the owner team's reader sees its own dir
    assert alice.trigger("team_b_victim", {})[0] == 403
    assert bob.trigger("team_b_victim", {})[0] == 403
    status, listing = alice.call("GET", "/tfexp/api/dags")
    assert status == 200 and "team_b_victim" not in listing


def test_hostile_files_in_the_attackers_own_model_dir_are_problem_lines_never_500(attacks):
    mine = attacks["mine"]
    if os.path.exists(os.path.join(mine, "run.json")):
        os.remove(os.path.join(mine, "run.json"))  # the lineage training wrote
    os.symlink(attacks["passwords"], os.path.join(mine, "run.json"))
    os.mkfifo(os.path.join(mine, "events.out.tfevents.0.fifo"))
    os.makedirs(os.path.join(mine, "eval_zero"))
    os.symlink("/dev/zero", os.path.join(mine, "eval_zero", "results.jsonl"))
    with open(os.path.join(mine, "events.out.tfevents.1.big"), "wb") as handle:
        handle.write(b"\0" * (2 * 2**20))  # over ui_max_file_mb = 1
    os.makedirs(os.path.join(mine, "eval_bad"))
    with open(os.path.join(mine, "eval_bad", "results.jsonl"), "w") as handle:
        for record in (
            {"global_step": 1, "metrics": {"loss": "nan"}},
            {"global_step": None, "metrics": {"loss": 1}},
            {"global_step": "3", "metrics": {"loss": 1}},
            {"global_step": 4, "metrics": [1]},
            {"global_step": 5, "metrics": {"loss": 1e308}},
            {"global_step": 6, "metrics": {"loss": -1e308}, "duration_secs": "slow"},
        ):
            handle.write(json.dumps(record) + "\n")
        handle.write('{"global_step": 7, "metrics": {"loss": NaN}}\n')
    with open(os.path.join(mine, "blessing.json"), "w") as handle:
        handle.write("5")
    dag_id, run_id = attacks["runs"]["template"]
    started = time.monotonic()
    status, html, api_status, body = experiment_page(attacks, attacks["alice"], dag_id, run_id)
    assert time.monotonic() - started < 60
    assert (status, api_status) == (200, 200), (html[-3000:], body[-3000:])
    assert "admin-pw" not in html and "admin-pw" not in body
    problems = "\n".join(json.loads(body)["models"][0]["problems"])
    assert "run.json links outside the model dir" in problems
    assert "is a FIFO, not a regular file" in problems
    assert "eval_zero/results.jsonl links outside the model dir (to /dev/zero)" in problems
    assert "larger than [tfexp] ui_max_file_mb = 1 MB" in problems
    assert "global_step is None" in problems and "global_step is '3'" in problems
    assert "metric(s) loss not a number" in problems and "metrics is list" in problems
    assert "duration_secs is 'slow'" in problems and "blessing.json is not a blessing" in problems
    assert 'data-step="7"' in html and 'class="problem"' in html


def test_a_config_bomb_is_an_import_error_and_the_other_dags_still_parse(attacks):
    cluster = attacks["cluster"]

    def bomb_error():
        errors = cluster.api("GET", "/importErrors")["import_errors"]
        return next((e for e in errors if "team_a_bomb" in e["filename"]), None)

    error = cluster.wait_for(bomb_error, 120, "the bomb's import error")
    assert "stand for more than 1000 nodes once expanded" in error["stack_trace"]
    assert cluster._dag_exists("team_a_factory") and not cluster._dag_exists("team_a_bomb")
