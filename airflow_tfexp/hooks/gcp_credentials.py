"""Google Cloud credentials for gs:// model dirs, from an Airflow connection: the one module
that decides how the engine's storage calls are authenticated.

The connection (`gcp_conn_id`, default `google_cloud_default`) is read the way the Google
provider stores it: a service-account key in the `keyfile_dict` extra (or a file in `key_path`)
and an optional `project`. Two ways to hand it to the engine, each where it is the only one
that works:

- a task step (`gcp_credentials`): the key goes to a private temporary file that Application
  Default Credentials (GOOGLE_APPLICATION_CREDENTIALS) point at while the step runs, then is
  deleted. The environment reaches every process the step starts (Ray workers, the CLI), and a
  task has its process to itself.
- a trigger (`aload_gcp_credentials`): the triggerer's process and environment are shared by
  every trigger, so the credentials object is passed explicitly and set for one storage call's
  thread (`storage.gcs.using_credentials`).

No connection means Application Default Credentials; with STORAGE_EMULATOR_HOST set, no
credentials are needed. Secrets are never logged.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from typing import Any

from airflow_tfexp._airflow import scoped_environment
from airflow_tfexp.experiment.storage.fs import is_gcs

_FIELDS = {
    "keyfile_dict": ("keyfile_dict", "extra__google_cloud_platform__keyfile_dict"),
    "key_path": ("key_path", "extra__google_cloud_platform__key_path"),
    "project": ("project", "extra__google_cloud_platform__project"),
}


def _extra(extras: dict[str, Any], field: str) -> Any:
    return next((extras[k] for k in _FIELDS[field] if extras.get(k)), None)


@contextlib.contextmanager
def gcp_credentials(gcp_conn_id: str, model_dir: str, log: logging.Logger | Any) -> Iterator[None]:
    """Make the connection's credentials the process's ADC while a gs:// model dir is used."""
    if not is_gcs(str(model_dir)):
        yield
        return
    from airflow_tfexp.experiment.storage.gcs import reset_clients

    if os.environ.get("STORAGE_EMULATOR_HOST"):
        log.info(
            "STORAGE_EMULATOR_HOST is set: talking to the storage emulator at %s.",
            os.environ["STORAGE_EMULATOR_HOST"],
        )
        yield
        return
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        connection = BaseHook.get_connection(gcp_conn_id)
    except AirflowNotFoundException:
        log.info("No Airflow connection %r: using Application Default Credentials.", gcp_conn_id)
        yield
        return
    extras = connection.extra_dejson
    changes: dict[str, str] = {}
    key_file = None
    keyfile_dict = _extra(extras, "keyfile_dict")
    if keyfile_dict:
        key = keyfile_dict if isinstance(keyfile_dict, str) else json.dumps(keyfile_dict)
        handle = tempfile.NamedTemporaryFile(
            "w", prefix="tfexp-gcp-key-", suffix=".json", delete=False
        )
        with handle:
            os.chmod(handle.name, 0o600)
            handle.write(key)
        key_file = changes["GOOGLE_APPLICATION_CREDENTIALS"] = handle.name
        source = "its service-account key"
    elif _extra(extras, "key_path"):
        changes["GOOGLE_APPLICATION_CREDENTIALS"] = _extra(extras, "key_path")
        source = "its key file path"
    else:
        source = "Application Default Credentials (it holds no key)"
    if _extra(extras, "project"):
        changes["GOOGLE_CLOUD_PROJECT"] = _extra(extras, "project")
    log.info("Reaching %s with Airflow connection %r: %s.", model_dir, gcp_conn_id, source)
    reset_clients()  # clients are built with the credentials in force
    try:
        with scoped_environment(changes):
            yield
    finally:
        reset_clients()
        if key_file:
            os.unlink(key_file)


STORAGE_SCOPES = ["https://www.googleapis.com/auth/devstorage.read_write"]


def credentials_from_connection(extras: dict[str, Any]) -> Any:
    """google.auth credentials from a connection's extras, or None (use ADC)."""
    from google.oauth2 import service_account

    keyfile_dict = _extra(extras, "keyfile_dict")
    if keyfile_dict:
        info = json.loads(keyfile_dict) if isinstance(keyfile_dict, str) else keyfile_dict
        return service_account.Credentials.from_service_account_info(info, scopes=STORAGE_SCOPES)
    if _extra(extras, "key_path"):
        return service_account.Credentials.from_service_account_file(
            _extra(extras, "key_path"), scopes=STORAGE_SCOPES
        )
    return None


async def aload_gcp_credentials(gcp_conn_id: str | None, log: logging.Logger | Any) -> Any:
    """For triggers: the connection's credentials (None means ADC), without touching the
    environment of the triggerer process that other triggers share."""
    import asyncio

    if not gcp_conn_id or os.environ.get("STORAGE_EMULATOR_HOST"):
        return None
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        connection = await BaseHook.aget_connection(gcp_conn_id)
    except AirflowNotFoundException:
        log.info(
            "No Airflow connection %r: using the triggerer's Application Default Credentials.",
            gcp_conn_id,
        )
        return None
    credentials = await asyncio.to_thread(credentials_from_connection, connection.extra_dejson)
    log.info("Using Airflow connection %r for gs:// access.", gcp_conn_id)
    return credentials
