"""Training-step checks (``shape_variant.check_training``): what a check asks for, and what one
variant's training gave.

This module is the contract between the core and the adapters: :class:`Loss` and
:class:`Optimizer` say what to train with (resolved and validated here, framework-free), an
adapter's ``train`` runs the steps and returns a :class:`Trained`, and the core turns that into
the variant's ``training`` section of the check document.

An adapter's ``train(model, inputs, keywords, targets, loss, optimizer, steps, seed)``:

- ``model`` is prepared (``Adapter.prepare``: inference mode, on its device); ``inputs`` and
  ``keywords`` are converted as for ``Adapter.forward``; ``targets`` is a tuple of converted
  targets (one per target; usually one).
- It puts the model in training mode (dropout active, BatchNorm on batch statistics), runs
  ``steps`` optimizer steps, and puts the model back in inference mode, trained in place.
- Step ``k`` (0-based) runs under ``frameworks.seeded(seed + k)``: forward, loss, gradients,
  optimizer step; dropout masks are then the same for every variant and every run.
- The built-in losses (``mse``, ``cross_entropy``) take the model's first flattened output
  (``output`` for a tensor, ``0`` for a tuple's first, as ``Adapter.outputs`` names them) and the
  first target; ``mse`` is the mean over every element; ``cross_entropy`` takes logits with the
  classes on the last axis and integer class targets of the output's shape without that axis
  (mean over the rest). A callable loss gets the model's raw output and the target (or the
  tuple of targets when there are several) and returns a scalar in the model's framework.
- ``Trained.gradients`` are step 0's gradients (before the first optimizer step) as host arrays,
  keyed by the names ``Adapter.parameters`` uses; a parameter that takes no gradient (frozen,
  or not on the loss's path) is listed in ``no_gradient`` instead. Where the framework gives no
  gradients (a backend without autodiff access), ``gradients`` is ``None`` and
  ``gradients_missing`` says why.
- Bad ``loss``/``optimizer``/``targets`` (a shape that does not fit the output, a float target
  for ``cross_entropy``, a model without trainable parameters) raise :class:`~.errors.ModelError`
  saying what was wrong and how to fix it; the caller adds the variant's name.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from .frameworks import Array

#: The built-in losses.
LOSSES: tuple[str, ...] = ("mse", "cross_entropy")
#: The built-in optimizers, with their learning rate when ``lr=None``.
DEFAULT_LR: dict[str, float] = {"sgd": 0.01, "adam": 0.001}
#: The most steps a check takes: a golden pins a few steps (each step's loss, and per-step
#: ratios, are recorded), and over many steps float rounding compounds past any tolerance;
#: ``steps=10**6`` would otherwise train silently for hours and write a huge golden.
MAX_STEPS = 1000
#: The check name of a ``check_training`` call without ``name=``.
DEFAULT_TRAINING_CHECK = "training"


@dataclass(frozen=True)
class Loss:
    """What to minimise: ``kind`` is ``mse``, ``cross_entropy`` or ``custom`` (then ``fn``)."""

    kind: str
    #: What the golden records: the built-in's name, or ``custom:<qualified name>``.
    name: str
    #: The user's callable ``(output, target) -> scalar`` for ``custom``.
    fn: Callable[..., Any] | None = None


@dataclass(frozen=True)
class Optimizer:
    """How to step: ``kind`` is ``sgd``, ``adam`` or ``custom`` (then ``factory``).

    ``sgd`` and ``adam`` use the framework's own optimizer with ``lr`` (its defaults otherwise).
    ``factory`` is, for torch, ``params -> torch.optim.Optimizer``; for Keras, a Keras optimizer
    (each variant gets a fresh copy from its config, so no state leaks between variants) or a
    callable returning one.
    """

    kind: str
    #: What the golden records: ``sgd``, ``adam``, or ``custom:<qualified name>``.
    name: str
    #: The learning rate: resolved for ``sgd``/``adam``; the user's ``lr=`` (or None) for custom.
    lr: float | None = None
    factory: Any = None


@dataclass
class Trained:
    """What an adapter's ``train`` gives back (the model itself is trained in place)."""

    #: The loss of every step, before that step's update (as Python floats).
    losses: list[float]
    #: Step 0's outputs (training mode, before any update), flattened as ``Adapter.outputs``.
    forward: list[Array]
    #: Step 0's gradient of each parameter that took one, by parameter name (host arrays);
    #: ``None`` when the framework gave none (``gradients_missing`` says why).
    gradients: dict[str, np.ndarray] | None
    #: Parameters that took no gradient (frozen, or not on the loss's path), in parameter order.
    no_gradient: list[str] = field(default_factory=list)
    gradients_missing: str | None = None


# -- resolving and validating a check_training call (framework-free) --------------------------


