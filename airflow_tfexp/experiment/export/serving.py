"""What an export serves: named inputs mapped onto the model's inputs, and named outputs.

`serving_input_fn()` returns a `tf.TensorSpec` or a dict of them keyed by feature name. The
export's `serving_default` signature takes exactly those names: TF Serving's
`{"inputs": {"age": ..., "income": ...}}` and `signature(age=..., income=...)` work as written.
A dict reaches the model by name (a functional model's dict or named list of inputs) or, with
one entry, as the single input of a one-input model. Outputs are named after the model's dict
keys, or the output layers a user named (`Dense(1, name="price")`); an output layer with a name
Keras made up (`dense_3`, different in every process) is served as `output_<i>`.

Everything here is checked without tracing the model, so the trainer checks an exporter's
`serving_input_fn` before the first step (`check_serving_input`), not after training.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import keras
import tensorflow as tf

# TensorFlow's rule for a signature argument (an op name).
_SIGNATURE_NAME = re.compile(r"^[A-Za-z0-9.][A-Za-z0-9_.\-/]*$")
SINGLE, BY_NAME, IN_ORDER = "single", "dict", "list"  # how named inputs reach `model.call`


@dataclass(frozen=True)
class ServingInputs:
    """The signature's named inputs and how they are fed to the model."""

    specs: dict[str, tf.TensorSpec]  # argument name -> spec named by it
    feed: str  # SINGLE: the one tensor; BY_NAME: the dict; IN_ORDER: a list in `order`
    order: tuple[str, ...]

    def model_inputs(self, named: Mapping[str, Any]) -> Any:
        """The model's call argument from the signature's named tensors."""
        if self.feed == SINGLE:
            return named[self.order[0]]
        if self.feed == IN_ORDER:
            return [named[name] for name in self.order]
        return dict(named)

    def named(self, features: Any) -> dict[str, Any]:
        """The signature's named tensors from an input function's features (a tensor, a list
        in the model's input order, or a dict): how an evaluation feeds the export."""
        if isinstance(features, Mapping):
            return {name: features[name] for name in self.order}
        if isinstance(features, (list, tuple)):
            return dict(zip(self.order, features, strict=True))
        return {self.order[0]: features}

    def as_metadata(self) -> dict[str, Any]:
        return {"feed": self.feed, "inputs": list(self.order)}


def _fail(message: str) -> ValueError:
    return ValueError(
        f"{message} `serving_input_fn` must return a tf.TensorSpec, or a dict of them keyed by "
        "feature name (e.g. {'age': tf.TensorSpec([None, 1], tf.float32)})."
    )


def _model_inputs(model: keras.Model) -> tuple[Any, list[Any]] | None:
    """(the model's declared input structure, its input tensors), None for a model with no
    symbolic inputs (subclassed)."""
    inputs = getattr(model, "inputs", None)
    if not inputs:
        return None
    try:
        structure = model.input  # as declared: a dict, a list or one tensor
    except (AttributeError, ValueError):
        structure = inputs[0] if len(inputs) == 1 else list(inputs)
    return structure, list(inputs)


def _returned_specs(model: keras.Model, returned: Any, declared: Any) -> tuple[dict, bool]:
    """(name -> spec, whether the user returned a bare spec) from what `serving_input_fn`
    returned; a list is named after the model's inputs."""
    if isinstance(returned, tf.TensorSpec):
        name = returned.name or _single_input_name(declared) or "inputs"
        return {name: returned}, True
    if isinstance(returned, Mapping):
        specs = dict(returned)
    elif isinstance(returned, (list, tuple)) and declared is not None:
        names = [_input_name(t, i) for i, t in enumerate(declared[1])]
        if len(returned) != len(names):
            raise _fail(
                f"It returned {len(returned)} specs for model {model.name!r}, which has "
                f"{len(names)} inputs ({', '.join(names)})."
            )
        specs = dict(zip(names, returned, strict=True))
    else:
        raise _fail(f"Received: {returned!r}.")
    if not specs:
        raise _fail("It returned an empty dict.")
    for key, spec in specs.items():
        if not isinstance(key, str) or not _SIGNATURE_NAME.match(key):
            raise _fail(
                f"Invalid feature name {key!r}: a signature input name is letters, digits and "
                "'_', '.', '-', '/' (not starting with one of '_-/')."
            )
        if not isinstance(spec, tf.TensorSpec):
            raise _fail(f"The value for {key!r} is {spec!r}, not a tf.TensorSpec.")
    _check_distinct(specs)
    return specs, False


