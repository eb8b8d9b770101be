"""A sweep's study: what to search, how to sample and prune, where the study is stored.

`StudySpec` is plain data (checked without Optuna, JSON-able for XCom and task arguments);
`open_study` builds the Optuna study it describes. Every process of a sweep (the task asking
for trials, each trial, the task completing them) opens the same study from the same storage:
the sampler and pruner are rebuilt from the spec, the trials live in the storage.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from typing import Any

from airflow_tfexp.experiment._validation import check_metric, check_mode
from airflow_tfexp.experiment.evaluation.results import check_evaluator_name
from airflow_tfexp.experiment.storage.fs import join
from airflow_tfexp.experiment.storage.locations import parse_model_dir
from airflow_tfexp.experiment.tuning.space import check_search_space, grid, grid_size

SAMPLERS = {"tpe": {"n_startup_trials"}, "random": set(), "grid": set()}
PRUNERS = {
    "median": {"n_startup_trials", "n_warmup_steps", "interval_steps"},
    "successive_halving": {"min_resource", "reduction_factor", "min_early_stopping_rate"},
    "none": set(),
}
LOCAL_STORAGES = ("journal", "sqlite")  # files under the sweep's (local) model dir
JOURNAL_FILE = "study.journal"
SQLITE_FILE = "study.db"
MODEL_DIR_ATTR = "tfexp_model_dir"  # the sweep's model dir, stamped on the study
STARTED_ATTR = "tfexp_started_at"  # when the study's first trial was asked for (timeout)


def _choice(path: str, value: Any, kinds: Mapping[str, set[str]]) -> dict[str, Any]:
    """ "median" or {type: median, n_startup_trials: 3}: as a dict with a checked type and keys."""
    settings = {"type": value} if isinstance(value, str) else value
    if not isinstance(settings, Mapping) or settings.get("type") not in kinds:
        raise ValueError(
            f"{path}: expected one of {sorted(kinds)} or {{type: ..., options}} (got {value!r})"
        )
    allowed = kinds[settings["type"]]
    unknown = sorted(set(settings) - allowed - {"type"})
    if unknown:
        raise ValueError(
            f"{path}: unknown options {unknown} for {settings['type']} (allowed: {sorted(allowed)})"
        )
    for key, option in settings.items():
        if key == "type" or (key == "min_resource" and option == "auto"):
            continue
        least = _OPTION_MINIMUM.get(key, 0)
        if isinstance(option, bool) or not isinstance(option, int) or option < least:
            raise ValueError(f"{path}.{key}: expected an int >= {least} (got {option!r})")
    return dict(settings)


# the least value Optuna accepts for an option (else 0)
_OPTION_MINIMUM = {
    "reduction_factor": 2,
    "interval_steps": 1,
    "min_resource": 1,
    "n_startup_trials": 0,
}


def check_storage(path: str, value: Any) -> str | None:
    """None, "journal", "sqlite" or a SQLAlchemy URL; ValueError naming `path` otherwise."""
    if value is None or value in LOCAL_STORAGES:
        return value
    if not isinstance(value, str) or "://" not in value or not _known_dialect(value):
        raise ValueError(
            (f"{path}: " if path else "")
            + 'expected "journal" or "sqlite" (a file under the model dir) or a SQLAlchemy '
            + 'URL of a database it knows, like "postgresql://host/db"'
            + (f" (got {value!r})" if path else "")
        )
    return value


def _known_dialect(url: str) -> bool:
    """Whether SQLAlchemy has a dialect for the URL's scheme (its driver need not be here)."""
    import sqlalchemy.dialects
    from sqlalchemy.engine import make_url

    try:
        name = make_url(url).get_backend_name()
    except Exception:  # noqa: BLE001 - a URL SQLAlchemy cannot parse
        return False
    return (
        name in sqlalchemy.dialects.__all__
        or sqlalchemy.dialects.registry.impls.get(name) is not None
    )


