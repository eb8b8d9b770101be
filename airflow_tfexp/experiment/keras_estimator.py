"""KerasEstimator: tf.estimator's train / evaluate / predict / export on a compiled Keras 3 model.

Training is step-based (not epochs), like the Estimator: the global step is the optimizer's
iteration count, checkpoints are named by it, and training resumes from the newest complete
checkpoint. Steps run in a compiled loop of `steps_per_execution` steps (the `model.compile`
argument), so orchestration costs no per-step Python. The chief of a parameter-server
cluster schedules the same loop on the workers (`_step_runners.CoordinatedSteps`).
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import keras
import tensorflow as tf

from airflow_tfexp.experiment import checkpoints as ckpts
from airflow_tfexp.experiment._distribution import is_parameter_server, select_strategy
from airflow_tfexp.experiment._eval_metrics import ExtraMetrics
from airflow_tfexp.experiment._progress import ProgressLogger
from airflow_tfexp.experiment._step_runners import CoordinatedSteps, LocalSteps
from airflow_tfexp.experiment._validation import check_optional_int
from airflow_tfexp.experiment.checkpoint_manager import ProtectingCheckpointManager
from airflow_tfexp.experiment.errors import CheckpointError
from airflow_tfexp.experiment.fs import is_gcs
from airflow_tfexp.experiment.gcs_staging import GcsStaging
from airflow_tfexp.experiment.hooks import HookList, ListenerList, TrainingContext
from airflow_tfexp.experiment.results import eval_dir, to_jsonable
from airflow_tfexp.experiment.run_config import RunConfig, as_run_config
from airflow_tfexp.experiment.saved_model import export_keras_model
from airflow_tfexp.experiment.warm_start import (
    WarmStartSettings,
    as_warm_start_settings,
    warm_start,
    warm_start_source,
)

log = logging.getLogger(__name__)

ModelFn = Callable[[dict[str, Any]], keras.Model]
InputFn = Callable[[], tf.data.Dataset]


class _ModelState:
    """A built model with its checkpoint object and compiled step functions."""

    def __init__(self, model: keras.Model, strategy: tf.distribute.Strategy) -> None:
        self.model = model
        self.strategy = strategy
        self.checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer)
        self.manager: ProtectingCheckpointManager | None = None
        self.train_steps_fn = _make_loop(strategy, model.train_step)
        self.test_steps_fn = _make_loop(strategy, model.test_step)
        self.restored_from: str | None = None
        self._extra_metrics: dict[tuple, ExtraMetrics] = {}

    def evaluation_loop(
        self, metrics: Mapping[str, Any] | None
    ) -> tuple[Callable, ExtraMetrics | None]:
        """The compiled evaluation loop, with `metrics` (built once per distinct dict) added."""
        if not metrics:
            return self.test_steps_fn, None
        key = tuple(
            (name, id(value)) for name, value in sorted(metrics.items(), key=lambda kv: str(kv[0]))
        )
        if key not in self._extra_metrics:
            self._extra_metrics[key] = ExtraMetrics(self.model, self.strategy, metrics, _make_loop)
        extra = self._extra_metrics[key]
        extra.reset()
        return extra.loop, extra

    @property
    def global_step(self) -> int:
        return int(self.model.optimizer.iterations.numpy())

    def restore(
        self, checkpoint_path: str, *, partial: bool, local_path: str | None = None
    ) -> None:
        """Restore `checkpoint_path` (checked complete where it lives) from `local_path`, its
        local copy when the model dir is on GCS."""
        if not ckpts.is_complete(checkpoint_path):
            raise CheckpointError(
                f"Checkpoint {checkpoint_path} is missing or incomplete (its .index or a data shard is "
                "missing); refusing to use it."
            )
        try:
            status = self.checkpoint.restore(local_path or checkpoint_path)
            if partial:
                status.expect_partial()
            else:
                status.assert_existing_objects_matched()
        except Exception as err:  # noqa: BLE001 - TF raises OpError, IndexError, ValueError, ...
            raise CheckpointError(
                f"Checkpoint {checkpoint_path} is corrupt or does not match the model: {err}"
            ) from err
        self.restored_from = checkpoint_path


def _make_loop(strategy: tf.distribute.Strategy, step_fn: Callable) -> Callable:
    """A compiled loop running `step_fn` on up to `n` batches; returns how many it ran."""

    @tf.function
    def run_steps(iterator: Any, n: tf.Tensor) -> tf.Tensor:
        done = tf.constant(0, dtype=tf.int64)
        for _ in tf.range(n):
            optional = iterator.get_next_as_optional()
            if not optional.has_value():
                break
            strategy.run(step_fn, args=(optional.get_value(),))
            done += 1
        return done

    return run_steps


def _metrics_as_floats(model: keras.Model) -> dict[str, float]:
    return {
        k: float(v) for k, v in to_jsonable(model.get_metrics_result()).items() if _is_number(v)
    }


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class KerasEstimator:
    """An Estimator (train / evaluate / predict / export) over a compiled Keras model.

    :param model_fn: `model_fn(params)` returns a compiled `keras.Model`; its optimizer, loss and
        metrics are used. Called inside the distribution strategy's scope.
    :param model_dir: where checkpoints, summaries and exports go; defaults to `config.model_dir`.
    :param config: a `RunConfig` (or a dict of its arguments).
    :param params: hyperparameters passed to `model_fn`.
    :param warm_start_from: a checkpoint, model dir or export (or `WarmStartSettings`) whose
        weights a model with no checkpoint in `model_dir` starts from; ignored once training
        has written a checkpoint (a retry resumes from its own checkpoint instead).
    """

    def __init__(
        self,
        model_fn: ModelFn,
        model_dir: str | None = None,
        config: RunConfig | Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        warm_start_from: str | WarmStartSettings | None = None,
    ) -> None:
        if not callable(model_fn):
            raise ValueError(
                f"Invalid value for `model_fn`. Received: {model_fn!r}. Expected a callable."
            )
        config = as_run_config(config)
        model_dir = str(model_dir) if model_dir is not None else config.model_dir
        if not model_dir:
            raise ValueError(
                "Invalid value for `model_dir`. Received: None. Expected a directory, given as "
                "`model_dir` or `config.model_dir`."
            )
        if params is not None and not isinstance(params, Mapping):
            raise ValueError(f"Invalid value for `params`. Received: {params!r}. Expected a dict.")
        self._model_fn = model_fn
        self._config = (
            config if config.model_dir == model_dir else config.replace(model_dir=model_dir)
        )
        self._params = dict(params or {})
        self._warm_start = as_warm_start_settings(warm_start_from)
        self.warm_started_from: str | None = None
        self._strategy: tf.distribute.Strategy | None = None
        self._coordinator: Any = None
        self._train_state: _ModelState | None = None
        self._eval_state: _ModelState | None = None
        self._summary_writers: dict[str, Any] = {}
        # TensorFlow works on local files; a gs:// model dir is mirrored through a staging dir.
        self._staging = GcsStaging(model_dir) if is_gcs(model_dir) else None
        self._local_dir = self._staging.local if self._staging else model_dir

    def set_warm_start(self, warm_start_from: str | WarmStartSettings | None) -> None:
        """Replace the warm-start source (an orchestrator resolving "the latest blessed model"
        sets it after `experiment_fn` built the estimator); it applies at the next `train`."""
        self._warm_start = as_warm_start_settings(warm_start_from)

    # -- properties of the Estimator API ---------------------------------------------------
    @property
    def model_dir(self) -> str:
        return self._config.model_dir

    @property
    def config(self) -> RunConfig:
        return self._config

    @property
    def params(self) -> dict[str, Any]:
        return dict(self._params)

    def latest_checkpoint(self) -> str | None:
        """Path prefix of the newest complete checkpoint, or None."""
        latest = ckpts.latest_checkpoint(self.model_dir)
        return latest.checkpoint_path if latest else None

    def global_step(self) -> int:
        """The training model's global step (0 before it trained in this process)."""
        return self._train_state.global_step if self._train_state is not None else 0

    def variables_fingerprint(self) -> str:
        """A digest of the training model's variables: equal on replicas that agree exactly."""
        import hashlib

        digest = hashlib.sha256()
        if self._train_state is not None:
            for variable in self._train_state.model.variables:
                digest.update(variable.path.split("/", 1)[-1].encode())
                digest.update(variable.numpy().tobytes())
        return digest.hexdigest()

    def variable_devices(self) -> list[str]:
        """The devices holding the training model's variables (the ps tasks' devices under
        ParameterServerStrategy)."""
        if self._train_state is None:
            return []
        return sorted({v.value.device for v in self._train_state.model.variables})

    # -- model construction ----------------------------------------------------------------
    @property
    def strategy(self) -> tf.distribute.Strategy:
        if self._strategy is None:
            self._strategy = select_strategy(self._config)
        return self._strategy

    @property
    def _eval_strategy(self) -> tf.distribute.Strategy:
        # A parameter-server chief evaluates in its own process: only training is coordinated.
        if is_parameter_server(self.strategy):
            return tf.distribute.get_strategy()
        return self.strategy

    def _cluster_coordinator(self) -> Any:
        if self._coordinator is None:
            self._coordinator = tf.distribute.coordinator.ClusterCoordinator(self.strategy)
        return self._coordinator

    def _build_state(
        self,
        input_fn: Callable[[], Any] | None,
        *,
        seed: bool,
        strategy: tf.distribute.Strategy | None = None,
    ) -> _ModelState:
        strategy = strategy or self.strategy
        with strategy.scope():
            # Seed once, for the training model: re-seeding when an evaluation model is built
            # mid-training would reset the random streams training is using.
            if seed and self._config.tf_random_seed is not None:
                keras.utils.set_random_seed(self._config.tf_random_seed)
            model = self._model_fn(self._params)
            if not isinstance(model, keras.Model):
                raise ValueError(
                    f"`model_fn` must return a compiled keras.Model. Received: {type(model).__name__}."
                )
            if not getattr(model, "compiled", False) or model.optimizer is None:
                raise ValueError(
                    f"`model_fn` returned an uncompiled model ({model.name!r}). Call "
                    "`model.compile(optimizer=..., loss=..., metrics=[...])` before returning it."
                )
            if not model.built:
                if input_fn is None:
                    raise ValueError(
                        f"Model {model.name!r} is not built and there is no input to build it from; "
                        "give it a `keras.Input` or call `model.build(...)` in `model_fn`."
                    )
                features, _ = _split_batch(next(iter(_dataset(input_fn()))))
                model(features, training=False)
            model.optimizer.build(model.trainable_variables)
        return _ModelState(model, strategy)

    def _training_state(self, input_fn: InputFn) -> _ModelState:
        if self._train_state is None:
            state = self._build_state(input_fn, seed=True)
            chief = self._config.is_chief
            if self._staging is not None and chief:
                self._staging.pull_state()
            state.manager = ProtectingCheckpointManager(
                state.checkpoint,
                directory=self._local_dir if chief else self._worker_scratch_dir(),
                max_to_keep=self._config.keep_checkpoint_max or None,
                protect=self.model_dir if chief else None,
                on_delete=self._staging.delete_checkpoint if self._staging and chief else None,
            )
            self._train_state = state
        state = self._train_state
        latest = ckpts.latest_checkpoint(self.model_dir)
        if latest is None and self._warm_start is not None and self.warm_started_from is None:
            settings = self._warm_start
            source = warm_start_source(settings.source)
            with state.strategy.scope():
                warm_start(state.model, source, settings.include_optimizer)
            self.warm_started_from = source.path
        if latest is not None and latest.global_step != state.global_step:
            log.info(
                "Restoring model from %s (global step %d).",
                latest.checkpoint_path,
                latest.global_step,
            )
            state.restore(
                latest.checkpoint_path,
                partial=False,
                local_path=self._local_copy(latest.checkpoint_path),
            )
        return state

    def _local_copy(self, checkpoint_path: str) -> str:
        """The local path TensorFlow can read: downloaded first when it is on GCS."""
        if self._staging is not None and is_gcs(checkpoint_path):
            return self._staging.fetch_checkpoint(checkpoint_path)
        return checkpoint_path

    def _worker_scratch_dir(self) -> str:
        # Non-chief workers must take part in saving under MultiWorkerMirroredStrategy, but only
        # the chief's checkpoint is kept; the others write to a scratch directory.
        config = self._config
        return os.path.join(self._local_dir, ".workers", f"{config.task_type}-{config.task_id}")

    def _restored_eval_state(
        self, checkpoint_path: str | None, input_fn: Callable | None
    ) -> _ModelState:
        path = checkpoint_path or self.latest_checkpoint()
        if path is None:
            raise ValueError(
                f"Could not find a trained model in model_dir {self.model_dir!r}: it has no complete "
                "checkpoint. Train first, or pass `checkpoint_path`."
            )
        if self._eval_state is None:
            self._eval_state = self._build_state(input_fn, seed=False, strategy=self._eval_strategy)
        self._eval_state.restore(str(path), partial=True, local_path=self._local_copy(str(path)))
        return self._eval_state

    # -- train -----------------------------------------------------------------------------
    def train(
        self,
        input_fn: InputFn,
        hooks: list | None = None,
        steps: int | None = None,
        max_steps: int | None = None,
        saving_listeners: list | None = None,
    ) -> KerasEstimator:
        """Train until `max_steps` (absolute) or for `steps` more, or until the input ends."""
        if steps is not None and max_steps is not None:
            raise ValueError(
                f"Can not provide both `steps` ({steps}) and `max_steps` ({max_steps})."
            )
        check_optional_int("steps", steps, minimum=1)
        check_optional_int("max_steps", max_steps, minimum=1)
        hook_list = HookList(hooks, "hooks")
        listener_list = ListenerList(saving_listeners, "saving_listeners")

        state = self._training_state(input_fn)
        step = state.global_step
        if max_steps is not None and step >= max_steps:
            log.info(
                "Skipping training: global step %d already reached max_steps=%d.", step, max_steps
            )
            return self
        target = max_steps if max_steps is not None else (step + steps if steps else None)
        loop = _TrainingLoop(self, state, hook_list, listener_list, target)
        loop.run(self._step_runner(state, input_fn))
        return self

    def _step_runner(self, state: _ModelState, input_fn: InputFn) -> LocalSteps | CoordinatedSteps:
        steps_per_execution = max(1, int(getattr(state.model, "steps_per_execution", 1) or 1))
        if is_parameter_server(state.strategy):
            return CoordinatedSteps(
                state, self._cluster_coordinator(), input_fn, steps_per_execution, _dataset
            )
        return LocalSteps(state, _dataset(input_fn()), steps_per_execution)

    # -- evaluate --------------------------------------------------------------------------
    def evaluate(
        self,
        input_fn: InputFn,
        steps: int | None = None,
        hooks: list | None = None,
        checkpoint_path: str | None = None,
        name: str | None = None,
        metrics: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Evaluate a checkpoint (default: the latest) on `steps` batches or the whole input.

        Returns `global_step`, `loss`, every compiled metric and the extra `metrics` (a dict of
        name -> keras Metric, metric name or fn(y_true, y_pred)), and writes them as summaries
        to `model_dir/eval_<name>/`.
        """
        check_optional_int("steps", steps, minimum=1)
        hook_list = HookList(hooks, "hooks")
        state = self._restored_eval_state(checkpoint_path, input_fn)
        model = state.model
        global_step = state.global_step
        hook_list.begin(TrainingContext(self.model_dir, global_step, steps, self._config.is_chief))
        model.reset_metrics()
        loop, extra = state.evaluation_loop(metrics)
        iterator = iter(state.strategy.experimental_distribute_dataset(_dataset(input_fn())))
        progress = ProgressLogger(
            "evaluation", total=steps, every=max(1, self._config.log_step_count_steps)
        )
        evaluated = 0
        while steps is None or evaluated < steps:
            chunk = progress.every if steps is None else min(progress.every, steps - evaluated)
            hook_list.before_step(evaluated)
            done = int(loop(iterator, tf.constant(chunk, tf.int64)))
            evaluated += done
            if done:
                logs = _metrics_as_floats(model)
                progress.update(evaluated, logs)
                if hook_list.after_step(evaluated, logs):
                    break
            if done < chunk:
                break
        if evaluated == 0:
            raise ValueError(f"Evaluation input of {self.model_dir!r} produced no batches.")
        result: dict[str, Any] = {"global_step": global_step, **_metrics_as_floats(model)}
        if extra is not None:
            result.update(extra.results())
        hook_list.end(global_step)
        log.info(
            "Evaluation of %s (step %d) on %d batches:\n%s",
            state.restored_from,
            global_step,
            evaluated,
            _metrics_table(result),
        )
        if self._config.is_chief or self._config.task_type == "evaluator":
            self._write_summaries(eval_dir(self._local_dir, name), global_step, result)
            if self._staging is not None:
                self._staging.push_changed()
        return result

    # -- predict ---------------------------------------------------------------------------
    def predict(
        self, input_fn: Callable[[], Any], checkpoint_path: str | None = None
    ) -> Iterator[Any]:
        """Yield one prediction (a NumPy array, or a dict of them) per input example."""
        state = self._restored_eval_state(checkpoint_path, input_fn)
        for batch in _dataset(input_fn()):
            features, _ = _split_batch(batch)
            outputs = state.model(features, training=False)
            outputs = tf.nest.map_structure(lambda t: t.numpy(), outputs)
            if isinstance(outputs, dict):
                size = len(next(iter(outputs.values())))
                for i in range(size):
                    yield {k: v[i] for k, v in outputs.items()}
            else:
                yield from outputs

    def evaluate_export(
        self, input_fn: InputFn, export_dir: str, steps: int | None = None
    ) -> dict[str, Any]:
        """Evaluate an exported SavedModel (local or gs://) with this model's compiled loss and
        metrics on `steps` batches of `input_fn` (None: all of it).

        Only the export's serving function is used, so any model that serves the same inputs
        (a baseline of another architecture too) is measured exactly like the candidate."""
        check_optional_int("steps", steps, minimum=1)
        local = export_dir
        if is_gcs(export_dir):
            staging = self._staging or GcsStaging(os.path.dirname(export_dir.rstrip("/")))
            local = staging.fetch_export(export_dir)
        loaded = tf.saved_model.load(local)  # kept referenced: `serve` uses its variables
        serve = getattr(loaded, "serve", None)
        if serve is None:
            raise ValueError(
                f"{export_dir!r} has no `serve` endpoint: not an airflow-tfexp export."
            )
        if self._eval_state is None:
            self._eval_state = self._build_state(input_fn, seed=False, strategy=self._eval_strategy)
        model = self._eval_state.model  # only its compiled loss and metrics are used
        model.reset_metrics()
        loss = keras.metrics.Mean(name="loss")

        @tf.function
        def step(batch: Any) -> None:
            x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(batch)
            y_pred = serve(x)
            batch_loss = model.compute_loss(
                x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=False
            )
            loss.update_state(batch_loss, sample_weight=tf.shape(tf.nest.flatten(x)[0])[0])
            model.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

        evaluated = 0
        for batch in _dataset(input_fn()):
            if steps is not None and evaluated >= steps:
                break
            step(batch)
            evaluated += 1
        if evaluated == 0:
            raise ValueError(f"Evaluation input for {export_dir!r} produced no batches.")
        result = {**_metrics_as_floats(model), "loss": float(loss.result())}
        del loaded
        log.info(
            "Evaluation of the export %s on %d batches:\n%s",
            export_dir,
            evaluated,
            _metrics_table(result),
        )
        return result

    # -- export ----------------------------------------------------------------------------
    def export_saved_model(
        self,
        export_dir_base: str,
        serving_input_fn: Callable[[], Any] | None = None,
        checkpoint_path: str | None = None,
    ) -> str:
        """Export a checkpoint as a SavedModel under `export_dir_base/<timestamp>/`.

        `serving_input_fn()` returns the serving input signature (a `tf.TensorSpec` or a dict of
        them); None uses the model's own inputs. The export is written under a temporary name
        and renamed, so a reader never sees half of it.
        """
        state = self._restored_eval_state(checkpoint_path, None)
        remote = self._staging is not None and is_gcs(export_dir_base)
        local_base = self._staging.local_path(export_dir_base) if remote else export_dir_base
        path = export_keras_model(
            state.model,
            local_base,
            serving_input_fn=serving_input_fn,
            metadata={"global_step": state.global_step, "checkpoint_path": state.restored_from},
        )
        if remote:
            local_path, path = path, self._staging.publish_export(path, export_dir_base)
            shutil.rmtree(local_path, ignore_errors=True)
        return path

    # -- summaries -------------------------------------------------------------------------
    def _summary_writer(self, directory: str) -> Any:
        if directory not in self._summary_writers:
            self._summary_writers[directory] = tf.summary.create_file_writer(directory)
        return self._summary_writers[directory]

    def _write_summaries(self, directory: str, step: int, scalars: Mapping[str, float]) -> None:
        writer = self._summary_writer(directory)
        with writer.as_default(step=step):
            for key, value in scalars.items():
                if key != "global_step" and _is_number(value):
                    tf.summary.scalar(key, value)
        writer.flush()


class _TrainingLoop:
    """One call of `KerasEstimator.train`: step chunks, logs, summaries, checkpoints, hooks."""

    def __init__(
        self,
        estimator: KerasEstimator,
        state: _ModelState,
        hooks: HookList,
        listeners: ListenerList,
        target: int | None,
    ) -> None:
        self.estimator = estimator
        self.state = state
        self.hooks = hooks
        self.listeners = listeners
        self.target = target
        config = estimator.config
        self.config = config
        self.max_chunk: int | None = None
        self.last_saved_step = ckpts.latest_checkpoint(estimator.model_dir)
        self.last_saved_step = self.last_saved_step.global_step if self.last_saved_step else None
        self.last_save_time = time.monotonic()
        self.progress = ProgressLogger("training", total=target, every=config.log_step_count_steps)

    def _chunk(self, step: int) -> int:
        """Steps to run before the next log, summary, checkpoint or target boundary."""
        bounds = [
            _to_next(step, self.config.log_step_count_steps),
            _to_next(step, self.config.save_summary_steps),
        ]
        if self.config.save_checkpoints_steps:
            bounds.append(_to_next(step, self.config.save_checkpoints_steps))
        if self.target is not None:
            bounds.append(self.target - step)
        if self.max_chunk is not None:
            bounds.append(self.max_chunk)
        return max(1, min(bounds))

    def run(self, steps: LocalSteps | CoordinatedSteps) -> None:
        state, model = self.state, self.state.model
        self.max_chunk = steps.max_chunk
        step = state.global_step
        context = TrainingContext(self.estimator.model_dir, step, self.target, self.config.is_chief)
        self.hooks.begin(context)
        self.listeners.begin(context)
        self.progress.start(step)
        if self.last_saved_step is None:
            self._save(step)  # an evaluator can start from step 0, as with the Estimator
        model.reset_metrics()
        stop_reason = None
        while stop_reason is None:
            chunk = self._chunk(step)
            self.hooks.before_step(step)
            done = steps.run(chunk)
            step = state.global_step
            ran_out = done < chunk
            reached = self.target is not None and step >= self.target
            at_boundary = self._at_log_or_summary(step) or ran_out or reached
            # Reading metrics syncs with the device: only when someone will look at them.
            wanted = done and (self.hooks.hooks or at_boundary)
            logs = _metrics_as_floats(model) if wanted else {}
            if done and self.hooks.after_step(step, logs):
                stop_reason = "a training hook requested a stop"
            if ran_out and stop_reason is None:
                stop_reason = f"the training input ran out after global step {step}"
            if reached:
                stop_reason = f"max_steps={self.target} reached"
            if done and (at_boundary or stop_reason is not None):
                self._log_and_summarize(step, logs, final=stop_reason is not None)
            if stop_reason is None and self._checkpoint_due(step):
                if self._save(step):
                    stop_reason = "a saving listener requested a stop"
        if self.last_saved_step != step:
            self._save(step)
        if not self.config.is_chief:
            shutil.rmtree(self.state.manager.directory, ignore_errors=True)
        log.info("Training stopped at global step %d: %s.", step, stop_reason)
        self.hooks.end(step)
        self.listeners.end(step)

    def _at_log_or_summary(self, step: int) -> bool:
        config = self.config
        return step % config.log_step_count_steps == 0 or step % config.save_summary_steps == 0

    def _checkpoint_due(self, step: int) -> bool:
        if self.last_saved_step == step:
            return False
        if self.config.save_checkpoints_steps:
            return step % self.config.save_checkpoints_steps == 0
        return time.monotonic() - self.last_save_time >= self.config.save_checkpoints_secs

    def _log_and_summarize(self, step: int, logs: dict[str, float], final: bool) -> None:
        rate = self.progress.update(step, logs, force=final)
        at_summary = final or step % self.config.save_summary_steps == 0
        if at_summary and self.config.is_chief:
            scalars = dict(logs)
            if rate is not None:
                scalars["global_step/sec"] = rate
            self.estimator._write_summaries(self.estimator._local_dir, step, scalars)
        if step % self.config.log_step_count_steps == 0:
            self.state.model.reset_metrics()

    def _save(self, step: int) -> bool:
        self.listeners.before_save(step)
        path = self.state.manager.save(checkpoint_number=step)
        self.last_saved_step = step
        self.last_save_time = time.monotonic()
        log.info("Saved checkpoint for step %d: %s", step, path)
        if not self.config.is_chief:
            return False
        staging = self.estimator._staging
        if staging is not None:
            path = staging.push_checkpoint(path)
            staging.push_changed()
        return bool(self.listeners.after_save(step, path))


def _to_next(step: int, every: int) -> int:
    return every - step % every


def _dataset(value: Any) -> tf.data.Dataset:
    if isinstance(value, tf.data.Dataset):
        return value
    raise ValueError(
        f"An input_fn must return a tf.data.Dataset of (features, labels). Received: {type(value).__name__}."
    )


def _split_batch(batch: Any) -> tuple[Any, Any]:
    if isinstance(batch, tuple):
        return batch[0], (batch[1] if len(batch) > 1 else None)
    return batch, None


def _metrics_table(result: Mapping[str, Any]) -> str:
    width = max(len(k) for k in result)
    return "\n".join(
        f"  {k.ljust(width)}  {v:.6g}" if _is_number(v) else f"  {k.ljust(width)}  {v}"
        for k, v in result.items()
    )
