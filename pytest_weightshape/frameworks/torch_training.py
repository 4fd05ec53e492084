"""The torch adapter's training step (``TorchAdapter.train``, see :mod:`..training`).

``model.train()``, then per step ``k`` under ``frameworks.seeded(seed + k)``: zero the
gradients, forward with autograd, the loss, ``backward()``, and the optimizer's step
(``torch.optim.SGD``/``Adam`` with the resolved learning rate, or the user's factory applied
to the trainable parameters). Step 0's outputs and gradients are copied to the host before
its update. The model goes back to ``eval()`` afterwards, also when a step raises.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Mapping
from typing import Any

import torch

from ..errors import ModelError, exception_line
from ..training import Loss, Optimizer, Trained
from . import Array, seeded


def _first_tensor(raw: Any) -> torch.Tensor | None:
    """The model's first output tensor, in the order ``Adapter.outputs`` flattens them."""
    if isinstance(raw, torch.Tensor):
        return raw
    if isinstance(raw, Mapping):
        items: Any = raw.values()
    elif isinstance(raw, (tuple, list)):
        items = raw
    else:
        return None
    for item in items:
        found = _first_tensor(item)
        if found is not None:
            return found
    return None


def _shape(tensor: torch.Tensor) -> list[int]:
    return [int(d) for d in tensor.shape]


def _builtin_loss(loss: Loss, raw: Any, targets: tuple[Any, ...]) -> torch.Tensor:
    output = _first_tensor(raw)
    if output is None:
        raise ModelError(
            f"loss {loss.name!r} needs a tensor output, and the model returned "
            f"{type(raw).__name__}: give loss= a callable (output, target) -> scalar"
        )
    target = targets[0]
    if not isinstance(target, torch.Tensor):
        raise ModelError(f"loss {loss.name!r}: the target is {type(target).__name__}, not a tensor")
    if not output.is_floating_point():
        raise ModelError(
            f"loss {loss.name!r}: the model's first output is {output.dtype}, which takes no "
            "gradient; return floating-point outputs (logits or predictions)"
        )
    if loss.kind == "mse":
        if _shape(target) != _shape(output):
            raise ModelError(
                f"loss 'mse': the target's shape {_shape(target)} does not fit the model's "
                f"first output {_shape(output)}: give targets= the output's shape, e.g. "
                f"targets={tuple(_shape(output))}"
            )
        return torch.nn.functional.mse_loss(output, target.to(output.dtype))
    # cross_entropy: logits with the classes on the last axis
    if output.dim() < 1:
        raise ModelError("loss 'cross_entropy' needs logits with the classes on the last axis")
    if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
        raise ModelError(
            f"loss 'cross_entropy' takes integer class ids as targets, got {target.dtype}: "
            f"give targets=integers({tuple(_shape(output)[:-1])}, high={output.shape[-1]})"
        )
    classes = int(output.shape[-1])
    if _shape(target) != _shape(output)[:-1]:
        raise ModelError(
            f"loss 'cross_entropy': the target's shape {_shape(target)} does not fit the "
            f"model's first output {_shape(output)} (classes on the last axis): give "
            f"targets=integers({tuple(_shape(output)[:-1])}, high={classes})"
        )
    if target.numel() and (int(target.min()) < 0 or int(target.max()) >= classes):
        raise ModelError(
            f"loss 'cross_entropy': target class ids run from {int(target.min())} to "
            f"{int(target.max())}, but the output has {classes} classes: give "
            f"targets=integers({tuple(_shape(target))}, high={classes})"
        )
    return torch.nn.functional.cross_entropy(
        output.reshape(-1, classes), target.reshape(-1).to(torch.long)
    )


def _loss(loss: Loss, raw: Any, targets: tuple[Any, ...]) -> torch.Tensor:
    if loss.kind != "custom":
        return _builtin_loss(loss, raw, targets)
    assert loss.fn is not None
    try:
        value = loss.fn(raw, targets[0] if len(targets) == 1 else targets)
    except Exception as exc:
        frames = [
            f
            for f in traceback.extract_tb(exc.__traceback__)
            if "pytest_weightshape" not in f.filename
        ]
        raise ModelError(
            f"the loss {loss.name} raised\n"
            + "".join(traceback.format_list(frames[-3:]))
            + exception_line(exc)
        ) from None
    if not isinstance(value, torch.Tensor):
        raise ModelError(
            f"the loss {loss.name} returned {type(value).__name__}; it must return a scalar "
            "torch tensor that depends on the output (e.g. ((output - target) ** 2).mean())"
        )
    if value.numel() != 1:
        raise ModelError(
            f"the loss {loss.name} returned a tensor of shape {_shape(value)}; it must return "
            "a scalar: reduce it with .mean() or .sum()"
        )
    if not value.requires_grad:
        raise ModelError(
            f"the loss {loss.name} returned a tensor without a gradient: it must be computed "
            "from the model's output (not detached, not under torch.no_grad())"
        )
    return value.reshape(())


