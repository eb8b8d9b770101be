"""The conventions of a well-kept provider: the deferrable default follows Airflow's global
switch, connection forms are declared (not built by hook methods), and gs:// assets are the
provider's to normalize and name for OpenLineage."""

from __future__ import annotations

import json
import warnings

import pytest

from airflow_tfexp.hooks.study_storage import StudyStorageHook
from airflow_tfexp.operators import ContinuousEvalOperator
from airflow_tfexp.sensors import CheckpointSensor


@pytest.mark.parametrize(
    ("tfexp", "operators", "expected"),
    [
        (None, None, False),  # Airflow's own default: [operators] default_deferrable = False
        (None, "True", True),  # unset here: the deployment's global switch decides
        ("False", "True", False),  # set here: it wins
        ("True", "False", True),
        ("", "True", True),  # empty is unset
    ],
)
def test_the_deferrable_default_falls_back_to_airflows_operators_setting(
    monkeypatch, tfexp, operators, expected
):
    for key, value in (
        ("AIRFLOW__TFEXP__DEFAULT_DEFERRABLE", tfexp),
        ("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", operators),
    ):
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, value)
    assert CheckpointSensor(task_id="s", model_dir="/m").deferrable is expected
    evaluator = ContinuousEvalOperator(task_id="c", experiment_fn="m:f", model_dir="/m")
    assert evaluator.deferrable is expected
    # an explicit argument always wins
    assert CheckpointSensor(task_id="s2", model_dir="/m", deferrable=not expected).deferrable is (
        not expected
    )


def test_the_study_connection_form_is_declared_for_airflows_ui():
    from airflow.providers_manager import ProvidersManager

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        manager = ProvidersManager()
        widgets = manager.connection_form_widgets
        behaviours = manager.field_behaviours
        hooks = manager.hooks
    dialect = widgets["extra__tfexp_study__dialect"]
    assert dialect.field["schema"]["enum"] == ["postgresql", "mysql", "sqlite", None]
    assert dialect.field["schema"]["title"] == "Dialect"
    url = widgets["extra__tfexp_study__sqlalchemy_url"]
    assert url.is_sensitive  # may hold a password: masked in the UI and the API
    assert behaviours["tfexp_study"]["hidden_fields"] == ["extra"]
    assert behaviours["tfexp_study"]["relabeling"]["schema"] == "Database"
    hook = hooks["tfexp_study"]
    assert hook.hook_class_name == "airflow_tfexp.hooks.study_storage.StudyStorageHook"
    assert hook.connection_id_attribute_name == "study_conn_id"
    # declared, not built: the hook defines neither deprecated form method
    assert "get_connection_form_widgets" not in StudyStorageHook.__dict__
    assert "get_ui_field_behaviour" not in StudyStorageHook.__dict__


@pytest.mark.parametrize(
    ("connection", "url"),
    [
        (
            {
                "conn_type": "tfexp_study",
                "host": "db.example.com",
                "port": 5432,
                "schema": "optuna",
                "login": "ml",
                "password": "p@ss/word",
                "extra": {"dialect": "postgresql"},
            },
            "postgresql://ml:p%40ss%2Fword@db.example.com:5432/optuna",
        ),
        (
            {"conn_type": "tfexp_study", "host": "/srv/s.db", "extra": {"dialect": "sqlite"}},
            "sqlite:////srv/s.db",
        ),
        (
            {
                "conn_type": "tfexp_study",
                "extra": {"sqlalchemy_url": "mysql+pymysql://u:p@h/db", "dialect": "postgresql"},
            },
            "mysql+pymysql://u:p@h/db",
        ),
        ({"conn_type": "sqlite", "host": "/tmp/s.db"}, "sqlite:////tmp/s.db"),
        ({"conn_type": "postgres", "host": "h", "schema": "d"}, "postgresql://h/d"),
        # the form's default dialect; an IPv6 host in brackets; a database name quoted
        ({"conn_type": "tfexp_study", "host": "::1", "schema": "a?b"}, "postgresql://[::1]/a%3Fb"),
    ],
)
def test_the_study_hook_builds_the_databases_url(monkeypatch, connection, url):
    monkeypatch.setenv("AIRFLOW_CONN_STUDY_DB", json.dumps(connection))
    assert StudyStorageHook("study_db").get_storage_url() == url


@pytest.mark.parametrize(
    ("connection", "message"),
    [
        (
            {"conn_type": "tfexp_study", "host": "h", "extra": {"dialect": "oracle"}},
            "has the dialect 'oracle'. Expected one of postgresql, mysql, sqlite",
        ),
        (
            {"conn_type": "tfexp_study", "extra": {"dialect": "sqlite"}},
            "a SQLite study database without a file",
        ),
        ({"conn_type": "http", "host": "h"}, "(type 'http') does not name a study database"),
        ({"conn_type": "tfexp_study", "schema": "optuna"}, "names no host"),
        (
            {"conn_type": "postgres", "host": "h", "password": "p"},
            "has a password but no login",
        ),
        (
            {"conn_type": "tfexp_study", "extra": {"sqlalchemy_url": {"a": 1}}},
            "`sqlalchemy_url` that is not a string",
        ),
    ],
)
def test_a_study_connection_that_names_no_database_is_a_clear_error(
    monkeypatch, connection, message
):
    monkeypatch.setenv("AIRFLOW_CONN_STUDY_DB", json.dumps(connection))
    with pytest.raises(ValueError, match="study_db") as err:
        StudyStorageHook("study_db").get_storage_url()
    assert message in str(err.value)


def test_the_study_databases_password_is_masked_in_task_logs(monkeypatch):
    from airflow.sdk._shared.secrets_masker import redact
    from airflow.sdk.log import mask_secret  # noqa: F401  (the masker the hook feeds)

    monkeypatch.setenv(
        "AIRFLOW_CONN_STUDY_DB",
        json.dumps(
            {
                "conn_type": "tfexp_study",
                "extra": {"sqlalchemy_url": "postgresql://u:T0PS3cr3t@db/o"},
            }
        ),
    )
    url = StudyStorageHook("study_db").get_storage_url()
    assert "T0PS3cr3t" not in str(redact(f"opening {url}"))


def test_gs_assets_are_normalized_and_named_for_openlineage():
    from airflow.sdk import Asset

    from airflow_tfexp.assets import convert_asset_to_openlineage, create_asset
    from airflow_tfexp.operators.retraining import publish_asset

    # a trailing slash does not make another asset
    assert Asset("gs://models/digits/published/").uri == "gs://models/digits/published"
    assert (
        publish_asset("gs://models/digits/published/").uri
        == Asset("gs://models/digits/published").uri
    )
    with pytest.raises(ValueError, match="must contain a bucket name"):
        Asset("gs:///digits")
    asset = create_asset(path="gs://models/digits/runs/1")
    assert asset.uri == "gs://models/digits/runs/1"
    dataset = convert_asset_to_openlineage(asset, None)
    assert (dataset.namespace, dataset.name) == ("gs://models", "digits/runs/1")