@dataclasses.dataclass(frozen=True)
class StudySpec:
    """An Optuna study, described.

    :param name: the study's name in its storage.
    :param search_space: `{name: {type: float|int|categorical, low, high, log, step, choices}}`.
    :param objective: `{metric, mode, eval_name}`: which evaluation metric of a trial's results
        (`model_dir/eval_<eval_name>/results.jsonl`; eval_name None: train_and_evaluate's) is
        minimized ("min") or maximized ("max").
    :param sampler: "tpe", "random" or "grid" (or `{type: tpe, n_startup_trials: 5}`).
    :param pruner: "median", "successive_halving" or "none" (or `{type: median, options}`).
    :param storage: None or "journal" (a journal file in the model dir), "sqlite" (a SQLite
        file there), or a SQLAlchemy URL; a gs:// model dir needs a URL (the study lives in a
        database, never in the bucket).
    :param seed: the sampler's seed.
    """

    name: str
    search_space: dict[str, dict[str, Any]]
    objective: dict[str, Any] = dataclasses.field(
        default_factory=lambda: {"metric": "loss", "mode": "min", "eval_name": None}
    )
    sampler: dict[str, Any] = dataclasses.field(default_factory=lambda: {"type": "tpe"})
    pruner: dict[str, Any] = dataclasses.field(default_factory=lambda: {"type": "median"})
    storage: str | None = None
    seed: int | None = None

    @classmethod
    def from_value(cls, value: Any, path: str = "study") -> StudySpec:
        """A StudySpec from itself or its dict (`as_dict`); ValueError naming the bad field."""
        if isinstance(value, StudySpec):
            return value
        if not isinstance(value, Mapping):
            raise ValueError(f"{path}: expected a mapping (got {value!r})")
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(value) - fields)
        if unknown:
            raise ValueError(f"{path}: unknown keys {unknown} (allowed: {sorted(fields)})")
        name = value.get("name")
        if not isinstance(name, str) or not name or len(name) > 200:
            raise ValueError(f"{path}.name: expected a study name (got {name!r})")
        space = check_search_space(value.get("search_space"), f"{path}.search_space")
        objective = dict(value.get("objective") or {})
        unknown = sorted(set(objective) - {"metric", "mode", "eval_name"})
        if unknown:
            raise ValueError(
                f"{path}.objective: unknown keys {unknown} (allowed: eval_name, metric, mode)"
            )
        objective.setdefault("metric", "loss")
        objective.setdefault("mode", "min")
        objective.setdefault("eval_name", None)
        for key, check in (("metric", check_metric), ("mode", check_mode)):
            try:
                check(key, objective[key])
            except ValueError:
                raise ValueError(
                    f"{path}.objective.{key}: expected "
                    + ("a metric name" if key == "metric" else '"min" or "max"')
                    + f" (got {objective[key]!r})"
                ) from None
        check_evaluator_name(objective["eval_name"], f"{path}.objective.eval_name")
        sampler = _choice(f"{path}.sampler", value.get("sampler", "tpe"), SAMPLERS)
        if sampler["type"] == "grid":
            grid(space, f"{path}.search_space")
        seed = value.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise ValueError(f"{path}.seed: expected an int >= 0 (got {seed!r})")
        return cls(
            name=name,
            search_space=space,
            objective=objective,
            sampler=sampler,
            pruner=_choice(f"{path}.pruner", value.get("pruner", "median"), PRUNERS),
            storage=check_storage(f"{path}.storage", value.get("storage")),
            seed=seed,
        )

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def metric(self) -> str:
        return self.objective["metric"]

    @property
    def mode(self) -> str:
        return self.objective["mode"]

    @property
    def eval_name(self) -> str | None:
        return self.objective["eval_name"]

    @property
    def direction(self) -> str:
        return "minimize" if self.mode == "min" else "maximize"

    def max_trials(self) -> int | None:
        """How many distinct trials the space allows (the grid's size; None: unbounded)."""
        return grid_size(self.search_space) if self.sampler["type"] == "grid" else None

    def check_storage_for(self, model_dir: str, path: str = "study.storage") -> None:
        """A gs:// model dir keeps its study in a database (a URL): a journal or SQLite file
        cannot be shared safely through a bucket."""
        if parse_model_dir(model_dir).scheme == "gs" and (self.storage in (None, *LOCAL_STORAGES)):
            raise ValueError(
                f"{path}: the model dir {model_dir} is on gs://, where a study file cannot be "
                "shared safely; give a SQLAlchemy URL (or, in a DAG, study_conn_id)"
            )