def _optimizer(optimizer: Optimizer, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    if optimizer.kind == "sgd":
        return torch.optim.SGD(params, lr=optimizer.lr)  # type: ignore[arg-type]
    if optimizer.kind == "adam":
        return torch.optim.Adam(params, lr=optimizer.lr)  # type: ignore[arg-type]
    factory = optimizer.factory
    if isinstance(factory, torch.optim.Optimizer):
        raise ModelError(
            f"optimizer= is a {type(factory).__name__} already bound to parameters; give a "
            "factory instead, so each variant gets its own: "
            f"optimizer=lambda params: torch.optim.{type(factory).__name__}(params, ...)"
        )
    if not callable(factory):
        raise ModelError(
            f"optimizer= got {type(factory).__name__}; for a torch model give 'sgd', 'adam' or "
            "a factory params -> torch.optim.Optimizer"
        )
    try:
        made = factory(params)
    except Exception as exc:
        raise ModelError(
            f"the optimizer factory {optimizer.name} raised {exception_line(exc)}; it is called "
            "with the list of trainable parameters and must return a torch.optim.Optimizer"
        ) from None
    if not isinstance(made, torch.optim.Optimizer):
        raise ModelError(
            f"the optimizer factory {optimizer.name} returned {type(made).__name__}; it must "
            "return a torch.optim.Optimizer over the parameters it is given"
        )
    if optimizer.lr is not None:  # lr= overrides the factory's learning rate
        for group in made.param_groups:
            group["lr"] = optimizer.lr
    return made


def train(
    model: torch.nn.Module,
    inputs: tuple[Any, ...],
    keywords: Mapping[str, Any],
    targets: tuple[Any, ...],
    loss: Loss,
    optimizer: Optimizer,
    steps: int,
    seed: int,
    *,
    names: Mapping[str, str],
    outputs: Callable[[Any], list[Array]],
) -> Trained:
    """Train ``model`` in place for ``steps`` steps (see the module's docstring). ``names``
    maps ``named_parameters`` names to the adapter's parameter names, ``outputs`` flattens a
    raw output as the adapter does."""
    if torch.is_inference_mode_enabled():  # no tensor made in it can take a gradient
        raise ModelError(
            "check_training runs under torch.inference_mode(), where nothing can be trained: "
            "call it outside that block (torch.no_grad() is fine: training turns grad on)"
        )
    named = list(model.named_parameters())
    trainable = [p for _, p in named if p.requires_grad]
    if not trainable:
        why = "every parameter has requires_grad=False" if named else "it has no parameters"
        raise ModelError(
            f"the model ({type(model).__name__}) has no trainable parameters ({why}): "
            "check_training needs at least one parameter with requires_grad=True"
        )
    opt = _optimizer(optimizer, trainable)
    losses: list[float] = []
    forward: list[Any] = []
    gradients: dict[str, Any] = {}
    no_gradient: list[str] = []
    model.train()
    try:
        for k in range(steps):
            with seeded(seed + k):
                opt.zero_grad(set_to_none=True)
                with torch.enable_grad():
                    raw = model(*inputs, **dict(keywords))
                    value = _loss(loss, raw, targets)
                losses.append(float(value.detach().to(torch.float64).cpu()))
                if k == 0:
                    forward = outputs(_detached(raw))
                value.backward()  # type: ignore[no-untyped-call]
                if k == 0:
                    for raw_name, param in named:
                        name = names.get(raw_name, raw_name)
                        if name in gradients or name in no_gradient:
                            continue
                        if not param.requires_grad or param.grad is None:
                            no_gradient.append(name)
                            continue
                        gradients[name] = _host(param.grad)
                opt.step()
                del raw, value
    finally:
        model.eval()
    return Trained(losses, forward, gradients, no_gradient)


def _host(tensor: torch.Tensor) -> Any:
    """A gradient as a host array of its own (float32 for dtypes NumPy lacks)."""
    value = tensor.detach()
    if value.dtype not in (torch.float16, torch.float32, torch.float64):
        value = value.to(torch.float32)
    return value.cpu().numpy().copy()


def _detached(raw: Any) -> Any:
    """The raw output with every tensor detached and copied (kept past later steps)."""
    if isinstance(raw, torch.Tensor):
        return raw.detach().clone()
    if isinstance(raw, Mapping):
        return {k: _detached(v) for k, v in raw.items()}
    if isinstance(raw, tuple) and hasattr(raw, "_fields"):
        return type(raw)(*(_detached(v) for v in raw))
    if isinstance(raw, (tuple, list)):
        return type(raw)(_detached(v) for v in raw)
    return raw


__all__ = ["train"]
