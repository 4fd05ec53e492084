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


#: Elements per block for the streaming passes: temporaries stay a few MB whatever the size.
BLOCK = 1 << 18


def blocks(flat: np.ndarray) -> Iterator[np.ndarray]:
    """Consecutive views of a 1-D array, ``BLOCK`` elements each (a fixed order: results are
    deterministic)."""
    for start in range(0, flat.size, BLOCK):
        yield flat[start : start + BLOCK]


def _finite(block: np.ndarray) -> tuple[np.ndarray, int, int]:
    """The finite values of a float block, with its NaN and Inf counts."""
    finite = np.isfinite(block)
    if finite.all():
        return block, 0, 0
    nans = int(np.count_nonzero(np.isnan(block)))
    return block[finite], nans, block.size - int(np.count_nonzero(finite)) - nans


#: Float widths whose bit patterns give a 16-bit histogram key (sign, exponent, top mantissa).
_KEY_TYPES = {2: np.uint16, 4: np.uint32, 8: np.uint64}
#: Histogram bins in ascending value order: negative keys (sign bit set) descend in value.
_KEY_ORDER = np.concatenate([np.arange(0xFFFF, 0x7FFF, -1), np.arange(0, 0x8000)])


def _keys(block: np.ndarray) -> np.ndarray:
    """The top 16 bits of each float's bit pattern: a monotone (per sign) 65536-bin key."""
    bits = block.view(_KEY_TYPES[block.dtype.itemsize])
    shift = 8 * block.dtype.itemsize - 16
    return (bits >> shift).astype(np.uint16) if shift else bits


def _histogram_quantiles(flat: np.ndarray, counts: np.ndarray, n: int) -> list[float]:
    """Exact quantiles from a key histogram: only the elements of the <= 14 bins that hold the
    needed order statistics are gathered (one more pass) and sorted."""
    positions = [q * (n - 1) for q in QUANTILES]
    lows = [math.floor(p) for p in positions]
    ranks = sorted({k for low in lows for k in (low, min(low + 1, n - 1))})
    sorted_counts = counts[_KEY_ORDER]
    cumulative = np.cumsum(sorted_counts)
    where = np.searchsorted(cumulative, ranks, side="right")  # sorted-bin position per rank
    wanted = np.unique(where)
    table = np.zeros(65536, dtype=bool)
    table[_KEY_ORDER[wanted]] = True
    gathered = []
    for block in blocks(flat):
        if np.issubdtype(block.dtype, np.floating) and not np.isfinite(block).all():
            block = block[np.isfinite(block)]
        gathered.append(block[table[_keys(block)]])
    values = np.sort(np.concatenate(gathered))
    # index of a rank among the gathered values: earlier gathered bins, then rank in its bin
    before = np.concatenate([[0], np.cumsum(sorted_counts[wanted])])
    start_of = {int(w): int(before[k]) for k, w in enumerate(wanted)}
    value_at = {}
    for rank, pos in zip(ranks, where, strict=True):
        first_rank = int(cumulative[pos - 1]) if pos else 0
        value_at[rank] = float(values[start_of[int(pos)] + rank - first_rank])
    out = []
    for pos, low in zip(positions, lows, strict=True):
        a, b = value_at[low], value_at[min(low + 1, n - 1)]
        out.append(a + (b - a) * (pos - low))
    return out


def summarize(array: np.ndarray) -> Stats:
    """Shape-free statistics of ``array``: count, moments, extremes, quantiles, zeros, NaN/Inf.

    One streaming pass (blocks of ``BLOCK`` values, float64 accumulators) gives the count,
    NaN/Inf, zeros, min, max, mean |x|, and mean and std (shifted sums, stable when the data sit
    far from zero), plus a 65536-bin histogram of the floats' bit patterns; a second pass gathers
    only the values of the bins that hold the needed order statistics, so the quantiles are exact
    (numpy's 'linear' method) without sorting or copying the output. Integer outputs fall back to
    one partition of a copy.
    """
    x = np.asarray(array)
    if x.dtype == np.bool_:
        x = x.view(np.uint8)
    flat = x.reshape(-1)
    count = int(flat.size)
    floating = np.issubdtype(flat.dtype, np.floating) and flat.dtype.itemsize in _KEY_TYPES
    counts = np.zeros(65536, dtype=np.int64) if floating else None
    with np.errstate(over="ignore", invalid="ignore"):
        moments = _first_pass(flat, floating, counts)
    nan_count, inf_count, zeros, finite_count, low, high, shift, s1, s2, total_abs = moments
    unit = 1.0
    overflow = not all(map(math.isfinite, (s1, s2, total_abs)))
    underflow = s2 < 1e-250 and high > low  # squares of tiny values flushed to zero
    if finite_count and (overflow or underflow):
        # values near the ends of the float64 range: redo the sums on scaled values
        unit = max(abs(low), abs(high))
        with np.errstate(over="ignore", invalid="ignore"):
            scaled = _first_pass(flat / unit, floating, None)
        shift, s1, s2, total_abs = scaled[6:]
    stats: Stats = {"count": count}
    if finite_count:
        centred = s1 / finite_count
        stats["mean"] = _float(unit * (shift + centred))
        stats["std"] = _float(unit * math.sqrt(max(s2 / finite_count - centred * centred, 0.0)))
        stats["min"] = _float(low)
        stats["max"] = _float(high)
        stats["mean_abs"] = _float(unit * (total_abs / finite_count))
        if counts is not None:
            quantiles = _histogram_quantiles(flat, counts, finite_count)
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


def _first_pass(
    flat: np.ndarray, floating: bool, counts: np.ndarray | None
) -> tuple[int, int, int, int, float, float, float, float, float, float]:
    """NaN, Inf, zero and finite counts, min, max, the shift and the shifted sums, sum |x|;
    fills the key histogram ``counts`` when given."""
    nan_count = inf_count = zeros = finite_count = 0
    shift: float | None = None
    s1 = s2 = total_abs = 0.0
    low, high = math.inf, -math.inf
    for block in blocks(flat):
        zeros += block.size - int(np.count_nonzero(block))
        if floating:
            block, nans, infs = _finite(block)
            nan_count += nans
            inf_count += infs
        if not block.size:
            continue
        wide = block.astype(np.float64)
        if shift is None:
            shift = float(wide.mean())
        total_abs += float(np.abs(wide).sum())
        wide -= shift
        s1 += float(wide.sum())
        s2 += float(np.square(wide, out=wide).sum())  # not np.dot: BLAS may be throttled
        low = min(low, float(block.min()))
        high = max(high, float(block.max()))
        finite_count += block.size
        if counts is not None:
            counts += np.bincount(_keys(block), minlength=65536)
    return (nan_count, inf_count, zeros, finite_count, low, high, shift or 0.0, s1, s2, total_abs)


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
