"""Training steps of a Keras 3 model (``KerasAdapter.train``, the contract in ``training``) on
its tensorflow, torch or jax backend.

Every backend takes its gradients from its own autodiff: ``tf.GradientTape`` on tensorflow,
torch autograd on the torch tensors behind the Keras variables, and ``jax.value_and_grad``
over the model called in a ``keras.StatelessScope`` on jax (whose updated non-trainable
state, BatchNorm's moving statistics, is assigned back after each step). A fresh Keras
optimizer applies them to the trainable variables that took one.

The loss is the chosen loss plus the model's own losses (weight regularizers, ``add_loss``), as
Keras's ``fit`` computes it. Dropout and other random layers draw from their layer's
``SeedGenerator`` (tensorflow, jax, and torch for a layer given a seed) or from torch's global
generator (torch, unseeded layers): at step ``k``, under ``seeded(seed + k)``, every generator
of the model is set to a state drawn from that seed, in the model's layer order, so a step's
masks depend on the seed and the step only, not on what ran before; the generators get their
states back after training.
"""

from __future__ import annotations

import random
import traceback
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import keras
import numpy as np

from ..errors import ModelError, exception_line
from ..training import DEFAULT_LR, Loss, Optimizer, Trained
from . import Array, seeded

#: One step's forward and gradients: (loss tensor, raw output, a gradient or None for each
#: trainable variable, in ``model.trainable_variables`` order).
Step = tuple[Any, Any, list[Any]]
#: Output dtypes the built-in losses compute in float32.
_LOW_PRECISION = ("float16", "bfloat16")


def train(
    model: Any,
    arguments: tuple[tuple[Any, ...], dict[str, Any]],
    names: list[str],
    outputs: Callable[[Any, Any], list[Array]],
    targets: tuple[Any, ...],
    loss: Loss,
    optimizer: Optimizer,
    steps: int,
    seed: int,
) -> Trained:
    """``steps`` optimizer steps on a built ``model`` in training mode, trained in place (see
    ``training``). ``arguments`` are the model call's (positional, keyword) arguments,
    ``names`` the names of ``model.weights``, ``outputs`` the adapter's flattening."""
    args, kwargs = arguments
    trainable = list(model.trainable_variables)
    if not trainable:
        raise ModelError(
            f"the Keras model {type(model).__name__} has no trainable weights ("
            + (
                f"its {len(model.weights)} weights are all frozen"
                if model.weights
                else "it has none"
            )
            + "): training would change nothing; set trainable=True on the layers to train, or "
            "use check() for the forward pass"
        )
    objective = _objective(loss, targets)
    stepper = _stepper()
    opt = _optimizer(optimizer)
    opt.build(trainable)
    named = {id(w): name for name, w in zip(names, model.weights, strict=True)}
    order = [id(w) for w in model.weights]
    generators = _seed_generators(model)
    saved = [_host(g.state) for g in generators]
    losses: list[float] = []
    forward: list[Array] = []
    gradients: dict[str, np.ndarray] = {}
    took: set[int] = set()
    try:
        for k in range(steps):
            with seeded(seed + k):
                _reseed(generators)
                value, raw, grads = stepper(model, trainable, args, kwargs, objective)
                pairs = [(g, v) for g, v in zip(grads, trainable, strict=True) if g is not None]
                if k == 0:
                    if not pairs:
                        raise ModelError(_nothing_trains(loss, [named[id(v)] for v in trainable]))
                    forward = outputs(raw, model)
                    for g, v in pairs:
                        took.add(id(v))
                        gradients[named[id(v)]] = _host(g)
                _apply(opt, pairs)
            losses.append(float(_host(value)))
    finally:
        for generator, state in zip(generators, saved, strict=True):
            generator.state.assign(state)
        if _backend() == "torch":
            for variable in trainable:
                variable.value.grad = None
    ordered = {named[i]: gradients[named[i]] for i in order if i in took}
    no_gradient = [named[i] for i in order if i not in took]
    return Trained(losses=losses, forward=forward, gradients=ordered, no_gradient=no_gradient)


