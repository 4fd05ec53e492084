"""One array -> its value statistics and fingerprint.

Statistics are computed over the finite values, accumulated in float64, with exact quantiles
(linear interpolation between order statistics, numpy's default method), so they are
deterministic for the same values. NaN and Inf are counted, never folded into the statistics.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import numpy as np

from .tolerance import QUANTILE_KEYS, QUANTILES

Stats = dict[str, Any]


def _float(value: Any) -> float | None:
    out = float(value)
    return out if math.isfinite(out) else None


def exact_quantiles(values: np.ndarray, qs: tuple[float, ...] = QUANTILES) -> list[float]:
    """Exact quantiles of a 1-D array (numpy's 'linear' method) with one partition pass."""
    n = values.size
    positions = [q * (n - 1) for q in qs]
    lows = [math.floor(p) for p in positions]
    kth = sorted({k for low in lows for k in (low, min(low + 1, n - 1))})
    part = np.partition(values, kth)
    out = []
    for pos, low in zip(positions, lows, strict=True):
        a = float(part[low])
        b = float(part[min(low + 1, n - 1)])
        out.append(a + (b - a) * (pos - low))
    return out


def summarize(array: np.ndarray) -> Stats:
    """Shape-free statistics of ``array``: count, moments, extremes, quantiles, zeros, NaN/Inf."""
    x = np.asarray(array)
    if x.dtype == np.bool_:
        x = x.astype(np.uint8)
    flat = x.reshape(-1)
    count = int(flat.size)
    if np.issubdtype(flat.dtype, np.floating):
        nan_count = int(np.count_nonzero(np.isnan(flat)))
        inf_count = int(np.count_nonzero(np.isinf(flat)))
    else:
        nan_count = inf_count = 0
    finite = flat if nan_count + inf_count == 0 else flat[np.isfinite(flat)]
    stats: Stats = {"count": count}
    if finite.size:
        mean = np.mean(finite, dtype=np.float64)
        stats["mean"] = _float(mean)
        stats["std"] = _float(np.std(finite, dtype=np.float64))
        stats["min"] = _float(finite.min())
        stats["max"] = _float(finite.max())
        stats["mean_abs"] = _float(np.mean(np.abs(finite), dtype=np.float64))
        stats.update(zip(QUANTILE_KEYS, map(_float, exact_quantiles(finite)), strict=True))
    else:
        for key in ("mean", "std", "min", "max", "mean_abs", *QUANTILE_KEYS):
            stats[key] = None
    stats["zero_fraction"] = (count - int(np.count_nonzero(flat))) / count if count else 0.0
    stats["nan_count"] = nan_count
    stats["inf_count"] = inf_count
    return stats


def fingerprint(array: np.ndarray) -> dict[str, Any]:
    """A digest of the exact bytes (explains a failure) plus mean and std (sizes the change)."""
    x = np.ascontiguousarray(array)
    h = hashlib.blake2b(digest_size=8)
    h.update(f"{x.dtype.str}{x.shape}".encode())
    h.update(x.data if x.size else b"")
    out: dict[str, Any] = {"digest": h.hexdigest()}
    if x.size and (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        finite = x if np.isfinite(x).all() else x[np.isfinite(x)]
        if finite.size:
            mean = np.mean(finite, dtype=np.float64)
            out["mean"] = _float(mean)
            out["std"] = _float(np.std(finite, dtype=np.float64))
    return out