def _check_distinct(specs: Mapping[str, Any]) -> None:
    """TensorFlow lower-cases signature names and turns other characters into '_': two keys
    that become one name would fail the export after training."""
    seen: dict[str, str] = {}
    for key in specs:
        sanitized = re.sub(r"[^a-z0-9_]", "_", key.lower())
        if sanitized in seen:
            raise _fail(
                f"Feature names {seen[sanitized]!r} and {key!r} are the same signature argument "
                f"({sanitized!r}) once TensorFlow lower-cases them and replaces '.', '-', '/'."
            )
        seen[sanitized] = key


_KERAS_INPUT_NAME = re.compile(r"^(keras_tensor|input_layer)(_\d+)?$")


def _input_name(tensor: Any, index: int | None = None) -> str:
    """A symbolic input's name; `inputs` (`inputs_<index>` of several) for one Keras named
    itself (`keras_tensor_9`: it differs from process to process)."""
    if not _KERAS_INPUT_NAME.match(tensor.name):
        return tensor.name
    return "inputs" if index is None else f"inputs_{index}"


def _any_batch(tensor: Any) -> tf.TensorSpec:
    """The spec of a model input, for any batch size (a model built from a first batch has
    that batch's size in its input shape)."""
    shape = list(tensor.shape)
    return tf.TensorSpec([None, *shape[1:]] if shape else shape, tensor.dtype)


def _single_input_name(declared: Any) -> str | None:
    if declared is None or len(declared[1]) != 1:
        return None
    return _input_name(declared[1][0])


def _check_dtype(model: keras.Model, key: str, spec: tf.TensorSpec, tensor: Any) -> None:
    wanted = tf.as_dtype(tensor.dtype)
    if (spec.dtype == tf.string) != (wanted == tf.string):
        raise ValueError(
            f"Serving input {key!r} is {spec.dtype.name} but model {model.name!r} takes "
            f"{wanted.name} for its input {tensor.name!r}: the export would fail on every "
            f"request. Serve {wanted.name}, or turn strings into numbers inside the model "
            "(a preprocessing layer such as keras.layers.StringLookup)."
        )
    if spec.shape.rank is not None and tensor.shape is not None:
        rank = len(tensor.shape)
        wrong_size = spec.shape.rank == rank and any(
            a is not None and b is not None and a != b
            for a, b in zip(spec.shape.as_list()[1:], list(tensor.shape)[1:], strict=True)
        )
        if abs(spec.shape.rank - rank) > 1 or wrong_size:  # Keras adds or drops a 1-dim itself
            raise ValueError(
                f"Serving input {key!r} has shape {spec.shape} but model {model.name!r} takes "
                f"shape {tuple(tensor.shape)} for its input {tensor.name!r}."
            )


def serving_inputs(model: keras.Model, serving_input_fn: Callable[[], Any] | None) -> ServingInputs:
    """The export's named inputs (ValueError naming what does not fit the model)."""
    declared = _model_inputs(model)
    if serving_input_fn is None:
        if declared is None:
            raise ValueError(
                f"Model {model.name!r} has no symbolic inputs (a subclassed model?); pass a "
                "`serving_input_fn` returning its tf.TensorSpec (or a dict of them)."
            )
        structure, tensors = declared
        if isinstance(structure, Mapping):
            returned: Any = {k: _any_batch(t) for k, t in structure.items()}
        elif len(tensors) == 1:
            returned = _any_batch(tensors[0])  # named below
        else:
            returned = {_input_name(t, i): _any_batch(t) for i, t in enumerate(tensors)}
    else:
        returned = serving_input_fn()
    specs, bare = _returned_specs(model, returned, declared)
    specs = {key: tf.TensorSpec(spec.shape, spec.dtype, name=key) for key, spec in specs.items()}
    if declared is None:  # subclassed: the model gets what the user returned
        return ServingInputs(specs, SINGLE if bare else BY_NAME, tuple(specs))
    structure, tensors = declared
    if isinstance(structure, Mapping):
        feed, by_key = BY_NAME, dict(structure)
    elif len(tensors) == 1:
        if len(specs) != 1:
            raise ValueError(
                f"`serving_input_fn` returned {len(specs)} inputs ({', '.join(specs)}) for model "
                f"{model.name!r}, which has one input ({tensors[0].name!r}): return one "
                "tf.TensorSpec, or a dict with one entry named as clients will send it."
            )
        key = next(iter(specs))
        return _checked(model, ServingInputs(specs, SINGLE, (key,)), {key: tensors[0]})
    else:
        feed, by_key = IN_ORDER, {_input_name(t, i): t for i, t in enumerate(tensors)}
    missing = [name for name in by_key if name not in specs]
    unknown = [name for name in specs if name not in by_key]
    if missing or unknown:
        raise ValueError(
            f"`serving_input_fn` names inputs ({', '.join(specs)}) that do not match model "
            f"{model.name!r}'s inputs ({', '.join(by_key)})"
            + (f"; missing: {', '.join(missing)}" if missing else "")
            + (f"; unknown: {', '.join(unknown)}" if unknown else "")
            + ". Key the dict by the model's input names: the keys of a model on a dict, else "
            "the names given to keras.Input(name=...) (inputs_0, inputs_1, ... for unnamed ones)."
        )
    order = tuple(by_key) if feed == IN_ORDER else tuple(specs)
    return _checked(model, ServingInputs(specs, feed, order), by_key)


