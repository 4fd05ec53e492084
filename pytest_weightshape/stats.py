"""One array -> its value statistics and fingerprint.

Statistics are computed over the finite values, accumulated in float64, with exact quantiles
(linear interpolation between order statistics, numpy's default method), so they are
deterministic for the same values. NaN and Inf are counted, never folded into the statistics.
"""

from __future__ import annotations

import math
import sys
import zlib
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np

from .blocks import BLOCK, beside, blocks, in_parallel, spare_threads
from .blocks import cgroup_cpus as cgroup_cpus  # re-exported: moved to blocks
from .blocks import threads as threads  # re-exported: moved to blocks
from .checksum import array_crc, combine
from .document import DIGEST_PREFIX, QUANTILE_KEYS, QUANTILES

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


def _finite(block: np.ndarray) -> tuple[np.ndarray, int, int]:
    """The finite values of a float block, with its NaN and Inf counts."""
    finite = np.isfinite(block)
    if finite.all():
        return block, 0, 0
    nans = int(np.count_nonzero(np.isnan(block)))
    return block[finite], nans, block.size - int(np.count_nonzero(finite)) - nans


#: Float widths whose bit patterns give a 16-bit histogram key (sign, exponent, top mantissa).
_KEY_WIDTHS = (2, 4, 8)
#: Histogram bins in ascending value order: negative keys (sign bit set) descend in value.
_KEY_ORDER = np.concatenate([np.arange(0xFFFF, 0x7FFF, -1), np.arange(0, 0x8000)])
#: The keys of +0.0 and -0.0 (their bins also hold the tiniest subnormals of either sign).
ZERO_KEYS = (0x0000, 0x8000)
#: Below this many values one partition of a copy costs less than the 65536-bin histogram (and
#: gives the same order statistics: both are exact).
HISTOGRAM_MIN = 1 << 16


def key_shift(itemsize: int) -> int:
    """How far a float's bit pattern is shifted right to leave its top 16 bits."""
    return 8 * itemsize - 16


#: Where a float's top 16 bits lie: its last 16-bit word on little-endian machines.
_TOP_WORD_LAST = sys.byteorder == "little"


def _keys(block: np.ndarray, out: np.ndarray) -> np.ndarray:
    """The top 16 bits of each float's bit pattern (a monotone per-sign 65536-bin key), copied
    from each float's top 16-bit word into the integer scratch ``out`` (``bincount`` and
    ``take`` then need no conversion). ``block`` is contiguous, in native byte order."""
    words = block.dtype.itemsize // 2
    halves = block.view(np.uint16)
    top = halves[words - 1 :: words] if _TOP_WORD_LAST else halves[::words]
    keys = out[: block.size]
    np.copyto(keys, top, casting="unsafe")
    return keys


class QuantilePlan(NamedTuple):
    """Where the needed order statistics lie in a key histogram, before any value is read."""

    positions: list[float]  # fractional rank of each quantile
    lows: list[int]  # the rank below each position
    ranks: list[int]  # every rank needed (lows and the ranks above them)
    where: np.ndarray  # per rank: its bin's position in ascending value order
    cumulative: np.ndarray  # counts in ascending value order, cumulated
    gather: np.ndarray  # keys of the bins whose values must be read (ascending value order)
    zero_bins: frozenset[int]  # sorted positions of needed bins known to hold only zeros


