"""Keras 3 models and layers (``tf.keras`` in TensorFlow 2.16+, or standalone ``keras`` on its
tensorflow, torch or jax backend). Imported only once keras is already imported by the test.

Weight names come from the weights' paths, made stable: the model's own name is dropped and
Keras's process-wide name counters (``dense_3`` for the fourth Dense built in this process) are
renumbered in order of appearance within the model, so ``dense/kernel`` is ``dense/kernel``
whichever test ran first.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import keras
import numpy as np
from keras.src.backend.common import global_state

from ..errors import ModelError, exception_line
from . import Array, flatten

if TYPE_CHECKING:
    from ..training import Loss, Optimizer, Trained

_COUNTER = re.compile(r"^(?P<base>.+?)(?:_(?P<n>\d+))?$")
#: Keras's global seed and global SeedGenerator (``keras.utils.set_random_seed`` sets both).
_SEED_ATTRIBUTES = ("global_random_seed", "global_seed_generator")


def owns(model: Any) -> bool:
    return isinstance(model, keras.layers.Layer)


def backend() -> str:
    return str(keras.backend.backend())


def save() -> Callable[[], None]:
    """Snapshot Keras's global seed and seed generator (python, numpy, torch and tensorflow
    generators are saved by their own modules); return a restore."""
    saved = {name: global_state.get_global_attribute(name) for name in _SEED_ATTRIBUTES}

    def restore() -> None:
        for name, old in saved.items():
            global_state.set_global_attribute(name, old)

    return restore


def numeric_globals() -> dict[str, tuple[Any, Callable[[], None]]]:
    """Keras's process-wide numeric settings: description -> (value, how to put it back)."""
    floatx = keras.config.floatx()
    policy = keras.config.dtype_policy()
    return {
        "keras floatx": (floatx, lambda: keras.config.set_floatx(floatx)),
        "keras dtype policy": (policy.name, lambda: keras.config.set_dtype_policy(policy)),
    }


def seed(value: int) -> None:
    """What ``keras.utils.set_random_seed`` does to Keras's own state, without importing
    tensorflow or touching other frameworks (the harness seeds those itself)."""
    global_state.set_global_attribute(_SEED_ATTRIBUTES[0], value)
    global_state.set_global_attribute(_SEED_ATTRIBUTES[1], None)


@contextmanager
def placed(device: str) -> Iterator[None]:
    """Build and run Keras models on ``device`` (``cuda:N`` is Keras's ``gpu:N``)."""
    name = device.replace("cuda", "gpu") if device.startswith("cuda") else device
    with keras.device(name):
        yield


def dtype_name(dtype: Any) -> str:
    return str(keras.backend.standardize_dtype(dtype))


def to_numpy(value: Any) -> tuple[np.ndarray, str] | None:
    if type(value).__name__ in ("SparseTensor", "RaggedTensor"):  # tensorflow's; Keras's own
        raise ModelError(  # sparse outputs are tf.SparseTensor on that backend
            f"a {type(value).__name__}: return a dense tensor (tf.sparse.to_dense, "
            "RaggedTensor.to_tensor)"
        )
    if not (keras.ops.is_tensor(value) or isinstance(value, keras.Variable)):
        return None
    name = dtype_name(value.dtype)
    if isinstance(value, keras.Variable):
        value = value.value
    if name == "bfloat16":  # numpy has no bfloat16
        value = keras.ops.cast(value, "float32")
    if hasattr(value, "detach"):  # torch backend
        return value.detach().cpu().numpy(), name
    if hasattr(value, "numpy"):  # tensorflow backend; avoids np.array(tensor)'s copy warning
        return np.asarray(value.numpy()), name
    return np.asarray(value), name


def stable_names(
    paths: list[str], model_name: str | None, automatic: set[str] | frozenset[str] = frozenset()
) -> list[str]:
    """Weight paths without the model's own name (a bare layer keeps its name), with Keras's
    process-wide name counters renumbered in order of appearance.

    Only names Keras made up are renumbered: ``<automatic base>`` or ``<automatic base>_<n>``,
    where the automatic bases are the snake-case class names of the model's layers. Names a
    user chose are kept. If renumbering would make two paths equal, the raw paths are used.
    """
    parts = [p.split("/") for p in paths]
    if model_name is not None:
        parts = [p[1:] if len(p) > 1 and p[0] == model_name else p for p in parts]
    seen: dict[str, dict[str, int]] = {}
    renamed: dict[str, str] = {}
    for components in parts:
        for component in components:
            if component in renamed:
                continue
            match = _COUNTER.match(component)
            base = match["base"] if match else component
            if base not in automatic:
                renamed[component] = component
                continue
            index = seen.setdefault(base, {}).setdefault(component, len(seen[base]))
            renamed[component] = base if index == 0 else f"{base}_{index}"
    names = ["/".join(renamed[c] for c in components) for components in parts]
    if len(set(names)) != len(names):
        names = ["/".join(components) for components in parts]
    return names