def _nothing_trains(loss: Loss, trainable: list[str]) -> str:
    shown = ", ".join(trainable[:4]) + (", ..." if len(trainable) > 4 else "")
    return (
        f"no trainable weight of the model ({shown}) took a gradient from the loss "
        f"{loss.name}: it must be computed from the model's output with {_backend()} "
        "operations (keras.ops), and the output must depend on a trainable layer"
    )


# -- what to minimise ----------------------------------------------------------------------------


def _backend() -> str:
    return str(keras.backend.backend())


def _dtype(value: Any) -> str:
    return str(keras.backend.standardize_dtype(value.dtype))


def _objective(loss: Loss, targets: tuple[Any, ...]) -> Callable[[Any], Any]:
    """raw output -> the loss tensor (a scalar), checking the targets against the output."""
    if not targets:
        raise ModelError("no targets: pass targets= (one per loss target)")
    targets = tuple(_tensor(t) for t in targets)
    if loss.kind == "custom":
        assert loss.fn is not None
        fn = loss.fn
        given = targets[0] if len(targets) == 1 else targets

        def custom(raw: Any) -> Any:
            try:
                value = fn(raw, given)
            except ModelError:
                raise
            except Exception as exc:
                raise ModelError(
                    f"the loss {loss.name} raised\n{_user_frames(exc)}{exception_line(exc)}\n"
                    "it gets the model's raw output and the target (a tuple of targets when "
                    f"there are several) as {_backend()} tensors and returns a scalar computed "
                    "with keras.ops"
                ) from None
            return _scalar(value, loss.name)

        return custom
    target = targets[0]
    if loss.kind == "mse":
        return lambda raw: _mse(raw, target)
    if loss.kind == "cross_entropy":
        return _cross_entropy(target)
    raise ModelError(f"unknown loss {loss.name!r}: use 'mse', 'cross_entropy' or a callable")


def _tensor(value: Any) -> Any:
    return value if keras.ops.is_tensor(value) else keras.ops.convert_to_tensor(value)


def _first_output(raw: Any) -> tuple[str, Any]:
    """The model's first flattened output and its name, as ``Adapter.outputs`` orders and
    names them (``output`` for a tensor, ``0`` for a tuple's first, ``logits`` for a dict's)."""

    def walk(value: Any, path: tuple[str, ...]) -> tuple[str, Any] | None:
        if value is None:
            return None
        if keras.ops.is_tensor(value):
            return ".".join(path) or "output", value
        if isinstance(value, Mapping):
            items: list[tuple[str, Any]] = [(str(k), v) for k, v in value.items()]
        elif isinstance(value, tuple) and hasattr(value, "_fields"):
            items = [(str(k), getattr(value, k)) for k in value._fields]
        elif isinstance(value, (tuple, list)):
            items = [(str(i), v) for i, v in enumerate(value)]
        else:
            return None
        for key, item in items:
            found = walk(item, (*path, key))
            if found is not None:
                return found
        return None

    found = walk(raw, ())
    if found is None:
        raise ModelError(
            f"the model returned {type(raw).__name__}, with no tensor output for the loss to "
            "take: return a tensor (or a tuple whose first element is one), or pass a callable "
            "loss that picks the output"
        )
    return found


def _float_output(raw: Any, loss: str) -> tuple[str, Any]:
    name, output = _first_output(raw)
    if not _dtype(output).startswith(("float", "bfloat")):
        raise ModelError(
            f"loss {loss!r}: the model's output {name!r} is {_dtype(output)}, which takes no "
            "gradient; return floating-point outputs (logits or predictions), or pass a "
            "callable loss that picks a float output"
        )
    return name, output


def _mse(raw: Any, target: Any) -> Any:
    name, output = _float_output(raw, "mse")
    if tuple(output.shape) != tuple(target.shape):
        raise ModelError(
            f"the target has shape {_shape(target)} but the model's output {name!r} has shape "
            f"{_shape(output)}: 'mse' compares them element by element; give targets= the "
            f"output's shape, e.g. targets={_shape(output)}"
        )
    output = _computing(output)
    return keras.ops.mean(keras.ops.square(output - keras.ops.cast(target, output.dtype)))