def plan_quantiles(counts: np.ndarray, n: int, zeros: int) -> QuantilePlan:
    """The <= 14 bins holding the needed order statistics of ``n`` finite values.

    The bins of +0.0 and -0.0 need not be read when together they hold exactly the ``zeros``
    (then every value in them is 0): a ReLU output's zeros are never gathered or sorted.
    """
    positions = [q * (n - 1) for q in QUANTILES]
    lows = [math.floor(p) for p in positions]
    ranks = sorted({k for low in lows for k in (low, min(low + 1, n - 1))})
    sorted_counts = counts[_KEY_ORDER]
    cumulative = np.cumsum(sorted_counts)
    where = np.searchsorted(cumulative, ranks, side="right")  # sorted-bin position per rank
    wanted = np.unique(where)
    only_zeros = int(sum(counts[k] for k in ZERO_KEYS)) == zeros
    zero_bins = frozenset(int(w) for w in wanted if only_zeros and int(_KEY_ORDER[w]) in ZERO_KEYS)
    gather = np.array([_KEY_ORDER[w] for w in wanted if int(w) not in zero_bins], dtype=np.intp)
    return QuantilePlan(positions, lows, ranks, where, cumulative, gather, zero_bins)


def gather_table(plan: QuantilePlan) -> np.ndarray:
    """A 65536-entry mask: which keys' values the second pass keeps."""
    table = np.zeros(65536, dtype=bool)
    table[plan.gather] = True
    return table


def pick_quantiles(plan: QuantilePlan, gathered: np.ndarray) -> list[float]:
    """The quantiles from the sorted values of the gathered bins (numpy's 'linear' method)."""
    sorted_counts = np.diff(plan.cumulative, prepend=0)
    start_of: dict[int, int] = {}
    offset = 0
    for w in np.unique(plan.where):
        if int(w) not in plan.zero_bins:
            start_of[int(w)] = offset
            offset += int(sorted_counts[w])
    value_at = {}
    for rank, pos in zip(plan.ranks, plan.where, strict=True):
        if int(pos) in plan.zero_bins:
            value_at[rank] = 0.0
            continue
        first_rank = int(plan.cumulative[pos - 1]) if pos else 0
        value_at[rank] = float(gathered[start_of[int(pos)] + rank - first_rank])
    n = int(plan.cumulative[-1])
    out = []
    for pos, low in zip(plan.positions, plan.lows, strict=True):
        a, b = value_at[low], value_at[min(low + 1, n - 1)]
        out.append(a + (b - a) * (pos - low))
    return out


def _histogram_quantiles(
    flat: np.ndarray, counts: np.ndarray, n: int, zeros: int, all_finite: bool
) -> list[float]:
    """Exact quantiles from a key histogram: only the values of the <= 14 bins that hold the
    needed order statistics are gathered (one more pass) and sorted."""
    plan = plan_quantiles(counts, n, zeros)
    if not plan.gather.size:  # every needed order statistic is a zero (a ReLU's quantiles)
        return pick_quantiles(plan, np.empty(0, dtype=flat.dtype))
    table = gather_table(plan)

    def gather(part: np.ndarray) -> list[np.ndarray]:
        keys = np.empty(min(BLOCK, part.size), dtype=np.intp)
        out = []
        for block in blocks(part):
            if not all_finite:
                block = block[np.isfinite(block)]
            out.append(block[table.take(_keys(block, keys))])
        return out

    gathered = [
        values for run in in_parallel(lambda span: gather(flat[span]), flat.size) for values in run
    ]
    return pick_quantiles(plan, np.sort(np.concatenate(gathered)))


