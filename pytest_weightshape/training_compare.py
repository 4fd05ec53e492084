"""Comparing the training sections of two training-check documents, and explaining a change.

:func:`compare_training` compares a variant's ``targets`` and ``training`` section (the
configuration exactly; losses per step, step 0's training-mode forward, gradient statistics
per parameter and updates within tolerance; the parameters without a gradient exactly), and
:func:`compare_training_divergence` its ``divergence["training"]`` ratios. They take
``compare``'s comparer (``exact``, ``names``, ``tensors``, ``close``, ``stats``), so every row
joins the verdict as the forward check's rows do.

:func:`training_causes` explains a failing training check: a frozen layer by its parameters;
a change of the training step (optimizer, learning rate, weight decay, momentum) or of the
loss while step 0's forward held; or that the forward already moved at step 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .document import TRAINING_KIND
from .tolerance import rms

#: Where the rows of a training section are reported (``Difference.where`` starts with it).
WHERE = "training"
#: A parameter whose step-0 gradient rms is at most this fraction of the variant's whole
#: gradient rms took a gradient of float rounding noise only: mathematically zero, such as a
#: bias before a BatchNorm (which removes it). Thread count or oneDNN reorder that noise; Adam
#: then turns it into a full-size update in a direction the noise picks (measured: 25% change
#: of such an update's norm, ``benchmarks/training_drift.py``). Its gradient statistics are
#: judged against the variant's gradient scale, and its update is not compared.
GRADIENT_NOISE = 1e-5


def gradient_scale(variant: Mapping[str, Any]) -> float:
    """The rms of a variant's whole step-0 gradient (every parameter's elements together)."""
    grads = (variant.get("training") or {}).get("gradients") or {}
    params = variant.get("parameters", {})
    square = count = 0.0
    for name, stats in grads.items():
        norm = stats.get("norm")
        size = _count(params.get(name, {}).get("shape"))
        if isinstance(norm, (int, float)) and math.isfinite(norm) and size:
            square += float(norm) ** 2
            count += size
    return math.sqrt(square / count) if count else 0.0


def noise_gradients(variant: Mapping[str, Any]) -> list[str]:
    """Parameters whose gradient is float rounding noise (see :data:`GRADIENT_NOISE`)."""
    grads = (variant.get("training") or {}).get("gradients") or {}
    scale = gradient_scale(variant)
    return [name for name, stats in grads.items() if rms(stats) <= GRADIENT_NOISE * scale]


def kind_of(document: Mapping[str, Any]) -> str:
    """``training`` for a ``check_training`` document, ``forward`` for a ``check`` one."""
    return str(document.get("kind") or "forward")


def kind_cause(golden: Mapping[str, Any], current: Mapping[str, Any]) -> str:
    """Why a golden of one kind is not compared with a document of the other."""
    calls = {"forward": "check()", TRAINING_KIND: "check_training()"}
    was, now = kind_of(golden), kind_of(current)
    return (
        f"the golden holds a {was} check ({calls.get(was, was)}) under this name and this call "
        f"is {calls.get(now, now)}: they are not compared; give one of them another name= "
        "(check_training's default name is 'training'), or record this one with "
        "`pytest --snapshot-update` to replace the golden's"
    )


def _count(shape: Any) -> int:
    return math.prod(int(d) for d in shape) if isinstance(shape, list) else 0


def compare_training(c: Any, name: str, g: Mapping[str, Any], cur: Mapping[str, Any]) -> None:
    """One variant's targets and training section (both documents are training checks)."""
    c.tensors(name, "targets", g.get("targets", {}), cur.get("targets", {}))
    gt, ct = g.get("training"), cur.get("training")
    if not isinstance(gt, Mapping) or not isinstance(ct, Mapping):
        c.exact(name, WHERE, "present", isinstance(gt, Mapping), isinstance(ct, Mapping))
        return
    for key in ("loss", "optimizer", "lr", "steps"):
        c.exact(name, WHERE, key, gt.get(key), ct.get(key))
    losses, now = gt.get("losses", []), ct.get("losses", [])
    scale = abs(float(losses[0])) if losses and isinstance(losses[0], (int, float)) else 0.0
    dtype = _first_dtype(g)
    for k, value in enumerate(losses):
        if k < len(now):
            c.close(
                name, f"{WHERE}/step {k}", "loss", value, now[k],
                dtype=dtype, scale=scale, count=0,
            )  # fmt: skip
    forward = f"{WHERE}/forward"
    c.outputs(name, forward, f"{forward}/", gt.get("forward", {}), ct.get("forward", {}))
    c.exact(name, WHERE, "no_gradient", gt.get("no_gradient", []), ct.get("no_gradient", []))
    if "gradients_missing" in gt or "gradients_missing" in ct:
        c.exact(
            name, WHERE, "gradients_missing",
            gt.get("gradients_missing"), ct.get("gradients_missing"),
        )  # fmt: skip
    params = g.get("parameters", {})
    noise, scale = set(noise_gradients(g)), gradient_scale(g)
    for key in ("gradients", "updates"):
        gs, cs = gt.get(key, {}), ct.get(key, {})
        c.names(name, f"{WHERE}/{key}", gs, cs)
        for pname, gstats in gs.items():
            if pname not in cs or (key == "updates" and pname in noise):
                continue
            info = params.get(pname, {})
            count = _count(info.get("shape"))
            # a gradient's statistics are judged against its rms (a noise gradient's against
            # the variant's gradient scale); an update's norm against the update's rms (its
            # norm over the root of the element count)
            if key == "gradients":
                size = scale if pname in noise else rms(gstats)
            else:
                size = _update_rms(gstats, count)
            c.stats(
                name,
                f"{WHERE}/{key}/{pname}",
                gstats,
                cs[pname],
                dtype=str(info.get("dtype", "float32")),
                scale=size,
                count=count,
            )