def _checked(
    model: keras.Model, inputs: ServingInputs, tensors: Mapping[str, Any]
) -> ServingInputs:
    for key, spec in inputs.specs.items():
        _check_dtype(model, key, spec, tensors[key])
    return inputs


def check_call(model: keras.Model, inputs: ServingInputs) -> None:
    """Call a model without symbolic inputs (subclassed) once on a batch of zeros (empty
    strings) of the serving specs: what its `call` does with them would otherwise show only at
    the export, after training. ValueError naming the inputs and the model's error."""
    named = {
        key: tf.zeros([d or 1 for d in spec.shape.as_list()], spec.dtype)
        if spec.dtype != tf.string
        else tf.fill([d or 1 for d in spec.shape.as_list()], "")
        for key, spec in inputs.specs.items()
    }
    try:
        model(inputs.model_inputs(named), training=False)
    except Exception as err:  # noqa: BLE001 - any failure of the user's call is reported
        raise ValueError(
            f"Model {model.name!r} fails on the serving inputs of `serving_input_fn` "
            f"({', '.join(inputs.specs)}), called once on zeros before training: "
            f"{type(err).__name__}: {err}"
        ) from err


# -- outputs ---------------------------------------------------------------------------------
def _snake_case(name: str) -> str:
    """Keras's own rule for a layer's default name (`keras.src.utils.naming.to_snake_case`)."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _given_name(model: keras.Model, name: str) -> str | None:
    """`name` when a user chose it, None when Keras made it up (`dense`, `dense_3`)."""
    try:
        layer = model.get_layer(name)
    except ValueError:
        return name
    if re.fullmatch(re.escape(_snake_case(type(layer).__name__)) + r"(_\d+)?", name):
        return None
    return name


def _output_layer_names(model: keras.Model) -> list[str] | None:
    names = getattr(model, "output_names", None)
    if names is None and isinstance(model, keras.Sequential) and model.layers:
        names = [model.layers[-1].name]
    return list(names) if names else None


def output_names(model: keras.Model, outputs: Any) -> list[str]:
    """The signature's output names, in the order of the model's flat outputs."""
    if isinstance(outputs, Mapping):
        return [str(key) for key in outputs]
    flat = list(outputs) if isinstance(outputs, Sequence) else [outputs]
    layer_names = _output_layer_names(model)
    given: list[str | None] = [None] * len(flat)
    if layer_names and len(layer_names) == len(flat):
        given = [_given_name(model, name) for name in layer_names]
    names: list[str] = []
    for index, name in enumerate(given):
        if not name or name in names:
            name = f"output_{index}"
            while name in names or name in given:  # never one a user gave another output
                name += "_"
        names.append(name)
    return names


def named_outputs(model: keras.Model, outputs: Any) -> dict[str, Any]:
    """The model's outputs as the signature's dict."""
    if isinstance(outputs, Mapping):
        return {str(key): value for key, value in outputs.items()}
    flat = list(outputs) if isinstance(outputs, Sequence) else [outputs]
    return dict(zip(output_names(model, outputs), flat, strict=True))


def output_structure(outputs: Any) -> str:
    if isinstance(outputs, Mapping):
        return BY_NAME
    return IN_ORDER if isinstance(outputs, Sequence) else SINGLE


def model_outputs(served: Mapping[str, Any], metadata: Mapping[str, Any]) -> Any:
    """The model's output structure back from the signature's dict (for evaluating an export
    with the model's compiled loss)."""
    names, structure = metadata["outputs"], metadata["output_structure"]
    if structure == SINGLE:
        return served[names[0]]
    if structure == IN_ORDER:
        return [served[name] for name in names]
    return dict(served)