def summarize(array: np.ndarray) -> Stats:
    """Shape-free statistics of ``array``: count, moments, extremes, quantiles, zeros, NaN/Inf.

    One streaming pass (blocks of ``BLOCK`` values into reused float64 scratch buffers) gives
    the count, NaN/Inf, zeros, min, max, mean |x|, and mean and std (shifted sums, stable when
    the data sit far from zero), plus a 65536-bin histogram of the floats' bit patterns; a
    second pass gathers only the values of the bins that hold the needed order statistics, so
    the quantiles are exact (numpy's 'linear' method) without sorting or copying the output.
    Small and integer outputs take one partition of a copy instead (the same exact values).
    """
    x = np.asarray(array)
    if x.dtype == np.bool_:
        x = x.view(np.uint8)
    # one contiguous run of native byte order: the histogram reads the floats' bits
    flat = np.ascontiguousarray(x.reshape(-1), dtype=x.dtype.newbyteorder("="))
    count = int(flat.size)
    floating = bool(np.issubdtype(flat.dtype, np.floating))
    # long double has no 16-bit key: it takes the partition path, NaN and Inf left out as well
    histogram = floating and flat.dtype.itemsize in _KEY_WIDTHS and count >= HISTOGRAM_MIN
    counts = np.zeros(65536, dtype=np.int64) if histogram else None
    moments = _first_pass(flat, floating, counts)
    nan_count, inf_count, zeros, finite_count = moments[:4]
    if finite_count and counts is not None:
        all_finite = not (nan_count or inf_count)
        quantiles = _histogram_quantiles(flat, counts, finite_count, zeros, all_finite)
    elif finite_count:
        quantiles = exact_quantiles(flat[np.isfinite(flat)] if floating else flat)
    else:
        quantiles = []
    return statistics_from(moments, quantiles, count, lambda: _rescaled(flat, floating, moments))


Moments = tuple[int, int, int, int, float, float, float, float, float, float]


def _rescaled(flat: np.ndarray, floating: bool, moments: Moments) -> tuple[float, ...]:
    unit = max(abs(moments[4]), abs(moments[5]))
    with np.errstate(all="ignore"):
        scaled = _first_pass(flat / unit, floating, None)
    return (unit, *scaled[6:])


def statistics_from(
    moments: Moments,
    quantiles: list[float],
    count: int,
    rescaled: Callable[[], tuple[float, ...]],
) -> Stats:
    """The statistics from the first pass's moments and the quantiles.

    ``rescaled`` redoes the sums on values divided by max |x| (values near the ends of the
    float64 range overflow the squares, or tiny ones flush them to zero); it returns the unit
    and the new shift, s1, s2 and sum |x|.
    """
    nan_count, inf_count, zeros, finite_count, low, high, shift, s1, s2, total_abs = moments
    unit = 1.0
    overflow = not all(map(math.isfinite, (s1, s2, total_abs)))
    underflow = s2 < 1e-250 and high > low  # squares of tiny values flushed to zero
    if finite_count and (overflow or underflow):
        unit, shift, s1, s2, total_abs = rescaled()
    stats: Stats = {"count": count}
    if finite_count:
        stats["mean"], stats["std"] = _mean_and_std(finite_count, shift, s1, s2, unit)
        stats["min"] = _float(low)
        stats["max"] = _float(high)
        stats["mean_abs"] = _float(unit * (total_abs / finite_count))
        stats.update(zip(QUANTILE_KEYS, map(_float, quantiles), strict=True))
    else:
        for key in ("mean", "std", "min", "max", "mean_abs", *QUANTILE_KEYS):
            stats[key] = None
    stats["zero_fraction"] = zeros / count if count else 0.0
    stats["nan_count"] = nan_count
    stats["inf_count"] = inf_count
    return stats


#: One block's share of the first pass: zeros, NaN, Inf, finite count, min, max, sum |x|, and
#: the sum and sum of squares of ``x - shift``.
_Partial = tuple[int, int, int, int, float, float, float, float, float]


def _first_pass(flat: np.ndarray, floating: bool, counts: np.ndarray | None) -> Moments:
    """NaN, Inf, zero and finite counts, min, max, the shift and the shifted sums, sum |x|;
    fills the key histogram ``counts`` when given. Blocks are reduced side by side
    (``in_parallel``) and combined in block order."""
    shift = _first_mean(flat, floating)
    nan_count = inf_count = zeros = finite_count = 0
    s1 = s2 = total_abs = 0.0
    low, high = math.inf, -math.inf
    histogram = counts is not None
    for partials, run_counts in in_parallel(
        lambda span: _scan(flat[span], floating, shift, histogram), flat.size
    ):
        for z, nans, infs, m, lo, hi, a, b1, b2 in partials:
            zeros += z
            nan_count += nans
            inf_count += infs
            if m:
                finite_count += m
                low, high = min(low, lo), max(high, hi)
                total_abs += a
                s1 += b1
                s2 += b2
        if counts is not None:
            counts += run_counts
    return (nan_count, inf_count, zeros, finite_count, low, high, shift, s1, s2, total_abs)