def _sampler(spec: StudySpec, trials_so_far: int = 0) -> Any:
    """The spec's sampler. Each process opens the study anew, so a seeded sampler is seeded
    with the seed plus the trials the study already holds: reproducible, and a new wave (or a
    restarted worker) does not draw the same values again."""
    import optuna

    settings = {k: v for k, v in spec.sampler.items() if k != "type"}
    seed = None if spec.seed is None else spec.seed + trials_so_far
    if spec.sampler["type"] == "tpe":
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True, **settings)
    if spec.sampler["type"] == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return _grid_sampler(grid(spec.search_space), spec.seed)


def _grid_sampler(space: dict[str, list], seed: int | None) -> Any:
    """Optuna's grid sampler, without `study.stop()` once the grid is used up: trials are told
    outside `optimize` here, where stopping is an error; the sweep stops by its count."""
    import optuna

    class NoStopGridSampler(optuna.samplers.GridSampler):
        def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
            return None

    return NoStopGridSampler(space, seed=seed)


def _pruner(spec: StudySpec) -> Any:
    import optuna

    settings = {k: v for k, v in spec.pruner.items() if k != "type"}
    if spec.pruner["type"] == "median":
        return optuna.pruners.MedianPruner(**settings)
    if spec.pruner["type"] == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(**settings)
    return optuna.pruners.NopPruner()


def _storage_for(spec: StudySpec, model_dir: str, storage_url: str | None) -> Any:
    import optuna

    url = storage_url or spec.storage
    if url in (None, "journal"):
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(join(model_dir, JOURNAL_FILE)))
    if url == "sqlite":
        url = f"sqlite:///{join(model_dir, SQLITE_FILE)}"
    return optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True})


def open_study(spec: StudySpec, model_dir: str, storage_url: str | None = None) -> Any:
    """The Optuna study of a sweep in `model_dir` (created on first use). `storage_url`
    overrides the spec's storage (an Airflow connection's URL, say). ValueError when the study
    belongs to another model dir: its trials' directories are there."""
    import os

    import optuna

    if storage_url is None:
        spec.check_storage_for(model_dir)
    if parse_model_dir(model_dir).scheme != "gs":
        os.makedirs(model_dir, exist_ok=True)
    storage = _storage_for(spec, model_dir, storage_url)
    try:
        study = optuna.create_study(
            storage=storage,
            sampler=_sampler(spec),
            pruner=_pruner(spec),
            study_name=spec.name,
            direction=spec.direction,
            load_if_exists=True,
        )
        study.sampler = _sampler(spec, len(study.get_trials(deepcopy=False)))
    except (ValueError, AssertionError, KeyError, TypeError) as err:  # a damaged journal, say
        where = (
            join(model_dir, JOURNAL_FILE)
            if (storage_url or spec.storage) in (None, "journal")
            else "its storage"
        )
        raise ValueError(
            f"The study {spec.name!r} cannot be read from {where} ({type(err).__name__}: "
            f"{err}). Move the damaged file aside to start the study anew."
        ) from err
    stamped = study.user_attrs.get(MODEL_DIR_ATTR)
    if stamped is None:
        study.set_user_attr(MODEL_DIR_ATTR, model_dir)
        study.set_user_attr(STARTED_ATTR, time.time())
    elif stamped != model_dir:
        raise ValueError(
            f"The study {spec.name!r} is the sweep of the model dir {stamped}, not {model_dir}: "
            "its trials' checkpoints are there. Give this sweep another study name or storage."
        )
    if study.direction.name.lower() != spec.direction:
        raise ValueError(
            f"The study {spec.name!r} {study.direction.name.lower()}s its objective; this spec "
            f"asks to {spec.direction} it (objective.mode {spec.mode!r})."
        )
    return study
