"""Provider metadata for Airflow's ProvidersManager (the `apache_airflow_provider` entry point)."""

from __future__ import annotations

from typing import Any

from airflow_tfexp import __version__

INTEGRATION = "TensorFlow Experiment"

# Declared here, not in hook methods (Airflow 3.2+ reads forms without importing hooks).
STUDY_CONNECTION = {
    "hook-class-name": "airflow_tfexp.hooks.study_storage.StudyStorageHook",
    "hook-name": "TensorFlow Experiment study storage",
    "connection-type": "tfexp_study",
    "conn-fields": {
        "dialect": {
            "label": "Dialect",
            "schema": {
                "type": ["string", "null"],
                "enum": ["postgresql", "mysql", "sqlite", None],
                "default": "postgresql",
            },
            "description": "The study database: postgresql or mysql (host, port, database, "
            "login), or sqlite (the file's path in Host).",
        },
        "sqlalchemy_url": {
            "label": "SQLAlchemy URL",
            "schema": {"type": ["string", "null"], "format": "password"},
            "description": "A whole SQLAlchemy URL instead of the fields above (masked: it "
            "may hold a password).",
        },
    },
    "ui-field-behaviour": {
        "hidden-fields": ["extra"],
        "relabeling": {"schema": "Database", "host": "Host (SQLite: database file)"},
        "placeholders": {
            "host": "db.example.com, or /srv/studies/study.db for SQLite",
            "schema": "optuna",
            "port": "5432",
        },
    },
}


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-tfexp",
        "name": "TensorFlow Experiment",
        "description": (
            "TensorFlow's Experiment (train, evaluate, continuous evaluation, export) as Airflow "
            "operators, a deferrable checkpoint sensor and a DAG factory."
        ),
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": INTEGRATION,
                "external-doc-url": "https://github.com/tensorflow/estimator",
                "tags": ["software", "ml"],
            }
        ],
        "operators": [
            {
                "integration-name": INTEGRATION,
                "python-modules": [
                    "airflow_tfexp.operators.experiment",
                    "airflow_tfexp.operators.continuous_eval",
                    "airflow_tfexp.operators.retraining",
                    "airflow_tfexp.operators.checkpoint_events",
                    "airflow_tfexp.operators.tuning",
                    "airflow_tfexp.operators.approval",
                ],
            }
        ],
        "sensors": [
            {
                "integration-name": INTEGRATION,
                "python-modules": ["airflow_tfexp.sensors.checkpoint"],
            }
        ],
        "hooks": [
            {
                "integration-name": INTEGRATION,
                "python-modules": [
                    "airflow_tfexp.hooks.gcp_credentials",
                    "airflow_tfexp.hooks.study_storage",
                ],
            }
        ],
        "triggers": [
            {
                "integration-name": INTEGRATION,
                "python-modules": [
                    "airflow_tfexp.triggers.checkpoint",
                    "airflow_tfexp.triggers.checkpoint_event",
                ],
            }
        ],
        "connection-types": [STUDY_CONNECTION],
        "asset-uris": [
            {
                "schemes": ["gs"],
                "handler": "airflow_tfexp.assets.sanitize_uri",
                "factory": "airflow_tfexp.assets.create_asset",
                "to_openlineage_converter": "airflow_tfexp.assets.convert_asset_to_openlineage",
            }
        ],
        "extra-links": [
            "airflow_tfexp.links.ExperimentMetricsLink",
            "airflow_tfexp.links.ModelDirLink",
            "airflow_tfexp.links.TensorBoardLink",
        ],
        "plugins": [
            {
                "name": "airflow_tfexp",
                "plugin-class": "airflow_tfexp.plugins.experiments.TfexpPlugin",
            }
        ],
        "config": {
            "tfexp": {
                "description": "Defaults of the airflow-tfexp operators and sensors.",
                "options": {
                    "default_deferrable": {
                        "description": "Whether CheckpointSensor and ContinuousEvalOperator wait in "
                        "the triggerer (no worker slot held) unless told otherwise. Empty: "
                        "Airflow's [operators] default_deferrable decides.",
                        "version_added": "0.1.0",
                        "type": "boolean",
                        "example": "True",
                        "default": "",
                    },
                    "checkpoint_poll_interval": {
                        "description": "Seconds between two looks at a model dir while waiting for a "
                        "checkpoint, when the task does not set its own interval.",
                        "version_added": "0.1.0",
                        "type": "float",
                        "example": None,
                        "default": "5",
                    },
                    "max_config_kb": {
                        "description": "The largest DAG factory YAML file, in KB, that becomes a "
                        "DAG; a larger one (or one whose aliases expand to over 1,000 nodes) is "
                        "an import error, not a parse that eats the DAG processor's memory.",
                        "version_added": "0.1.0",
                        "type": "integer",
                        "example": None,
                        "default": "256",
                    },
                    "model_dir_roots": {
                        "description": "Comma-separated local dirs and gs:// prefixes that every "
                        "rendered model_dir and publish_dir must be inside: a task whose dir is "
                        "outside fails before writing, and the Experiments pages refuse to read "
                        "it. Empty: no limit (set it in production).",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "/srv/models,gs://ml-models/teams",
                        "default": "",
                    },
                    "ui_max_file_mb": {
                        "description": "The largest file (results, event file, run.json, "
                        "blessing) the Experiments pages read from a model dir, in MB; a larger "
                        "one is skipped and listed as a problem on the page.",
                        "version_added": "0.1.0",
                        "type": "float",
                        "example": None,
                        "default": "64",
                    },
                    "eval_warn_batches": {
                        "description": "An evaluation with eval_steps=None whose input is still "
                        "producing after this many batches logs a warning (an endless "
                        "eval_input_fn runs forever), and again each time as many more pass.",
                        "version_added": "0.1.0",
                        "type": "integer",
                        "example": None,
                        "default": "100000",
                    },
                    "trainer_lease_secs": {
                        "description": "A trainer holds model_dir/trainer.lease while it trains, "
                        "renewed every quarter of this; a second trainer on the same model dir "
                        "fails naming the holder unless the lease has had no heartbeat for this "
                        "many seconds (a retry of the same task instance takes over at once).",
                        "version_added": "0.1.0",
                        "type": "float",
                        "example": None,
                        "default": "60",
                    },
                    "tensorboard_url": {
                        "description": "The TensorBoard serving your model dirs, for the "
                        "TensorBoard button on experiment tasks; {model_dir}, {dag_id} and "
                        "{run_id} are filled in. Empty: no button.",
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "https://tensorboard.example.com/?logdir={model_dir}",
                        "default": "",
                    },
                },
            }
        },
    }
