"""Outputs whose golden cannot see what it is meant to pin.

A golden pins how an output's statistics move. Some outputs leave nothing to pin: every element
NaN or Inf, every element zero, one constant value (a saturated softmax: ``MobileNetV2(weights=
None, classes=10)`` outputs exactly 0.1 everywhere), a spread no larger than float rounding of
its own values, or the same statistics in every variant (the axis changes nothing). Their
goldens pass almost any change; recording one warns, and ``show`` marks it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: Unit roundoff per dtype; dtypes not listed are taken as float32.
_EPS: Mapping[str, float] = {
    "float64": 2.0**-52,
    "complex128": 2.0**-52,
    "float32": 2.0**-23,
    "complex64": 2.0**-23,
    "float16": 2.0**-10,
    "bfloat16": 2.0**-7,
}
#: A spread within this many units in the last place of the output's largest magnitude is float
#: noise, not signal.
NOISE_ULPS = 4


@dataclass(frozen=True)
class Finding:
    """One degenerate output: where, what it is (``kind``) and what its golden cannot detect."""

    variant: str  # a variant's name, or "every variant"
    output: str
    kind: str  # "all NaN/Inf", "all zero", "constant", "below float noise", "identical",
    # and for training checks "diverged" (output "loss"), "noise gradient" and "no update"
    # (output "updates")
    text: str


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def output_finding(variant: str, output: str, info: Mapping[str, Any]) -> Finding | None:
    """What is degenerate about one recorded output, if anything."""
    stats = info.get("stats", {})
    count = stats.get("count")
    bad = int(stats.get("nan_count") or 0) + int(stats.get("inf_count") or 0)
    if count and bad >= count:
        return Finding(
            variant,
            output,
            "all NaN/Inf",
            f"every element is NaN or Inf ({bad}): no statistic is defined, so the golden pins "
            "only the NaN/Inf counts and cannot detect any change of the model's values",
        )
    if not count:
        return None  # an empty output: its shape is what is pinned
    low, high, std = (_number(stats.get(k)) for k in ("min", "max", "std"))
    if low == 0 and high == 0:
        return Finding(
            variant,
            output,
            "all zero",
            "every element is zero: the golden cannot detect a change of the weights that "
            "keeps it zero (dead ReLUs, a zero-initialised layer, an input that is masked out)",
        )
    if count == 1:  # one value (a 0-d output: a sum, a loss) has no spread to lack
        return None
    if low is not None and low == high:
        return Finding(
            variant,
            output,
            "constant",
            f"every element is {low:.7g}: std 0, cosine and CKA say nothing, and the golden "
            "cannot detect a change of the weights that keeps it constant (a saturated "
            "softmax or activation)",
        )
    magnitude = max(abs(low or 0.0), abs(high or 0.0))
    eps = _EPS.get(str(info.get("dtype")), _EPS["float32"])
    if std is not None and magnitude and std <= NOISE_ULPS * eps * magnitude:
        return Finding(
            variant,
            output,
            "below float noise",
            f"its spread (std {std:.3g}) is within float rounding of its values (about "
            f"{magnitude:.3g}): the golden pins rounding, and cannot detect a change of the "
            "weights that leaves the output saturated (softmax of near-zero logits)",
        )
    return None


def _noise_gradients(variants: Mapping[str, Any]) -> list[Finding]:
    from .training_compare import noise_gradients

    return [
        Finding(
            name,
            f"gradient of {parameter}",
            "noise gradient",
            "its step-0 gradient is float rounding noise (mathematically zero, e.g. a bias "
            "before a normalisation layer): its gradient is judged against the model's "
            f"gradient scale and its update is not compared; {_noise_effect(data)} (build that "
            "layer without a bias: bias=False in torch, use_bias=False in Keras)",
        )
        for name, data in variants.items()
        for parameter in noise_gradients(data)
    ]


#: Optimizers that scale each weight's step by its own gradient history (their class names).
_ADAPTIVE = frozenset(
    {"adam", "adamw", "adamax", "nadam", "radam", "rmsprop", "adagrad", "adadelta", "adafactor"}
)


def _noise_effect(variant: Mapping[str, Any]) -> str:
    """What a noise gradient does to the training under the variant's optimizer: its name
    (``sgd``, ``adam``, ``custom:<qualified name>``) says which, when it names a class."""
    optimizer = str((variant.get("training") or {}).get("optimizer") or "")
    last = optimizer.rpartition(":")[2].rpartition(".")[2]
    sgd = "SGD moves that weight by the learning rate times the noise, which stays noise"
    adaptive = (
        "sizes that update by the noise's own scale, not by the model's, and through "
        "BatchNorm's running mean it can move the outputs after training under another thread "
        "count"
    )
    if last.lower() == "sgd":
        return sgd
    if last.lower() in _ADAPTIVE:
        return f"{'Adam' if optimizer == 'adam' else last} {adaptive}"
    return (
        "under plain SGD that update stays noise; an adaptive optimizer (Adam, RMSprop ...) "
        f"{adaptive}"
    )


def _unmoved(variants: Mapping[str, Any]) -> list[Finding]:
    """Training variants whose steps changed no weight although step 0 had a gradient: the
    optimizer holds other parameters (a cached optimizer, one built over another model)."""
    out = []
    for name, data in variants.items():
        training = data.get("training") or {}
        updates = [_number(u.get("norm")) for u in (training.get("updates") or {}).values()]
        grads = [_number(g.get("norm")) for g in (training.get("gradients") or {}).values()]
        if updates and all(u == 0 for u in updates) and any(g for g in grads):
            out.append(
                Finding(
                    name,
                    "updates",
                    "no update",
                    f"{training.get('steps')} training steps changed no weight although step 0 "
                    "had a gradient: the optimizer does not hold this variant's parameters (a "
                    "cached optimizer, or one built over another model; build it from the "
                    "parameters check_training passes to the factory), or every step is below "
                    "the weights' rounding (a learning rate too small for their dtype, such as "
                    "bfloat16), so the golden pins a training that did nothing",
                )
            )
    return out


def _diverged(variants: Mapping[str, Any]) -> list[Finding]:
    """Training variants whose loss became NaN or Inf (recorded as null)."""
    out = []
    for name, data in variants.items():
        losses = (data.get("training") or {}).get("losses") or []
        bad = [k for k, value in enumerate(losses) if _number(value) is None]
        if bad:
            out.append(
                Finding(
                    name,
                    "loss",
                    "diverged",
                    f"the loss is NaN or Inf at step {bad[0]} of {len(losses)}: training "
                    "diverged (a learning rate too large for this model, or a loss that divides "
                    "by zero or takes the log of 0), and the golden cannot detect a change of "
                    "the training step once it has; lower lr= or fix the loss, then record again",
                )
            )
    return out


def findings(document: Mapping[str, Any]) -> list[Finding]:
    """Every degenerate output of a check document (observed or recorded), and (training
    checks) every variant whose loss diverged to NaN/Inf and every gradient of float rounding
    noise."""
    variants: Mapping[str, Any] = document.get("variants", {})
    out = [
        finding
        for name, data in variants.items()
        for output, info in data.get("outputs", {}).items()
        if (finding := output_finding(name, output, info)) is not None
    ]
    out += _diverged(variants) + _noise_gradients(variants) + _unmoved(variants)
    flagged = {f.output for f in out}
    if len(variants) > 1:
        outputs = dict.fromkeys(o for data in variants.values() for o in data.get("outputs", {}))
        for output in outputs:
            seen = [data.get("outputs", {}).get(output) for data in variants.values()]
            if output in flagged or any(s is None for s in seen):
                continue
            first = seen[0]
            if all(
                s["shape"] == first["shape"] and s.get("stats") == first.get("stats")
                for s in seen[1:]
            ):
                out.append(
                    Finding(
                        "every variant",
                        output,
                        "identical",
                        f"identical in every variant ({', '.join(variants)}): the axis changes "
                        "nothing in this output, so the golden cannot detect what the axis "
                        "should change (is the variant's argument used by the builder?)",
                    )
                )
    return out
