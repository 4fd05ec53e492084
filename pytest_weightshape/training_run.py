"""Observes a training-step check (``shape_variant.check_training``) -> its check document.

:class:`Trainer` is an :class:`~.run.Observer` whose variants train: each is built under the
seed (with its portable weights when asked), its initial parameters and buffers are kept,
its adapter's ``train`` runs the steps (see :mod:`.training`), and the trained model's outputs
are measured as ``check`` measures them. The variant's ``training`` section holds the losses,
step 0's training-mode forward and gradient statistics, the parameters without a gradient and
each parameter's update; a non-base variant's ``divergence["training"]`` holds its loss,
gradient-norm and update-norm ratios to the base's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from .errors import ModelError
from .frameworks import Adapter, Array, kept_globals, summarize_output
from .inputs import draw_targets
from .run import Observer, user_traceback
from .spec import Variant, VariantSpec
from .stats import fingerprint
from .training import (
    DEFAULT_TRAINING_CHECK,
    Trained,
    check_steps,
    resolve_loss,
    resolve_optimizer,
)

#: The document's ``kind`` of a training check (a forward check's document has none).
KIND = "training"

__all__ = ["DEFAULT_TRAINING_CHECK", "KIND", "Trainer", "gradient_stats", "training_divergence"]


def _number(value: float) -> float | None:
    """A finite float as it is; NaN and infinities as ``null`` (goldens hold no NaN tokens)."""
    value = float(value)
    return value if math.isfinite(value) else None


def gradient_stats(gradient: np.ndarray) -> dict[str, float | None]:
    """Norm, mean, std, max |g| and zero fraction of one gradient, accumulated in float64."""
    wide = np.asarray(gradient, dtype=np.float64).reshape(-1)
    count = wide.size
    if not count:
        return {"norm": 0.0, "mean": None, "std": None, "max_abs": None, "zero_fraction": None}
    square = float(np.dot(wide, wide))
    mean = float(wide.mean())
    return {
        "norm": _number(math.sqrt(square)),
        "mean": _number(mean),
        "std": _number(float(wide.std())),
        "max_abs": _number(float(np.max(np.abs(wide)))),
        "zero_fraction": float(np.count_nonzero(wide == 0)) / count,
    }


def update_stats(before: list[Array], after: list[Array]) -> dict[str, dict[str, float | None]]:
    """Per parameter (by name, in ``before``'s order): ``||after - before||`` and that
    relative to ``||before||`` (``null`` where the weight's norm is 0)."""
    now = {a.name: a for a in after}
    out: dict[str, dict[str, float | None]] = {}
    for p in before:
        a = now.get(p.name)
        if a is None or a.value.shape != p.value.shape:
            continue
        old = np.asarray(p.value, dtype=np.float64).reshape(-1)
        change = np.asarray(a.value, dtype=np.float64).reshape(-1) - old
        norm = math.sqrt(float(np.dot(change, change)))
        size = math.sqrt(float(np.dot(old, old)))
        out[p.name] = {
            "norm": _number(norm),
            "relative": _number(norm / size) if size > 0 and math.isfinite(size) else None,
        }
    return out


def _ratio(variant: Any, base: Any) -> float | None:
    if not isinstance(variant, (int, float)) or not isinstance(base, (int, float)) or not base:
        return None
    return _number(float(variant) / float(base))


def training_divergence(base: Mapping[str, Any], variant: Mapping[str, Any]) -> dict[str, Any]:
    """A variant's ``divergence["training"]``: its loss per step over the base's, and the
    gradient and update norms of the parameters both have (by name) over the base's."""

    def norms(section: Mapping[str, Any], key: str) -> dict[str, Any]:
        return {name: stats.get("norm") for name, stats in (section.get(key) or {}).items()}

    def ratios(key: str) -> dict[str, float | None]:
        mine, theirs = norms(variant, key), norms(base, key)
        return {name: _ratio(mine[name], theirs[name]) for name in mine if name in theirs}

    return {
        "loss_ratio": [
            _ratio(v, b) for v, b in zip(variant["losses"], base["losses"], strict=False)
        ],
        "gradient_norm_ratio": ratios("gradients"),
        "update_norm_ratio": ratios("updates"),
    }


def _kept(arrays: list[Array]) -> list[Array]:
    """Host copies (an adapter's host arrays may share the model's memory, which training
    changes in place)."""
    return [Array(a.name, np.array(a.value, copy=True), a.dtype) for a in arrays]


class Trainer(Observer):
    """Runs a spec's variants through ``steps`` training steps and assembles the document."""

    trains = True

    def __init__(
        self,
        spec: VariantSpec,
        build: Any,
        inputs: Any,
        targets: Any,
        *,
        loss: Any,
        optimizer: Any,
        steps: Any = 1,
        lr: Any = None,
        device: str | None = None,
        weights: str | None = None,
        deterministic: bool = False,
        calibrate: bool = False,
    ) -> None:
        if not callable(build):
            from .errors import SpecError

            raise SpecError(
                "check_training() needs a builder (variant kwargs -> model) first, "
                f"got {type(build).__name__}"
            )
        self.loss = resolve_loss(loss)
        self.optimizer = resolve_optimizer(optimizer, lr)
        self.steps = check_steps(steps)
        super().__init__(
            spec,
            build,
            inputs,
            device=device,
            weights=weights,
            deterministic=deterministic,
            calibrate=calibrate,
        )
        self.targets = draw_targets(targets, spec.seed, self.stream)
        self.target_info = {
            t.name: {
                "shape": list(t.host.value.shape),
                "dtype": t.host.dtype,
                "fingerprint": fingerprint(t.host.value),
            }
            for t in self.targets
        }

    def _document(self, variants: dict[str, Any], device: str) -> dict[str, Any]:
        document = super()._document(variants, device)
        return {"schema_version": document.pop("schema_version"), "kind": KIND, **document}

    def _variant(self, variant: Variant) -> tuple[dict[str, Any], list[Array], Adapter]:
        changed: list[str] = []
        with kept_globals(changed):  # each variant starts from the same numeric globals
            adapter, model = self._weighted(variant)
            train = getattr(adapter, "train", None)
            if train is None:
                raise ModelError(
                    f"variant {variant.name}: check_training cannot train a {adapter.name} model "
                    f"({type(model).__name__}): the {adapter.name} adapter has no training step; "
                    "give a torch.nn.Module or a Keras model, or use check() for the forward pass"
                )
            params = self._lazy_parameters(variant, adapter, model)
            if not params:
                raise ModelError(
                    f"variant {variant.name}: the model ({type(model).__name__}) has no "
                    "parameters, so there is nothing to train: check_training needs a model "
                    "with trainable parameters (use check() for a model without any)"
                )
            initial = _kept(params)
            del params
            buffers_of = getattr(adapter, "buffers", None)
            buffers = _kept(buffers_of(model)) if buffers_of is not None else None
            device = adapter.device(model)
            trained = self._train(variant, adapter, model, train)
            updates = update_stats(initial, adapter.parameters(model))
            last = variant is self.spec.variants[-1] and not self.calibrate
            outputs = self._forward(variant, adapter, model, last)
        doc = self._measure(variant, adapter, model, device, outputs, (initial, buffers))
        doc["targets"] = self.target_info
        doc["training"] = self._section(trained, initial, updates)
        if self.calibrate:
            with kept_globals(changed):
                self._calibrate(variant, adapter, model, outputs, doc)
        self._changed(variant, changed)
        return doc, outputs, adapter

    def _lazy_parameters(self, variant: Variant, adapter: Adapter, model: Any) -> list[Array]:
        """The model's parameters before training; a lazy model (torch ``LazyLinear``, a
        Keras model without an input shape) creates them in one inference forward first."""
        try:
            params = adapter.parameters(model)
        except Exception:  # torch's UninitializedParameter cannot be read before a forward
            params = []
        if not params:
            self._forward(variant, adapter, model)
            params = adapter.parameters(model)
        return params

    def _train(self, variant: Variant, adapter: Adapter, model: Any, train: Any) -> Trained:
        inputs, keywords = self._converted(variant, adapter, model, own=True)
        targets = tuple(adapter.convert_input(t.value, model, False) for t in self.targets)
        try:
            trained: Trained = train(
                model,
                inputs,
                keywords,
                targets,
                self.loss,
                self.optimizer,
                self.steps,
                self.spec.seed,
            )
        except ModelError as exc:
            raise ModelError(f"variant {variant.name}: {exc}") from None
        except Exception as exc:
            raise ModelError(
                f"variant {variant.name}: the training step raised (loss {self.loss.name}, "
                f"optimizer {self.optimizer.name})\n{user_traceback(exc)}"
            ) from None
        return trained

    def _section(
        self, trained: Trained, initial: list[Array], updates: dict[str, Any]
    ) -> dict[str, Any]:
        """The variant's ``training`` section (see README "Training steps")."""
        grads = trained.gradients
        section: dict[str, Any] = {
            "loss": self.loss.name,
            "optimizer": self.optimizer.name,
            "lr": self.optimizer.lr,
            "steps": self.steps,
            "losses": [_number(v) for v in trained.losses],
            "forward": {
                o.name: {"shape": list(o.shape), "dtype": o.dtype, "stats": summarize_output(o)}
                for o in trained.forward
            },
            "gradients": {
                p.name: gradient_stats(grads[p.name])
                for p in initial
                if grads is not None and p.name in grads
            },
            "no_gradient": list(trained.no_gradient),
        }
        if grads is None:
            section["gradients_missing"] = trained.gradients_missing or "not given"
        section["updates"] = updates
        return section

    def _diverge(
        self,
        base: Any,
        doc: dict[str, Any],
        outputs: list[Array],
        variant: Variant,
        adapter: Adapter,
    ) -> None:
        super()._diverge(base, doc, outputs, variant, adapter)
        doc["divergence"]["training"] = training_divergence(base.doc["training"], doc["training"])