def _first_mean(flat: np.ndarray, floating: bool) -> float:
    """The shift of the shifted sums: the float64 mean of the first block's finite values
    (the first block holding any), so the sums stay stable far from zero."""
    for block in blocks(flat):
        if floating:
            block = _finite(block)[0]
        if block.size:
            with np.errstate(all="ignore"):
                return float(block.astype(np.float64).mean())
    return 0.0


def _scan(
    part: np.ndarray, floating: bool, shift: float, histogram: bool
) -> tuple[list[_Partial], np.ndarray | None]:
    """The first pass over a run of blocks: one partial per block, and the run's histogram."""
    size = min(BLOCK, part.size)
    # reused scratch: fresh multi-MB temporaries per block cost page faults on every block
    wide, spare = np.empty(size, dtype=np.float64), np.empty(size, dtype=np.float64)
    keys = np.empty(size if histogram else 0, dtype=np.intp)
    counts = np.zeros(65536, dtype=np.int64) if histogram else None
    partials: list[_Partial] = []
    # per thread (threads do not inherit it): squares overflow or underflow near the ends of
    # the range (``statistics_from`` rescales), and a caller's np.seterr must not make that an error
    with np.errstate(all="ignore"):
        for block in blocks(part):
            nans = infs = 0
            low, high = block.min(), block.max()  # NaN propagates: finite ends, finite block
            if floating and not (np.isfinite(low) and np.isfinite(high)):
                block, nans, infs = _finite(block)
                if not block.size:
                    partials.append((0, nans, infs, 0, math.inf, -math.inf, 0.0, 0.0, 0.0))
                    continue
                low, high = block.min(), block.max()
            zeros = 0
            if not (low > 0 or high < 0):  # no zero can lie outside [low, high]
                zeros = -1  # not counted yet
            if counts is not None:
                block_counts = np.bincount(_keys(block, keys), minlength=65536)
                counts += block_counts
                if zeros and not any(int(block_counts[k]) for k in ZERO_KEYS):
                    zeros = 0  # the bins of +0.0 and -0.0 are empty: no zero to count
            if zeros:
                zeros = int(np.count_nonzero(block == 0))
            m = block.size
            w = wide[:m]
            np.copyto(w, block, casting="unsafe")
            if low >= 0:  # |x| = x (a ReLU's output): the same sum, one pass fewer
                total_abs = float(w.sum())
            elif high <= 0:
                total_abs = -float(w.sum())
            else:
                total_abs = float(np.abs(w, out=spare[:m]).sum())
            b1, b2 = _shifted_sums(w, shift)
            partials.append((zeros, nans, infs, m, float(low), float(high), total_abs, b1, b2))
    return partials, counts


def _shifted_sums(w: np.ndarray, shift: float) -> tuple[float, float]:
    """Sum and sum of squares of ``w - shift`` (``w`` a float64 scratch block, overwritten)."""
    np.subtract(w, shift, out=w)
    s1 = float(w.sum())
    return s1, float(np.square(w, out=w).sum())  # not np.dot: BLAS threads may stall


def mean_std(flat: np.ndarray, most: int = 0) -> tuple[float | None, float | None]:
    """Mean and std of the finite values of a 1-D numeric array (a fingerprint needs no
    extremes or histogram); ``most`` caps the threads (see ``in_parallel``)."""
    mean, std, _ = moments(flat, most)
    return mean, std


#: Values whose float64 mean shifts a fingerprint's sums: a few suffice, the shift only keeps
#: the sums stable far from zero (it need not be the mean).
SHIFT_SAMPLE = 1024


