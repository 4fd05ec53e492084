"""Base vs variant: how the weights' shapes and the outputs differ.

Scale-sensitive ratios (std, mean |x|, max) carry changes that similarity measures cannot see:
linear CKA is blind to a pure rescaling (Xavier vs He with one seed in torch), and cosine is
only defined when the output shapes match.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

#: Below this many samples CKA is not recorded: it is undefined for n < 2 and identically 1
#: for n = 2 (two centred samples span one direction), so it would pin nothing.
CKA_MIN_SAMPLES = 3


def _shape_text(shape: Sequence[int]) -> str:
    return "[" + ", ".join(str(int(d)) for d in shape) + "]"


def parameter_divergence(
    base: Mapping[str, Mapping[str, Any]],
    variant: Mapping[str, Mapping[str, Any]],
    base_count: int,
    variant_count: int,
) -> dict[str, Any]:
    """Which weight tensors changed shape (``weight: [10, 784] -> [5, 784]``), appeared or left."""
    changed = [
        f"{name}: {_shape_text(base[name]['shape'])} -> {_shape_text(variant[name]['shape'])}"
        for name in base
        if name in variant and list(base[name]["shape"]) != list(variant[name]["shape"])
    ]
    return {
        "changed_shapes": changed,
        "added": [name for name in variant if name not in base],
        "removed": [name for name in base if name not in variant],
        "parameter_count_ratio": (variant_count / base_count) if base_count else None,
    }


def _ratio(a: Any, b: Any) -> float | None:
    if not isinstance(a, (int, float)) or not isinstance(b, (int, float)) or b == 0:
        return None
    out = float(a) / float(b)
    return out if math.isfinite(out) else None


def _feature_axis(base: np.ndarray, variant: np.ndarray, hint: int) -> int | None:
    """The axis holding features: the one whose length differs (a width change), else ``hint``."""
    if base.ndim != variant.ndim or base.ndim == 0:
        return None
    differing = [i for i in range(base.ndim) if base.shape[i] != variant.shape[i]]
    if len(differing) > 1:
        return None
    if differing:
        return differing[0]
    return hint % base.ndim


def _centered_matrix(x: np.ndarray, axis: int) -> np.ndarray:
    m = np.moveaxis(x, axis, -1).reshape(-1, x.shape[axis]).astype(np.float64)
    centered: np.ndarray = m - m.mean(axis=0, keepdims=True)
    return centered


def linear_cka(x: np.ndarray, y: np.ndarray) -> float | None:
    """Linear CKA of two centred (n, p) and (n, q) matrices; ``None`` when undefined.

    Uses the feature form (p x q cross-covariance) when features are fewer than samples,
    the Gram form (n x n) otherwise: the cost is min(n, p + q) squared times the other.
    """
    n, p = x.shape
    q = y.shape[1]
    if p + q <= n:
        hsic = float(np.linalg.norm(x.T @ y)) ** 2
        norm = float(np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y))
    else:
        k = x @ x.T
        ell = y @ y.T
        hsic = float(np.vdot(k, ell))
        norm = float(np.linalg.norm(k) * np.linalg.norm(ell))
    if norm == 0 or not math.isfinite(norm):
        return None
    return float(hsic / norm)


def output_divergence(
    base: np.ndarray,
    variant: np.ndarray,
    base_stats: Mapping[str, Any],
    variant_stats: Mapping[str, Any],
    feature_axis: int = -1,
) -> dict[str, Any]:
    """Divergence of one output of a variant from the same output of the base."""
    out: dict[str, Any] = {
        "shape_change": None
        if base.shape == variant.shape
        else f"{_shape_text(base.shape)} -> {_shape_text(variant.shape)}",
        "std_ratio": _ratio(variant_stats.get("std"), base_stats.get("std")),
        "mean_abs_ratio": _ratio(variant_stats.get("mean_abs"), base_stats.get("mean_abs")),
        "max_ratio": _ratio(variant_stats.get("max"), base_stats.get("max")),
        "mean_difference": None,
        "cosine": None,
        "max_abs_difference": None,
        "cka": None,
        "cka_n": None,
    }
    mb, mv = base_stats.get("mean"), variant_stats.get("mean")
    if isinstance(mb, (int, float)) and isinstance(mv, (int, float)):
        out["mean_difference"] = float(mv) - float(mb)
    if not (np.isfinite(base).all() and np.isfinite(variant).all()):
        return out
    if base.shape == variant.shape and base.size:
        a = base.reshape(-1).astype(np.float64)
        b = variant.reshape(-1).astype(np.float64)
        norm = float(np.linalg.norm(a) * np.linalg.norm(b))
        out["cosine"] = float(np.dot(a, b) / norm) if norm else None
        out["max_abs_difference"] = float(np.max(np.abs(a - b)))
    axis = _feature_axis(base, variant, feature_axis)
    if axis is not None and base.size and variant.size:
        x = _centered_matrix(base, axis)
        y = _centered_matrix(variant, axis)
        if x.shape[0] == y.shape[0] and x.shape[0] >= CKA_MIN_SAMPLES:
            out["cka"] = linear_cka(x, y)
            out["cka_n"] = int(x.shape[0])
    return out