def _automatic_bases(model: Any) -> frozenset[str]:
    """Snake-case class names of the model and its layers: the bases Keras names them from."""
    from keras.src.utils.naming import to_snake_case

    layers = [model, *getattr(model, "_flatten_layers", lambda: [])()]
    return frozenset(to_snake_case(type(layer).__name__) for layer in layers)


def weight_names(model: Any) -> list[str]:
    return stable_names([w.path for w in model.weights], _own_name(model), _automatic_bases(model))


def _own_name(model: Any) -> str | None:
    """A model's name prefixes its weights' paths and is dropped; a bare layer's is kept."""
    return str(model.name) if isinstance(model, keras.Model) else None


class KerasAdapter:
    name = "keras"
    convention = "keras"

    def prepare(self, model: Any, device: str | None) -> Any:
        return model

    def convert_input(self, value: Any, model: Any, shared: bool = False) -> Any:
        if isinstance(value, np.ndarray):
            value = keras.ops.convert_to_tensor(value)
        if backend() == "torch" and not shared:  # mutable, may share the caller's memory
            clone = getattr(value, "clone", None)
            return clone() if callable(clone) else value
        return value  # tensorflow and jax tensors are immutable: nothing to protect

    def forward(
        self, model: Any, inputs: tuple[Any, ...], keywords: Mapping[str, Any] | None = None
    ) -> Any:
        if keywords:
            return _keyword_forward(model, inputs, keywords)
        args = inputs[0] if len(inputs) == 1 else list(inputs)
        if backend() == "torch":
            import torch

            with torch.no_grad():
                return model(args, training=False)
        return model(args, training=False)

    def parameters(self, model: Any) -> list[Array]:
        weights = list(model.weights)
        names = weight_names(model)
        out = []
        for name, weight in zip(names, weights, strict=True):
            host = to_numpy(weight)
            assert host is not None
            out.append(Array(name, host[0], host[1]))
        return out

    def set_parameters(self, model: Any, values: Mapping[str, np.ndarray]) -> None:
        weights = list(model.weights)
        names = weight_names(model)
        for name, weight in zip(names, weights, strict=True):
            weight.assign(values[name])

    def float64_copy(self, model: Any) -> Any | None:
        return None  # Keras fixes dtypes at build time; rebuilding in float64 is not generic

    def outputs(self, raw: Any, model: Any) -> list[Array]:
        return flatten(raw, to_numpy)

    def device(self, model: Any) -> str:
        if not model.weights:
            return "cpu"
        device = str(getattr(model.weights[0].value, "device", "cpu")).lower()
        return device.rsplit("device:", 1)[-1] if "gpu" in device or "cuda" in device else "cpu"

    def feature_axis(self, ndim: int) -> int:
        return -1  # Keras is channels-last

    def observe_layers(self, model: Any, forward: Callable[[], Any]) -> tuple[Any, Any]:
        """``forward()`` with every leaf layer observed -> (its output, the layers' record)."""
        return observe_layers(model, forward)

    def train(
        self,
        model: Any,
        inputs: tuple[Any, ...],
        keywords: Mapping[str, Any] | None,
        targets: tuple[Any, ...],
        loss: Loss,
        optimizer: Optimizer,
        steps: int,
        seed: int,
    ) -> Trained:
        """``steps`` optimizer steps in training mode (the contract in ``training``), with the
        backend's own autodiff (``keras_training``)."""
        from . import keras_training, seeded

        arguments = call_arguments(model, inputs, keywords)
        if not model.built:  # a layer or subclassed model creates its weights on its first call
            with seeded(seed):
                self.forward(model, inputs, keywords)
        names = weight_names(model)
        return keras_training.train(
            model, arguments, names, self.outputs, targets, loss, optimizer, steps, seed
        )


ADAPTER = KerasAdapter()


# -- keyword inputs (issue 14) ----------------------------------------------------------------


def input_names(model: Any) -> list[str] | None:
    """A functional model's input names (its keyword inputs are passed as one dict keyed by
    them); ``None`` for a layer or subclassed model (keywords go to its ``call``)."""
    if not isinstance(model, keras.Model) or not hasattr(model, "_inputs_struct"):
        return None
    inputs = getattr(model, "inputs", None)
    if not isinstance(inputs, list):
        return None
    return [str(getattr(i, "name", "")) for i in inputs]