def moments(
    flat: np.ndarray, most: int = 0, rough: bool = False
) -> tuple[float | None, float | None, int]:
    """Mean and std of the finite values of a 1-D numeric array, and its count of exact zeros,
    in one pass (blocks reduced side by side, combined in block order: the same on any number
    of threads); ``most`` caps the threads.

    ``rough`` (fingerprints, whose mean and std only size a change in a message): a float32
    array's differences and squares stay in float32, summed per row of ``ROW`` values and the
    rows in float64, ~1e-7 relative instead of ~1e-16, at half the cost.
    """
    floating = bool(np.issubdtype(flat.dtype, np.floating))
    if flat.size <= SMALL:
        return _small_moments(flat)
    head = flat[:SHIFT_SAMPLE]
    if floating:
        head = head[np.isfinite(head)]
    with np.errstate(all="ignore"):
        shift = float(head.mean(dtype=np.float64)) if head.size else _first_mean(flat, floating)
    single = rough and flat.dtype == np.float32
    if single:
        shift = float(np.float32(shift))  # the rows' differences are taken in float32
    count, zeros, s1, s2 = 0, 0, 0.0, 0.0
    for sums in in_parallel(
        lambda span: _sums(flat[span], floating, shift, single), flat.size, most
    ):
        for m, z, b1, b2 in sums:
            count += m
            zeros += z
            s1 += b1
            s2 += b2
    if not count:
        return None, None, zeros
    mean, std = _mean_and_std(count, shift, s1, s2)
    return mean, std, zeros


#: Arrays up to this many values take ``_small_moments``: a model's many small tensors (biases,
#: norms' weights and running statistics) cost NumPy calls, not sweeps.
SMALL = 1 << 16


def _small_moments(flat: np.ndarray) -> tuple[float | None, float | None, int]:
    """``moments`` of a small array in a few NumPy calls: one float64 copy, exact sums."""
    with np.errstate(all="ignore"):
        w = flat.astype(np.float64)
        zeros = int(np.count_nonzero(w == 0))
        finite = np.isfinite(w)
        if not finite.all():
            w = w[finite]
        if not w.size:
            return None, None, zeros
        shift = float(w[:SHIFT_SAMPLE].mean())
        w -= shift
        s1, s2 = _sums_of(w)
    mean, std = _mean_and_std(int(w.size), shift, s1, s2)
    return mean, std, zeros


#: Values per row of a rough sum (see ``moments``): summed in float32, the rows in float64.
ROW = 1024


def _sums(
    part: np.ndarray, floating: bool, shift: float, single: bool = False
) -> list[tuple[int, int, float, float]]:
    """Per block: the finite count, the zeros and the shifted sums (``moments``' pass over a
    run). The differences go straight into a scratch block; a block whose sums are not finite
    held NaN or Inf (or squares beyond the range) and is summed again, in float64, over its
    finite values only."""
    size = min(BLOCK, part.size)
    wide = np.empty(size, dtype=np.float64)
    narrow = np.empty(size if single else 0, dtype=np.float32)
    mask = np.empty(size, dtype=np.bool_)
    out = []
    with np.errstate(all="ignore"):
        for block in blocks(part):
            m = block.size
            zeros = _block_zeros(block, mask)
            if single:
                b1, b2 = _rough_sums(np.subtract(block, np.float32(shift), out=narrow[:m]))
            else:
                b1, b2 = _sums_of(np.subtract(block, shift, out=wide[:m], dtype=np.float64))
            if floating and not (math.isfinite(b1) and math.isfinite(b2)):
                block = _finite(block)[0]
                m = block.size
                w = np.subtract(block, shift, out=wide[:m], dtype=np.float64)
                b1, b2 = _sums_of(w) if m else (0.0, 0.0)
            if m:
                out.append((m, zeros, b1, b2))
            elif zeros:
                out.append((0, zeros, 0.0, 0.0))
    return out


