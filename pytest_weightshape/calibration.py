"""Calibrated tolerance: how far float32 rounding alone can move each recorded number.

At record time (``--weightshape-calibrate``) each variant is also run in float64. The elementwise
rounding error ``e = y32 - y64`` bounds how far rounding of that size can move each statistic:
an order statistic (quantile, min, max) by at most ``max|e|``, the mean and mean |x| by at most
``mean|e|``, the std by at most ``rms(e)`` (Minkowski). Those bounds are stored as each
statistic's noise; a calibrated golden then allows ``max(policy tolerance, 10 x noise)``. A
single float64 comparison (``|stat32 - stat64|``) would underestimate: one realisation of
rounding can land near zero for a statistic that the next realisation moves a lot.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from .blocks import blocks
from .document import QUANTILE_KEYS


def output_noise(y32: np.ndarray, y64: np.ndarray) -> dict[str, float]:
    """Per-statistic rounding noise of one float32 output against its float64 twin."""
    worst = total = squares = 0.0
    count = 0
    for a, b in zip(blocks(y32.reshape(-1)), blocks(y64.reshape(-1)), strict=True):
        error = a.astype(np.float64) - b
        error = error[np.isfinite(error)]
        if error.size:
            worst = max(worst, float(np.max(np.abs(error))))
            total += float(np.abs(error).sum())
            squares += float(np.square(error).sum())
            count += error.size
    if not count:
        return {}
    mean, rms = total / count, math.sqrt(squares / count)
    out = {"mean": mean, "std": rms, "min": worst, "max": worst, "mean_abs": mean}
    out.update(dict.fromkeys(QUANTILE_KEYS, worst))
    return out


def _relative(noise: Mapping[str, float], stats: Mapping[str, Any], key: str) -> float:
    value = stats.get(key)
    if not isinstance(value, (int, float)) or value == 0:
        return math.inf
    return noise.get(key, 0.0) / abs(float(value))


def divergence_noise(
    base_stats: Mapping[str, Any],
    base_noise: Mapping[str, float],
    variant_stats: Mapping[str, Any],
    variant_noise: Mapping[str, float],
    measures: Mapping[str, Any],
) -> dict[str, float]:
    """Rounding noise of base-vs-variant measures, from the two outputs' noise."""
    out: dict[str, float] = {}

    def ratio(name: str, key: str) -> None:
        value = measures.get(name)
        rel = _relative(base_noise, base_stats, key) + _relative(variant_noise, variant_stats, key)
        if isinstance(value, (int, float)) and math.isfinite(rel):
            out[name] = abs(float(value)) * rel

    ratio("std_ratio", "std")
    ratio("mean_abs_ratio", "mean_abs")
    ratio("max_ratio", "max")
    out["mean_difference"] = base_noise.get("mean", 0.0) + variant_noise.get("mean", 0.0)
    out["max_abs_difference"] = base_noise.get("max", 0.0) + variant_noise.get("max", 0.0)
    # similarity measures move by about the relative size of the perturbation (rms(e) / rms(y))
    scale_b = math.hypot(*(float(base_stats.get(k) or 0.0) for k in ("mean", "std")))
    scale_v = math.hypot(*(float(variant_stats.get(k) or 0.0) for k in ("mean", "std")))
    if scale_b and scale_v:
        rel = base_noise.get("std", 0.0) / scale_b + variant_noise.get("std", 0.0) / scale_v
        out["cosine"] = rel
        out["cka"] = 2 * rel
    return out
