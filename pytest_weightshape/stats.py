"""One array -> its value statistics and fingerprint.

Statistics are computed over the finite values, accumulated in float64, with exact quantiles
(linear interpolation between order statistics, numpy's default method), so they are
deterministic for the same values. NaN and Inf are counted, never folded into the statistics.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from .tolerance import QUANTILE_KEYS, QUANTILES

Stats = dict[str, Any]


def _float(value: Any) -> float | None:
    out = float(value)
    return out if math.isfinite(out) else None


def exact_quantiles(
    values: np.ndarray, qs: tuple[float, ...] = QUANTILES, *, scratch: bool = False
) -> list[float]:
    """Exact quantiles of a 1-D array (numpy's 'linear' method) with one partition pass.

    ``scratch=True`` partitions ``values`` in place (the caller owns a copy) instead of copying.
    """
    n = values.size
    positions = [q * (n - 1) for q in qs]
    lows = [math.floor(p) for p in positions]
    kth = sorted({k for low in lows for k in (low, min(low + 1, n - 1))})
    if scratch:
        values.partition(kth)
        part = values
    else:
        part = np.partition(values, kth)
    out = []
    for pos, low in zip(positions, lows, strict=True):
        a = float(part[low])
        b = float(part[min(low + 1, n - 1)])
        out.append(a + (b - a) * (pos - low))
    return out


#: Elements per block for the streaming passes: temporaries stay a few MB whatever the size.
BLOCK = 1 << 20


def blocks(flat: np.ndarray) -> Iterator[np.ndarray]:
    """Consecutive views of a 1-D array, ``BLOCK`` elements each (a fixed order: results are
    deterministic)."""
    for start in range(0, flat.size, BLOCK):
        yield flat[start : start + BLOCK]


def _finite_copy(flat: np.ndarray, size: int) -> np.ndarray:
    """The finite values of ``flat`` in a new array, filled block by block (no full mask)."""
    out = np.empty(size, dtype=flat.dtype)
    filled = 0
    for block in blocks(flat):
        finite = block[np.isfinite(block)]
        out[filled : filled + finite.size] = finite
        filled += finite.size
    return out


def summarize(array: np.ndarray) -> Stats:
    """Shape-free statistics of ``array``: count, moments, extremes, quantiles, zeros, NaN/Inf.

    Moments are accumulated in float64 over blocks (two passes: mean, then squared deviations),
    so memory beyond the array is a few MB plus one copy of the finite values for the exact
    quantiles.
    """
    x = np.asarray(array)
    if x.dtype == np.bool_:
        x = x.view(np.uint8)
    flat = x.reshape(-1)
    count = int(flat.size)
    floating = np.issubdtype(flat.dtype, np.floating)
    nan_count = inf_count = zeros = 0
    total = total_abs = 0.0
    low, high = math.inf, -math.inf
    for block in blocks(flat):
        zeros += block.size - int(np.count_nonzero(block))
        if floating:
            finite_mask = np.isfinite(block)
            bad = block.size - int(np.count_nonzero(finite_mask))
            if bad:
                nan_count += int(np.count_nonzero(np.isnan(block)))
                inf_count += bad - int(np.count_nonzero(np.isnan(block)))
                block = block[finite_mask]
        if block.size:
            wide = block.astype(np.float64)
            total += float(wide.sum())
            total_abs += float(np.abs(wide).sum())
            low = min(low, float(block.min()))
            high = max(high, float(block.max()))
    finite_count = count - nan_count - inf_count
    stats: Stats = {"count": count}
    if finite_count:
        mean = total / finite_count
        squares = 0.0
        for block in blocks(flat):
            if nan_count + inf_count:
                block = block[np.isfinite(block)]
            deviation = block.astype(np.float64) - mean
            squares += float(np.dot(deviation, deviation))
        stats["mean"] = _float(mean)
        stats["std"] = _float(math.sqrt(squares / finite_count))
        stats["min"] = _float(low)
        stats["max"] = _float(high)
        stats["mean_abs"] = _float(total_abs / finite_count)
        if nan_count + inf_count:
            quantiles = exact_quantiles(_finite_copy(flat, finite_count), scratch=True)
        else:
            quantiles = exact_quantiles(flat)
        stats.update(zip(QUANTILE_KEYS, map(_float, quantiles), strict=True))
    else:
        for key in ("mean", "std", "min", "max", "mean_abs", *QUANTILE_KEYS):
            stats[key] = None
    stats["zero_fraction"] = zeros / count if count else 0.0
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