def _rough_sums(d: np.ndarray) -> tuple[float, float]:
    """The sum and the sum of squares of a float32 block: per row of ``ROW`` values in
    float32 (pairwise sums; the squares by ``einsum``, no temporary), the rows in float64."""
    whole = d.size - d.size % ROW
    rows = d[:whole].reshape(-1, ROW)
    tail = d[whole:].astype(np.float64)
    s1 = float(np.add.reduce(rows, axis=1).sum(dtype=np.float64) + tail.sum())
    s2 = float(np.einsum("ij,ij->i", rows, rows).sum(dtype=np.float64) + tail.dot(tail))
    return s1, s2


def _sums_of(w: np.ndarray) -> tuple[float, float]:
    """The sum and the sum of squares of a float64 scratch block (overwritten; pairwise sums,
    not BLAS's dot: its threads may stall, and split the sum)."""
    s1 = float(w.sum())
    return s1, float(np.square(w, out=w).sum())


def _mean_and_std(
    count: int, shift: float, s1: float, s2: float, unit: float = 1.0
) -> tuple[float | None, float | None]:
    """Mean and std from the sums of ``x / unit - shift`` and of its squares."""
    centred = s1 / count
    variance = max(s2 / count - centred * centred, 0.0)
    return _float(unit * (shift + centred)), _float(unit * math.sqrt(variance))


def zero_count(array: np.ndarray) -> int:
    """How many values of ``array`` are exactly zero (NaN is not zero), block by block: NumPy's
    ``count_nonzero`` of a float array takes a slow generic loop (~0.5 ns per value), a
    comparison into a reused mask and the count of that mask a fifth of it."""
    flat = np.asarray(array).reshape(-1)
    if flat.dtype.kind not in "fc" or flat.size < BLOCK:
        return int(flat.size - np.count_nonzero(flat))
    mask = np.empty(BLOCK, dtype=np.bool_)
    return sum(_block_zeros(block, mask) for block in blocks(flat))


def _block_zeros(block: np.ndarray, mask: np.ndarray) -> int:
    """The exact zeros of a float block, compared into ``mask`` (at least as long, reused)."""
    return int(np.count_nonzero(np.equal(block, 0, out=mask[: block.size])))


def digest(array: np.ndarray, most: int = 0) -> str:
    """``crc32:`` and the CRC-32 of the array's dtype, shape and bytes (in C order)."""
    return f"{DIGEST_PREFIX}{digest_crc(array, most):08x}"


def digest_crc(array: np.ndarray, most: int = 0) -> int:
    """The CRC-32 of ``digest``: the array's dtype and shape, then its bytes (large arrays on
    up to ``most`` threads, see ``checksum.array_crc``; the same value on any number)."""
    x = np.ascontiguousarray(array)
    crc = _header_crc(x)
    return array_crc(x, crc, most) if x.size else crc


def _header_crc(x: np.ndarray) -> int:
    """The CRC-32 of a digest's header: the array's dtype and shape."""
    return zlib.crc32(f"{x.dtype.str}{x.shape}".encode())


def block_digests(array: np.ndarray) -> list[int]:
    """The CRC-32 of each block of the array's bytes: equal lists, equal bytes (the blocks
    are hashed side by side, see ``in_parallel``; a whole-array CRC cannot be split)."""
    flat = np.ascontiguousarray(array).reshape(-1)

    def crcs(span: slice) -> list[int]:
        return [zlib.crc32(block.data) for block in blocks(flat[span])]

    return [crc for run in in_parallel(crcs, flat.size) for crc in run]


def output_crc(value: Any) -> int | None:
    """``digest_crc`` of an output kept on the host (what ``reuse`` seals); ``None`` for a
    tensor kept on its device (reading its bytes would copy it to the host)."""
    return digest_crc(value) if isinstance(value, np.ndarray) else None


