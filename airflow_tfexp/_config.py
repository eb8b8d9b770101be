"""The provider's `[tfexp]` settings, read with the defaults declared in get_provider_info."""

from __future__ import annotations

from airflow.sdk import conf

SECTION = "tfexp"
# The connection operators, sensors and triggers read GCS credentials from, as in the google provider.
DEFAULT_GCP_CONN_ID = "google_cloud_default"


def default_deferrable() -> bool:
    return conf.getboolean(SECTION, "default_deferrable", fallback=True)


def checkpoint_poll_interval() -> float:
    return conf.getfloat(SECTION, "checkpoint_poll_interval", fallback=5.0)