def _cross_entropy(target: Any) -> Callable[[Any], Any]:
    kind = _dtype(target)
    integer = kind.startswith(("int", "uint"))
    host = _host(target) if integer else None
    low = int(host.min()) if host is not None and host.size else 0
    high = int(host.max()) if host is not None and host.size else 0

    def loss(raw: Any) -> Any:
        name, output = _float_output(raw, "cross_entropy")
        if len(output.shape) < 1:
            raise ModelError(
                f"'cross_entropy' takes logits with the classes on the last axis, and the "
                f"model's output {name!r} is a scalar: return one logit per class"
            )
        classes = int(output.shape[-1])
        fitting = f"targets=integers({_shape(output)[:-1]}, high={classes})"
        if not integer:
            raise ModelError(
                f"'cross_entropy' takes integer class targets, got {kind}: give class indices, "
                f"e.g. {fitting} (pytest_weightshape.integers), or use 'mse' for float targets"
            )
        if tuple(output.shape[:-1]) != tuple(target.shape):
            raise ModelError(
                f"the target has shape {_shape(target)} but the model's output {name!r} has "
                f"shape {_shape(output)}: 'cross_entropy' takes logits with the classes on the "
                "last axis and class targets of the output's shape without that axis: give "
                f"{fitting}"
            )
        if low < 0 or high >= classes:
            raise ModelError(
                f"the targets hold classes {low}..{high} but the output {name!r} has {classes} "
                f"classes (0..{classes - 1}): give {fitting}"
            )
        logits = _computing(output)
        each = keras.ops.sparse_categorical_crossentropy(
            keras.ops.cast(target, "int64" if _backend() == "torch" else "int32"),
            logits,
            from_logits=True,
        )
        return keras.ops.mean(each)

    return loss


def _computing(output: Any) -> Any:
    """Half-precision outputs are measured by the built-in losses in float32."""
    if _dtype(output) in _LOW_PRECISION:
        return keras.ops.cast(output, "float32")
    return output


def _scalar(value: Any, what: str) -> Any:
    if not keras.ops.is_tensor(value):
        raise ModelError(
            f"the loss {what} returned {type(value).__name__} {value!r:.60}, not a "
            f"{_backend()} tensor: compute it from the output with keras.ops (a Python or "
            "NumPy number carries no gradient)"
        )
    shape = _shape(value)
    if len(shape) != 0:
        if any(d != 1 for d in shape):
            raise ModelError(
                f"the loss {what} returned a tensor of shape {shape}, not a scalar: reduce it "
                "(keras.ops.mean or keras.ops.sum)"
            )
        value = keras.ops.reshape(value, ())  # one element: a scalar
    return value


def _user_frames(exc: BaseException) -> str:
    """The last frames of ``exc``'s traceback outside this package: where the user's code
    failed."""
    frames = [
        f for f in traceback.extract_tb(exc.__traceback__) if "pytest_weightshape" not in f.filename
    ]
    return "".join(traceback.format_list(frames[-3:]))


def _shape(value: Any) -> tuple[int | None, ...]:
    return tuple(None if d is None else int(d) for d in value.shape)


def _with_model_losses(value: Any, extra: list[Any]) -> Any:
    """The loss plus the model's own losses (regularizers, ``add_loss``), as ``fit`` adds them."""
    for term in extra:
        value = value + keras.ops.cast(term, value.dtype)
    return value


# -- the optimizer -------------------------------------------------------------------------------