def fingerprint(
    array: np.ndarray, zeros: bool = False, known: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A digest of the exact bytes (explains a failure) plus mean and std (sizes the change);
    with ``zeros``, the fraction of exact zeros too (``zero_fraction``, from the same pass).

    The digest is a CRC-32 of dtype, shape and bytes: it only has to tell "same bytes" from
    "changed", and it costs a quarter of a cryptographic hash (~9 ms per 40 MB input). On a
    large array it runs on a second thread while this one takes the moments.

    ``known``: the golden's fingerprint of this tensor. Where its digest is this array's, the
    bytes are the recorded ones and its mean and std are taken (they size a change in a
    message and decide nothing; measuring gives them again to ~1e-7): one pass on every thread
    gives the digest and the zero count, which is measured (the variant's sparsity is compared).
    """
    x = np.ascontiguousarray(array)
    numeric = np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)
    mean: float | None = None
    std: float | None = None
    zero_count_: int | None = None
    if known is not None and numeric and isinstance(known.get("digest"), str):
        return _as_known(x, zeros, known)
    spare = spare_threads(x.size) if numeric else 0
    if spare:
        crc, found = beside(
            lambda: digest(x, most=1), lambda: moments(x.reshape(-1), most=spare, rough=True)
        )
        mean, std, zero_count_ = found
        out: dict[str, Any] = {"digest": crc}
    else:
        out = {"digest": digest(x)}
        if numeric and x.size:  # streamed (no float64 copy of a large input or weight)
            mean, std, zero_count_ = moments(x.reshape(-1), rough=True)
    if mean is not None:  # None when no value is finite: NaN and Inf are left out
        out["mean"], out["std"] = mean, std
    if zeros:
        if zero_count_ is None:
            zero_count_ = zero_count(x)
        out["zero_fraction"] = _fraction(x.size, zero_count_)
    return out


def _as_known(x: np.ndarray, zeros: bool, known: Mapping[str, Any]) -> dict[str, Any]:
    """``fingerprint`` of a numeric array given the golden's (``known``, with a digest)."""
    found, zero_count_ = digest_and_zeros(x)
    out: dict[str, Any] = {"digest": found}
    moments_ = [known.get(k) for k in ("mean", "std") if k in known]
    taken = len(moments_) != 1 and all(isinstance(m, float) for m in moments_)
    if found == known["digest"] and taken:
        if len(moments_) == 2:
            out["mean"], out["std"] = moments_
    elif x.size:
        mean, std, _ = moments(x.reshape(-1), rough=True)
        if mean is not None:
            out["mean"], out["std"] = mean, std
    if zeros:
        out["zero_fraction"] = _fraction(x.size, zero_count_)
    return out


def _fraction(size: int, zeros: int) -> float:
    return 1.0 - (size - zeros) / size if size else 0.0


def digest_and_zeros(array: np.ndarray, most: int = 0) -> tuple[str, int]:
    """``digest`` and ``zero_count`` of a numeric array in one pass over its blocks, the spans
    side by side on up to ``most`` threads (``in_parallel``), their CRCs combined in order:
    the same digest, bit for bit, as ``digest``."""
    x = np.ascontiguousarray(array)
    flat = x.reshape(-1)
    header = _header_crc(x)
    if flat.dtype.kind not in "fc" or flat.size < BLOCK:
        return f"{DIGEST_PREFIX}{array_crc(x, header):08x}", zero_count(flat)

    def span(part: slice) -> tuple[int, int, int]:
        values = flat[part]
        mask = np.empty(min(BLOCK, values.size), dtype=np.bool_)
        crc = count = 0
        for block in blocks(values):
            crc = zlib.crc32(block.data, crc)
            count += _block_zeros(block, mask)
        return crc, values.nbytes, count

    crc, total = header, 0
    for part_crc, length, count in in_parallel(span, flat.size, most):
        crc = combine(crc, part_crc, length)
        total += count
    return f"{DIGEST_PREFIX}{crc:08x}", total