def _update_rms(stats: Mapping[str, Any], count: int) -> float:
    norm = stats.get("norm")
    if not isinstance(norm, (int, float)) or count <= 0:
        return 0.0
    return float(norm) / math.sqrt(count)


def _first_dtype(variant: Mapping[str, Any]) -> str:
    """The dtype a loss is computed in: the model's first output's (float32 by default)."""
    for out in (variant.get("training", {}).get("forward") or variant.get("outputs", {})).values():
        return str(out.get("dtype", "float32"))
    return "float32"


def compare_training_divergence(
    c: Any, name: str, gd: Mapping[str, Any], cd: Mapping[str, Any], noise: set[str]
) -> None:
    """A variant's ``divergence["training"]`` ratios (when both documents hold them); the
    ratios of ``noise`` parameters (a noise gradient here or in the base) are not compared."""
    gt, ct = gd.get("training"), cd.get("training")
    if not isinstance(gt, Mapping) or not isinstance(ct, Mapping):
        return
    where = f"divergence/{WHERE}"
    ratios, now = gt.get("loss_ratio", []), ct.get("loss_ratio", [])
    for k, value in enumerate(ratios):
        if k < len(now):
            c.close(
                name, f"{where}/step {k}", "loss_ratio", value, now[k],
                dtype="float32", scale=1.0, count=0,
            )  # fmt: skip
    for key in ("gradient_norm_ratio", "update_norm_ratio"):
        gs, cs = gt.get(key, {}), ct.get(key, {})
        for pname, value in gs.items():
            if pname in cs and pname not in noise:
                c.close(
                    name, f"{where}/{pname}", key, value, cs[pname],
                    dtype="float32", scale=1.0, count=0,
                )  # fmt: skip


def _moved(differences: list[Any], prefix: str) -> list[Any]:
    return [d for d in differences if d.where == prefix or d.where.startswith(prefix + "/")]


def training_causes(
    golden: Mapping[str, Any], current: Mapping[str, Any], differences: list[Any], held: bool
) -> tuple[list[str], bool]:
    """Likely causes of a failing training check, and whether they explain it (so the forward
    check's "numerics changed" cause is not added). ``held``: the inputs and initial weights
    (and buffers) are those of the golden."""
    causes: list[str] = []
    gvars, cvars = golden["variants"], current["variants"]
    frozen, thawed = [], []
    for name, g in gvars.items():
        cur = cvars.get(name)
        if cur is None or "training" not in g or "training" not in cur:
            continue
        before = set(g["training"].get("no_gradient", []))
        now = cur["training"].get("no_gradient", [])
        new = [p for p in now if p not in before]
        back = [p for p in g["training"].get("no_gradient", []) if p not in set(now)]
        if new:
            frozen.append(f"{name}: {', '.join(new[:6])}" + (" ..." if len(new) > 6 else ""))
        if back:
            thawed.append(f"{name}: {', '.join(back[:6])}" + (" ..." if len(back) > 6 else ""))
    if frozen:
        causes.append(
            "no gradient now: "
            + "; ".join(frozen[:4])
            + " (frozen with requires_grad=False or trainable=False, or no longer on the "
            "loss's path)"
        )
    if thawed:
        causes.append(
            "a gradient now where the golden had none: "
            + "; ".join(thawed[:4])
            + " (unfrozen, or newly on the loss's path)"
        )
    config = [
        d for d in differences
        if d.where == WHERE and d.stat in ("loss", "optimizer", "lr", "steps")
    ]  # fmt: skip
    if config:
        shown = ", ".join(dict.fromkeys(f"{d.stat} {d.golden!r} -> {d.current!r}" for d in config))
        causes.append(f"the training configuration changed ({shown})")
    forward = _moved(differences, f"{WHERE}/forward")
    training = _moved(differences, WHERE)
    if forward:
        causes.append(
            "the training-mode forward already moved at step 0 (before any update): the "
            "model's forward changed, not only its training step"
            + ("" if held else "; its inputs or initial weights changed (see above)")
        )
        return causes, bool(frozen or thawed)
    if not held or not training:
        return causes, bool(frozen or thawed or config)
    first_loss = [d for d in training if d.where == f"{WHERE}/step 0"]
    if first_loss:
        causes.append(
            "the loss changed (its definition or its reduction, e.g. mean -> sum) while the "
            "forward pass at step 0 held: the step 0 loss moved on the same outputs"
        )
    elif not (frozen or thawed or config):
        causes.append(
            "the training step changed (optimizer, learning rate, weight decay, momentum, or "
            "the loss and its reduction) while the forward pass at step 0 held"
        )
    return causes, True