def _optimizer(spec: Optimizer) -> Any:
    """A fresh Keras optimizer for one variant: no state is shared between variants."""
    if spec.kind in DEFAULT_LR:
        lr = spec.lr if spec.lr is not None else DEFAULT_LR[spec.kind]
        made = keras.optimizers.SGD if spec.kind == "sgd" else keras.optimizers.Adam
        return made(learning_rate=lr)
    given = spec.factory
    if not isinstance(given, keras.optimizers.Optimizer) and callable(given):
        try:
            given = given()
        except Exception as exc:
            raise ModelError(
                f"the optimizer factory {spec.name} raised {exception_line(exc)}: for a Keras "
                "model it takes no arguments and returns a Keras optimizer"
            ) from exc
        if isinstance(given, keras.optimizers.Optimizer) and not given.built:
            return _with_lr(given, spec.lr)  # made for this variant: used as it is
    if not isinstance(given, keras.optimizers.Optimizer):
        torch_note = (
            " (a torch.optim optimizer trains torch modules; a Keras model, also on the torch "
            "backend, takes a Keras optimizer)"
            if type(given).__module__.startswith("torch")
            else ""
        )
        raise ModelError(
            f"the optimizer {spec.name} gave {type(given).__name__}, not a Keras optimizer"
            f"{torch_note}: pass 'sgd', 'adam', a keras.optimizers.Optimizer (each variant "
            "trains a fresh copy of it) or a callable returning one"
        )
    try:
        with warnings.catch_warnings():
            # Keras reads its learning-rate variable with np.array(variable), which NumPy 2
            # warns about on the torch and jax backends (an error under -W error)
            warnings.filterwarnings(
                "ignore", "__array__ implementation doesn't accept a copy", DeprecationWarning
            )
            fresh = type(given).from_config(given.get_config())
    except Exception as exc:
        raise ModelError(
            f"the optimizer {type(given).__name__} cannot be copied from its config "
            f"({exception_line(exc)}), and each variant needs a fresh one: pass a callable "
            "that returns a new optimizer instead"
        ) from exc
    return _with_lr(fresh, spec.lr)


def _with_lr(optimizer: Any, lr: float | None) -> Any:
    """``lr=`` given beside a custom optimizer sets its learning rate. One whose rate is a
    ``LearningRateSchedule`` has none to set (Keras raises a TypeError), nor one whose rate is
    a callable (an AttributeError)."""
    if lr is None:
        return optimizer
    try:
        optimizer.learning_rate = lr
    except (TypeError, AttributeError) as exc:
        raise ModelError(
            f"check_training(lr={lr!r}) cannot set the learning rate of "
            f"{type(optimizer).__name__} ({exception_line(exc)}): its learning rate is a "
            "LearningRateSchedule or a callable, which sets the rate of every step. Drop lr= "
            "(the schedule decides), or give the optimizer a fixed learning_rate"
        ) from exc
    return optimizer


def _apply(optimizer: Any, pairs: list[tuple[Any, Any]]) -> None:
    if not pairs:
        return
    grads, variables = [g for g, _ in pairs], [v for _, v in pairs]
    if _backend() == "torch":
        import torch

        with torch.no_grad():
            optimizer.apply(grads, variables)
    else:
        optimizer.apply(grads, variables)


# -- random layers -------------------------------------------------------------------------------


def _seed_generators(model: Any) -> list[Any]:
    """The ``SeedGenerator`` of every layer of the model (dropout, noise), each once, in the
    model's layer order."""
    layers = [model, *model._flatten_layers(include_self=False, recursive=True)]
    found: list[Any] = []
    seen: set[int] = set()
    for layer in layers:
        for generator in getattr(layer, "_seed_generators", ()):
            if id(generator) not in seen:
                seen.add(id(generator))
                found.append(generator)
    return found


def _reseed(generators: list[Any]) -> None:
    """Each generator's state drawn from Python's generator, which ``seeded`` has just seeded."""
    for generator in generators:
        state = np.array([random.randint(1, 10**9), 0])
        generator.state.assign(keras.ops.cast(state, generator.state.dtype))


def _host(value: Any) -> np.ndarray:
    """A tensor, variable or gradient (tensorflow's IndexedSlices too) as a NumPy copy."""
    if type(value).__name__ == "IndexedSlices":
        import tensorflow as tf

        value = tf.convert_to_tensor(value)
    if isinstance(value, keras.Variable):
        value = value.value
    if _dtype(value) == "bfloat16":  # numpy has no bfloat16
        value = keras.ops.cast(value, "float32")
    if hasattr(value, "detach"):  # torch
        return np.array(value.detach().cpu().numpy(), copy=True)
    if hasattr(value, "numpy"):  # tensorflow (np.array(tensor) warns under NumPy 2)
        return np.array(value.numpy(), copy=True)
    return np.array(value, copy=True)  # jax


