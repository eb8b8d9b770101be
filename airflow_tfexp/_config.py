"""The provider's `[tfexp]` settings, read with the defaults declared in get_provider_info."""

from __future__ import annotations

from airflow.sdk import conf

SECTION = "tfexp"


def default_deferrable() -> bool:
    """`[tfexp] default_deferrable` when set, else Airflow's `[operators] default_deferrable`
    (the convention of Airflow's own providers: one switch for a whole deployment)."""
    own = conf.get(SECTION, "default_deferrable", fallback="")
    if own is None or not str(own).strip():
        return conf.getboolean("operators", "default_deferrable", fallback=False)
    return conf.getboolean(SECTION, "default_deferrable")


def checkpoint_poll_interval() -> float:
    return conf.getfloat(SECTION, "checkpoint_poll_interval", fallback=5.0)


def max_config_kb() -> int:
    return conf.getint(SECTION, "max_config_kb", fallback=256)


def model_dir_roots() -> list[str]:
    """`[tfexp] model_dir_roots`: the local dirs and gs:// prefixes model dirs must be inside
    ([] when unset: no limit)."""
    raw = conf.get(SECTION, "model_dir_roots", fallback="") or ""
    return [root.strip() for root in raw.split(",") if root.strip()]


def ui_max_file_mb() -> float:
    return conf.getfloat(SECTION, "ui_max_file_mb", fallback=64.0)


def trainer_lease_secs() -> float:
    """`[tfexp] trainer_lease_secs`: a trainer lease without a heartbeat for this long is stale."""
    return conf.getfloat(SECTION, "trainer_lease_secs", fallback=60.0)


def eval_warn_batches() -> int:
    """`[tfexp] eval_warn_batches`: an evaluation with eval_steps=None warns every this many."""
    return conf.getint(SECTION, "eval_warn_batches", fallback=100_000)
