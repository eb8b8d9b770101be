"""Credentials for gs:// model dirs: from a connection, missing, and a missing bucket."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import pytest

from airflow_tfexp.hooks.gcp_credentials import gcp_credentials

SECRET = "-----BEGIN PRIVATE KEY-----\nSECRET-7f3a9c-DO-NOT-LOG\n-----END PRIVATE KEY-----\n"
KEY = {
    "type": "service_account",
    "project_id": "p",
    "private_key": SECRET,
    "client_email": "sa@p.iam.gserviceaccount.com",
}


def test_a_connections_key_becomes_adc_for_the_step_and_is_never_logged(
    monkeypatch, caplog, capsys
):
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv(
        "AIRFLOW_CONN_TFEXP_GCP",
        json.dumps(
            {
                "conn_type": "google_cloud_platform",
                "extra": {"keyfile_dict": KEY, "project": "my-project"},
            }
        ),
    )
    log = logging.getLogger("tfexp-test")
    with caplog.at_level(logging.DEBUG), gcp_credentials("tfexp_gcp", "gs://bucket/m", log):
        key_file = os.environ["GOOGLE_APPLICATION_CREDENTIALS"]
        assert os.stat(key_file).st_mode & 0o777 == 0o600
        with open(key_file) as handle:
            assert json.load(handle) == KEY
        assert os.environ["GOOGLE_CLOUD_PROJECT"] == "my-project"
    assert not os.path.exists(key_file) and "GOOGLE_APPLICATION_CREDENTIALS" not in os.environ
    # caplog, or stdout when Airflow configures its (structlog) logging during this test
    logged = caplog.text + capsys.readouterr().out
    assert "its service-account key" in logged and "SECRET-7f3a9c" not in logged


def test_no_connection_falls_back_to_adc_and_local_dirs_need_nothing(monkeypatch, caplog):
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    with (
        caplog.at_level(logging.INFO),
        gcp_credentials("no_such_conn", "gs://bucket/m", logging.getLogger("t")),
    ):
        pass
    assert (
        "No Airflow connection 'no_such_conn': using Application Default Credentials" in caplog.text
    )
    with gcp_credentials("no_such_conn", "/local/dir", logging.getLogger("t")):
        assert "GOOGLE_APPLICATION_CREDENTIALS" not in os.environ


def test_missing_credentials_are_a_clear_error(tmp_path):
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("STORAGE_EMULATOR_HOST", "GOOGLE_APPLICATION_CREDENTIALS")
    }
    env.update(HOME=str(tmp_path), CLOUDSDK_CONFIG=str(tmp_path / "gcloud"))
    code = "from airflow_tfexp.experiment.storage.fs import filesystem; filesystem('gs://some-bucket/m').listdir('gs://some-bucket/m')"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode != 0
    assert (
        "StorageCredentialsError: No Google Cloud credentials to reach gs:// model dirs"
        in out.stderr
    )
    assert "`gcp_conn_id`" in out.stderr


def test_a_missing_bucket_is_a_clear_error(gcs_emulator, tmp_path):
    from airflow_tfexp.operators import TrainOperator

    operator = TrainOperator(
        task_id="t",
        experiment_fn="tests.experiment.tiny_experiment:experiment_fn",
        model_dir="gs://no-such-bucket/m",
    )
    with pytest.raises(FileNotFoundError, match="GCS bucket 'no-such-bucket' does not exist"):
        operator.execute({"params": {"train_steps": 5}})


def test_a_trigger_gets_its_own_credentials_from_the_connection(monkeypatch):
    """Triggers share the triggerer process: their credentials live in a ContextVar, not the env."""
    import asyncio

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from airflow_tfexp.experiment.storage.gcs import gcs_filesystem, using_credentials
    from airflow_tfexp.hooks.gcp_credentials import aload_gcp_credentials

    pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    key = {**KEY, "private_key": pem.decode(), "token_uri": "https://oauth2.googleapis.com/token"}
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    monkeypatch.setenv(
        "AIRFLOW_CONN_TFEXP_TRIGGER",
        json.dumps({"conn_type": "google_cloud_platform", "extra": {"keyfile_dict": key}}),
    )
    credentials = asyncio.run(aload_gcp_credentials("tfexp_trigger", logging.getLogger("t")))
    assert credentials.service_account_email == "sa@p.iam.gserviceaccount.com"
    with using_credentials(credentials):
        assert gcs_filesystem().client._credentials is credentials  # built offline, no request sent
    assert "GOOGLE_APPLICATION_CREDENTIALS" not in os.environ