# -- one step per backend ------------------------------------------------------------------------


def _tensorflow_step(
    model: Any,
    trainable: list[Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    objective: Callable[[Any], Any],
) -> Step:
    import tensorflow as tf

    with tf.GradientTape() as tape:
        raw = model(*args, training=True, **kwargs)
        value = _with_model_losses(objective(raw), list(model.losses))
    grads = tape.gradient(value, trainable)
    return value, raw, list(grads)


def _torch_step(
    model: Any,
    trainable: list[Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    objective: Callable[[Any], Any],
) -> Step:
    import torch

    for variable in trainable:
        variable.value.grad = None
    with torch.enable_grad():
        raw = model(*args, training=True, **kwargs)
        value = _with_model_losses(objective(raw), list(model.losses))
        if value.requires_grad:
            value.backward()
    return value.detach(), raw, [variable.value.grad for variable in trainable]


def _jax_stepper() -> Callable[..., Step]:
    """jax's step: ``jax.value_and_grad`` over ``stateless_call``, run eagerly: compiling it
    (``jax.jit``) costs more than the few steps a check takes on most models (measured: a Dense
    0.02 s eager, 0.23 s compiled per variant; only a recurrent layer, whose scan eager jax
    recompiles at every step, is faster compiled from the second step on), and a large model's
    compilation would take seconds per variant. The model runs through ``__call__`` inside a
    ``keras.StatelessScope`` (what ``stateless_call`` does around ``call``), so a ``call``
    without ``training`` works as on the other backends. jax gives a zero gradient to a
    variable off the loss's path; which ones are off is read once, from step 0's jaxpr, and
    they get no gradient (as on tensorflow and torch)."""
    import jax

    off: list[bool] = []

    def step(
        model: Any,
        trainable: list[Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        objective: Callable[[Any], Any],
    ) -> Step:
        state = list(model.non_trainable_variables)
        fixed = [v.value for v in state]

        def computed(values: list[Any]) -> tuple[Any, tuple[Any, Any]]:
            # model.stateless_call calls model.call directly, and training=True raised in a
            # call() without that argument (a subclassed model); __call__ in a stateless scope
            # handles it as on tensorflow and torch (and as Keras's fit does)
            mapping = list(zip(trainable, values, strict=True))
            mapping += list(zip(state, fixed, strict=True))
            with keras.StatelessScope(state_mapping=mapping, collect_losses=True) as scope:
                raw = model(*args, training=True, **kwargs)
                extra = list(model.losses)
            updated = [scope.get_current_value(v) for v in state]
            return _with_model_losses(objective(raw), extra), (raw, updated)

        values = [v.value for v in trainable]
        if not off:
            off.extend(_jax_unused(lambda v: computed(v)[0], values))
        (value, (raw, updated)), grads = jax.value_and_grad(computed, has_aux=True)(values)
        for variable, new in zip(state, updated, strict=True):
            variable.assign(new)
        return value, raw, [None if o else g for g, o in zip(grads, off, strict=True)]

    return step


def _jax_unused(fn: Callable[[list[Any]], Any], values: list[Any]) -> list[bool]:
    """Which of ``values`` the scalar ``fn(values)`` does not depend on, read from its jaxpr
    (an equation whose output is needed needs all of its inputs)."""
    import jax

    jaxpr = jax.make_jaxpr(fn)(values).jaxpr
    needed = {v for v in jaxpr.outvars if type(v).__name__ != "Literal"}
    for eqn in reversed(jaxpr.eqns):
        if any(out in needed for out in eqn.outvars):
            needed.update(v for v in eqn.invars if type(v).__name__ != "Literal")
    return [v not in needed for v in jaxpr.invars]


def _stepper() -> Callable[..., Step]:
    """This backend's step: (model, trainable, args, kwargs, objective) -> ``Step``."""
    name = _backend()
    if name == "tensorflow":
        return _tensorflow_step
    if name == "torch":
        return _torch_step
    if name == "jax":
        return _jax_stepper()
    raise ModelError(
        f"Keras's {name} backend computes no gradients, so it cannot train: run training "
        "checks with KERAS_BACKEND=tensorflow, torch or jax"
    )