def _qualified(thing: Any) -> str:
    """A callable's or object's qualified name, for the golden (``custom:<qualname>``)."""
    name = getattr(thing, "__qualname__", None)
    if not isinstance(name, str):
        name = type(thing).__qualname__
    return name


#: Where Keras's losses live (Keras 3, tf.keras's Keras 2 package, TensorFlow's old copy).
_KERAS_MODULES = ("keras.", "tf_keras.", "tensorflow.python.keras.")


def _keras_loss(loss: Any) -> bool:
    """Whether ``loss`` is one of Keras's losses (a ``keras.losses`` class's instance or
    function), which take their arguments the other way round."""
    module = getattr(loss if inspect.isfunction(loss) else type(loss), "__module__", "") or ""
    return module.startswith(_KERAS_MODULES) and ".losses" in module


def resolve_loss(loss: Any) -> Loss:
    """``loss=`` -> :class:`Loss`: a built-in's name, or a callable ``(output, target) ->
    scalar`` in the model's framework."""
    from .errors import SpecError

    if isinstance(loss, str):
        if loss not in LOSSES:
            raise SpecError(
                f"check_training(loss={loss!r}): unknown loss; use one of "
                f"{', '.join(repr(n) for n in LOSSES)}, or a callable (output, target) -> scalar "
                "in the model's framework"
            )
        return Loss(loss, loss)
    if callable(loss) and _keras_loss(loss):
        raise SpecError(
            f"check_training(loss={_qualified(loss)}): Keras's losses take (y_true, y_pred), the "
            "reverse of the (output, target) that check_training passes, so it would be computed "
            "the wrong way round; swap them: loss=lambda output, target: "
            f"keras.losses.{_qualified(loss)}{'' if inspect.isfunction(loss) else '(...)'}"
            "(target, output)"
        )
    if callable(loss):
        return Loss("custom", f"custom:{_qualified(loss)}", loss)
    raise SpecError(
        f"check_training(loss=...) got {type(loss).__name__}; give 'mse', 'cross_entropy' "
        "(integer class targets), or a callable (output, target) -> scalar"
    )


def check_lr(lr: Any) -> float | None:
    """``lr=``: ``None`` or a positive finite number."""
    import math

    from .errors import SpecError

    if lr is None:
        return None
    if isinstance(lr, bool) or not isinstance(lr, (int, float)):
        raise SpecError(f"check_training(lr={lr!r}): the learning rate must be a number > 0")
    value = float(lr)
    if not math.isfinite(value) or value <= 0:
        raise SpecError(f"check_training(lr={lr!r}): the learning rate must be a finite number > 0")
    return value


def resolve_optimizer(optimizer: Any, lr: Any) -> Optimizer:
    """``optimizer=`` and ``lr=`` -> :class:`Optimizer`.

    ``"sgd"``/``"adam"`` take ``lr`` (``DEFAULT_LR`` when ``None``). Anything else is a
    framework's optimizer or factory (the adapter checks it fits the model's framework); a
    given ``lr`` then overrides the learning rate it sets, and the golden records it.
    """
    from .errors import SpecError

    rate = check_lr(lr)
    if isinstance(optimizer, str):
        if optimizer not in DEFAULT_LR:
            raise SpecError(
                f"check_training(optimizer={optimizer!r}): unknown optimizer name; use "
                "'sgd' or 'adam' (with lr=), or the framework's own optimizer: for torch a "
                "factory such as lambda params: torch.optim.SGD(params, lr=0.01, "
                "momentum=0.9), for Keras an optimizer such as "
                "keras.optimizers.RMSprop(learning_rate=0.001)"
            )
        return Optimizer(optimizer, optimizer, rate if rate is not None else DEFAULT_LR[optimizer])
    if optimizer is None or isinstance(optimizer, (bool, int, float, bytes, list, tuple, dict)):
        raise SpecError(
            f"check_training(optimizer=...) got {type(optimizer).__name__}; give 'sgd' or 'adam', "
            "or a factory: for torch params -> torch.optim.Optimizer, for Keras a Keras "
            "optimizer (or a callable returning one)"
        )
    return Optimizer("custom", f"custom:{_qualified(optimizer)}", rate, optimizer)


def check_steps(steps: Any) -> int:
    """``steps=``: a positive integer, at most ``MAX_STEPS``."""
    import numbers

    from .errors import SpecError

    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or int(steps) < 1:
        raise SpecError(
            f"check_training(steps={steps!r}): steps must be a positive integer (the number "
            "of optimizer steps every variant takes)"
        )
    if int(steps) > MAX_STEPS:
        raise SpecError(
            f"check_training(steps={steps!r}): at most {MAX_STEPS} steps; a training golden "
            "pins a few steps (one loss per step, per variant), and over many steps float "
            "rounding compounds beyond any tolerance: use a few steps (1 to 10), or train in "
            "the builder and pin the trained model with check()"
        )
    return int(steps)