def call_arguments(
    model: Any, inputs: tuple[Any, ...], keywords: Mapping[str, Any] | None
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The positional and keyword arguments of the model's call, as ``forward`` passes them
    (without ``training``)."""
    if not keywords:
        return (inputs[0] if len(inputs) == 1 else list(inputs),), {}
    if input_names(model) is not None:
        if inputs:
            raise ModelError(
                "a Keras functional model takes its inputs either positionally or all by "
                "name (a mapping in inputs=), not both"
            )
        return (dict(keywords),), {}
    return tuple(inputs), dict(keywords)


def _keyword_forward(model: Any, inputs: tuple[Any, ...], keywords: Mapping[str, Any]) -> Any:
    """A functional model gets its keyword inputs as one dict keyed by input name (with no
    positional inputs); a layer or subclassed model gets them as keyword arguments."""
    if input_names(model) is not None:
        if inputs:
            raise ModelError(
                "a Keras functional model takes its inputs either positionally or all by "
                "name (a mapping in inputs=), not both"
            )
        call: Callable[[], Any] = lambda: model(dict(keywords), training=False)  # noqa: E731
    else:
        call = lambda: model(*inputs, **keywords, training=False)  # noqa: E731
    if backend() == "torch":
        import torch

        with torch.no_grad():
            return call()
    return call()


# -- layer observation (localisation, see ``layers``) -----------------------------------------


def _leaf_layers(model: Any) -> list[tuple[list[str], Any]]:
    """(path of layer names from the model down, layer) for every leaf layer, nested models
    included, in the order Keras tracks them; a layer tracked twice (shared by two nested
    models, or held by two attributes of a subclassed model) once, under its first path:
    observed twice, each of its calls would be recorded twice."""
    found: list[tuple[list[str], Any]] = []
    seen: set[int] = set()

    def walk(layer: Any, path: list[str], depth: int) -> None:
        children = list(layer._flatten_layers(include_self=False, recursive=False))
        # a recurrent layer is one layer (as torch's nn.LSTM is): its cell runs inside the
        # backend's loop (jax's scan traces it), where there are no values to observe
        if not children or isinstance(layer, keras.layers.RNN):
            if type(layer).__name__ != "InputLayer" and id(layer) not in seen:
                seen.add(id(layer))
                found.append((path, layer))
            return
        if depth > 32:
            return
        for child in children:
            walk(child, [*path, str(child.name)], depth + 1)

    walk(model, [] if isinstance(model, keras.Model) else [str(model.name)], 0)
    return found


def observe_layers(model: Any, forward: Callable[[], Any]) -> tuple[Any, Any]:
    """Run ``forward`` with every leaf layer's ``call`` observed; return its output and the
    layers' record (see ``layers``). Each layer gets its class's ``call`` back, also when the
    forward raises."""
    from ..layers import (
        LayerOutput,
        flatten_output,
        host_stats,
        to_golden,
        unique_names,
        unrecorded,
    )

    leaves = _leaf_layers(model)
    paths = stable_names(
        ["/".join(p) or str(model.name) for p, _ in leaves], None, _automatic_bases(model)
    )
    calls: list[tuple[str, str, list[tuple[str, str, tuple[int, ...], dict[str, Any]]]]] = []
    failed: list[str] = []

    def observed(name: str, layer: Any, call: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            output = call(*args, **kwargs)
            if not getattr(model, "built", True):
                # the model's first call building it (on the torch backend a subclassed
                # model runs its ``call`` once to build, then again): not its forward
                return output
            if failed:
                return output
            parts = []
            try:  # measuring must never break the model's forward
                for suffix, tensor in flatten_output(output, _is_tensor):
                    host = to_numpy(tensor)
                    if host is not None:
                        stats = host_stats(host[0])
                        parts.append((suffix, host[1], tuple(host[0].shape), stats))
            except Exception as exc:
                failed.append(f"{name} ({type(layer).__name__}) failed: {exception_line(exc)}")
                return output
            calls.append((name, type(layer).__name__, parts))
            return output

        return wrapper

    patched = []
    try:
        for (_, layer), name in zip(leaves, paths, strict=True):
            had_own = "call" in vars(layer)
            original = layer.call
            object.__setattr__(layer, "call", observed(name.replace("/", "."), layer, original))
            patched.append((layer, had_own, original))
        raw = forward()
    finally:
        for layer, had_own, original in reversed(patched):
            if had_own:
                object.__setattr__(layer, "call", original)
            else:
                object.__delattr__(layer, "call")
    if failed:
        return raw, unrecorded(f"measuring the output of {failed[0]}")
    if not calls:
        return raw, unrecorded(
            "no layer of the model was called in its forward (a subclassed model computing "
            "with raw operations)"
        )
    outputs = []
    for name, (_, kind, parts) in zip(unique_names(c[0] for c in calls), calls, strict=True):
        for suffix, dtype, shape, stats in parts:
            outputs.append(LayerOutput(name + suffix, kind, dtype, shape, stats))
    return raw, to_golden(outputs)


def _is_tensor(value: Any) -> bool:
    return bool(keras.ops.is_tensor(value))
