"""KerasEstimator: tf.estimator's train / evaluate / predict / export on a compiled Keras 3 model.

Training is step-based (not epochs), like the Estimator: the global step is the optimizer's
iteration count, checkpoints are named by it, and training resumes from the newest complete
checkpoint. Steps run in a compiled loop of `steps_per_execution` steps (the `model.compile`
argument), so orchestration costs no per-step Python. The chief of a parameter-server
cluster schedules the same loop on the workers (`estimator.step_runners.CoordinatedSteps`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import keras
import tensorflow as tf

from airflow_tfexp.experiment._progress import ProgressLogger
from airflow_tfexp.experiment._validation import check_optional_int
from airflow_tfexp.experiment.estimator.checkpoint_manager import ProtectingCheckpointManager
from airflow_tfexp.experiment.estimator.distribution import is_parameter_server, select_strategy
from airflow_tfexp.experiment.estimator.endless_input import EndlessInputWarning
from airflow_tfexp.experiment.estimator.export_evaluation import evaluate_saved_model
from airflow_tfexp.experiment.estimator.input_functions import EVAL, PREDICT, TRAIN, bind_input_fn
from airflow_tfexp.experiment.estimator.model_state import (
    ModelState,
    as_dataset,
    metrics_as_floats,
    metrics_table,
    split_batch,
)
from airflow_tfexp.experiment.estimator.step_runners import CoordinatedSteps, LocalSteps
from airflow_tfexp.experiment.estimator.summaries import SummaryWriters
from airflow_tfexp.experiment.estimator.training_loop import TrainingLoop
from airflow_tfexp.experiment.evaluation.results import eval_dir
from airflow_tfexp.experiment.export.saved_model import export_keras_model
from airflow_tfexp.experiment.export.serving import check_call, named_outputs, serving_inputs
from airflow_tfexp.experiment.hooks import HookList, ListenerList, TrainingContext
from airflow_tfexp.experiment.retraining.warm_start import (
    WarmStartSettings,
    as_warm_start_settings,
    warm_start,
    warm_start_source,
)
from airflow_tfexp.experiment.run_config import RunConfig, as_run_config
from airflow_tfexp.experiment.storage import checkpoints as ckpts
from airflow_tfexp.experiment.storage.model_dir_storage import model_dir_storage

log = logging.getLogger(__name__)

ModelFn = Callable[[dict[str, Any]], keras.Model]
InputFn = Callable[[], tf.data.Dataset]


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

    accepts_training_hooks = True  # the engine may add its own (the trainer lease's guards)

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
        self._train_state: ModelState | None = None
        self._eval_state: ModelState | None = None
        self._summaries = SummaryWriters()
        # TensorFlow works on local files; a gs:// model dir is mirrored through a staging dir.
        self._storage = model_dir_storage(model_dir)

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
    ) -> ModelState:
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
                features, _ = split_batch(next(iter(as_dataset(input_fn()))))
                model(features, training=False)
            model.optimizer.build(model.trainable_variables)
        return ModelState(model, strategy)

    def _training_state(self, input_fn: InputFn) -> ModelState:
        if self._train_state is None:
            state = self._build_state(input_fn, seed=True)
            chief = self._config.is_chief
            if chief:
                self._storage.prepare_training()
            state.manager = ProtectingCheckpointManager(
                state.checkpoint,
                directory=self._storage.local_dir if chief else self._worker_scratch_dir(),
                max_to_keep=self._config.keep_checkpoint_max or None,
                protect=self.model_dir if chief else None,
                on_delete=self._storage.checkpoint_deleter() if chief else None,
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
                local_path=self._storage.local_checkpoint(latest.checkpoint_path),
            )
        return state

    def _worker_scratch_dir(self) -> str:
        # Non-chief workers must take part in saving under MultiWorkerMirroredStrategy, but only
        # the chief's checkpoint is kept; the others write to a scratch directory.
        config = self._config
        return os.path.join(
            self._storage.local_dir, ".workers", f"{config.task_type}-{config.task_id}"
        )

    def _restored_eval_state(
        self, checkpoint_path: str | None, input_fn: Callable | None
    ) -> ModelState:
        path = checkpoint_path or self.latest_checkpoint()
        if path is None:
            raise ValueError(
                f"Could not find a trained model in model_dir {self.model_dir!r}: it has no complete "
                "checkpoint. Train first, or pass `checkpoint_path`."
            )
        if self._eval_state is None:
            self._eval_state = self._build_state(input_fn, seed=False, strategy=self._eval_strategy)
        self._eval_state.restore(
            str(path), partial=True, local_path=self._storage.local_checkpoint(str(path))
        )
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
        input_fn = self._bind(input_fn, TRAIN)
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
        loop = TrainingLoop(
            state,
            config=self._config,
            storage=self._storage,
            summaries=self._summaries,
            hooks=hook_list,
            listeners=listener_list,
            target=target,
        )
        loop.run(self._step_runner(state, input_fn))
        return self

    def _step_runner(self, state: ModelState, input_fn: InputFn) -> LocalSteps | CoordinatedSteps:
        steps_per_execution = max(1, int(getattr(state.model, "steps_per_execution", 1) or 1))
        if is_parameter_server(state.strategy):
            return CoordinatedSteps(
                state, self._cluster_coordinator(), input_fn, steps_per_execution, as_dataset
            )
        return LocalSteps(state, as_dataset(input_fn()), steps_per_execution)

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
        input_fn = self._bind(input_fn, EVAL)
        state = self._restored_eval_state(checkpoint_path, input_fn)
        model = state.model
        global_step = state.global_step
        hook_list.begin(TrainingContext(self.model_dir, global_step, steps, self._config.is_chief))
        model.reset_metrics()
        loop, extra = state.evaluation_loop(metrics)
        iterator = iter(state.strategy.experimental_distribute_dataset(as_dataset(input_fn())))
        progress = ProgressLogger(
            "evaluation", total=steps, every=max(1, self._config.log_step_count_steps)
        )
        evaluated, endless = 0, EndlessInputWarning(self.model_dir) if steps is None else None
        while steps is None or evaluated < steps:
            chunk = progress.every if steps is None else min(progress.every, steps - evaluated)
            hook_list.before_step(evaluated)
            done = int(loop(iterator, tf.constant(chunk, tf.int64)))
            evaluated += done
            if endless is not None:
                endless.update(evaluated)
            if done:
                logs = metrics_as_floats(model)
                progress.update(evaluated, logs)
                if hook_list.after_step(evaluated, logs):
                    break
            if done < chunk:
                break
        if evaluated == 0:
            raise ValueError(f"Evaluation input of {self.model_dir!r} produced no batches.")
        result: dict[str, Any] = {"global_step": global_step, **metrics_as_floats(model)}
        if extra is not None:
            result.update(extra.results())
        hook_list.end(global_step)
        log.info(
            "Evaluation of %s (step %d) on %d batches:\n%s",
            state.restored_from,
            global_step,
            evaluated,
            metrics_table(result),
        )
        if self._config.is_chief or self._config.task_type == "evaluator":
            self._summaries.write(eval_dir(self._storage.local_dir, name), global_step, result)
            self._storage.push_summaries()
            self._storage.wait_for_uploads()  # an evaluator's results are visible when it returns
        return result

    # -- predict ---------------------------------------------------------------------------
    def predict(
        self, input_fn: Callable[[], Any], checkpoint_path: str | None = None
    ) -> Iterator[Any]:
        """Yield one prediction per input example: a NumPy array, or for a model with several
        outputs a dict of them named like the export's outputs."""
        input_fn = self._bind(input_fn, PREDICT)
        state = self._restored_eval_state(checkpoint_path, input_fn)
        for batch in as_dataset(input_fn()):
            features, _ = split_batch(batch)
            outputs = state.model(features, training=False)
            if isinstance(outputs, (list, tuple)):  # several outputs: named as the export does
                outputs = named_outputs(state.model, outputs)
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
        input_fn = self._bind(input_fn, EVAL)
        if self._eval_state is None:
            self._eval_state = self._build_state(input_fn, seed=False, strategy=self._eval_strategy)
        local = self._storage.local_export(export_dir)
        return evaluate_saved_model(self._eval_state.model, local, input_fn, steps, export_dir)

    # -- export ----------------------------------------------------------------------------
    def check_serving_input(
        self, serving_input_fn: Callable[[], Any] | None, input_fn: InputFn
    ) -> None:
        """Call `serving_input_fn` and check it against the model (ValueError naming what does
        not fit) before training spends hours on a model that cannot be exported."""
        model = self._training_state(self._bind(input_fn, TRAIN)).model
        inputs = serving_inputs(model, serving_input_fn)
        if not getattr(model, "inputs", None):  # subclassed: only a call shows what it takes
            check_call(model, inputs)

    def _bind(self, input_fn: Callable[..., Any], mode: str) -> Callable[[], Any]:
        return bind_input_fn(input_fn, mode, self._params, self._config)

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
        path = export_keras_model(
            state.model,
            self._storage.local_export_base(export_dir_base),
            serving_input_fn=serving_input_fn,
            metadata={"global_step": state.global_step, "checkpoint_path": state.restored_from},
        )
        return self._storage.publish_export(path, export_dir_base)
