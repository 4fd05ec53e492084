"""Statistics and divergence of torch tensors with torch reductions, on the tensor's device.

A large CUDA output is summarised where it lives: the same algorithm as ``stats.summarize``
(float64 shifted sums per block, a 65536-bin histogram of the floats' top 16 bits, then only
the values of the <= 14 bins holding the needed order statistics are gathered), so what
crosses to the host is a few numbers, the histogram and those bins' values, never the output.
Counts, extremes and quantiles are exactly those of the NumPy path; sums differ from it by
float64 rounding only (another summation order). ``torch.bincount`` without weights is
deterministic on CUDA, so this also runs under ``torch.use_deterministic_algorithms``.
Imported only when a check meets such a tensor.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ..stats import (
    HISTOGRAM_MIN,
    Moments,
    Stats,
    key_shift,
    pick_quantiles,
    plan_quantiles,
    statistics_from,
)
from ..stats import summarize as summarize_host

#: Elements per block on the device: big enough to keep a GPU busy, temporaries bounded.
DEVICE_BLOCK = 1 << 22
#: Same-width signed integer views of the float dtypes (torch has few unsigned types).
_INT_VIEW = {2: torch.int16, 4: torch.int32, 8: torch.int64}
_NATIVE_FLOATS = (torch.float16, torch.float32, torch.float64)


def host(tensor: torch.Tensor) -> np.ndarray:
    """A (small) tensor on the host as NumPy, with the dtype conversions of ``to_numpy``."""
    return _measured(tensor).cpu().resolve_conj().resolve_neg().numpy()


def _measured(tensor: torch.Tensor) -> torch.Tensor:
    """The values as measured: bool as uint8, bfloat16/float8 as float32 (as on the host)."""
    tensor = tensor.detach()
    if tensor.dtype == torch.bool:
        return tensor.to(torch.uint8)
    if tensor.is_floating_point() and tensor.dtype not in _NATIVE_FLOATS:
        return tensor.to(torch.float32)
    return tensor


def _blocks(flat: torch.Tensor) -> list[torch.Tensor]:
    size = flat.numel()
    return [_measured(flat[i : i + DEVICE_BLOCK]) for i in range(0, size, DEVICE_BLOCK)]


def _keys(block: torch.Tensor) -> torch.Tensor:
    """The top 16 bits of each float's bit pattern, as non-negative integers (bincount keys)."""
    bits = block.view(_INT_VIEW[block.element_size()])
    shift = key_shift(block.element_size())
    keys = (bits >> shift) if shift else bits.to(torch.int32)
    return keys & 0xFFFF


def summarize(tensor: torch.Tensor) -> Stats:
    """``stats.summarize`` of ``tensor`` computed on its device (see the module docstring).

    Small tensors (under ``HISTOGRAM_MIN`` values) and integer tensors are measured on the
    host: copying them costs less than launching the passes (integers are rare outputs).
    """
    flat = tensor.detach().reshape(-1)
    floating = flat.is_floating_point()
    count = flat.numel()
    if count < HISTOGRAM_MIN or not floating:
        return summarize_host(host(flat))
    counts = torch.zeros(65536, dtype=torch.int64, device=flat.device)
    moments = _first_pass(flat, counts)
    nan_count, inf_count, zeros, finite_count = moments[:4]
    quantiles: list[float] = []
    if finite_count:
        plan = plan_quantiles(counts.cpu().numpy(), finite_count, zeros)
        table = torch.zeros(65536, dtype=torch.bool, device=flat.device)
        table[torch.from_numpy(plan.gather).to(flat.device)] = True
        gathered = []
        for block in _blocks(flat):
            if nan_count or inf_count:
                block = block[torch.isfinite(block)]
            gathered.append(block[table[_keys(block)]])
        quantiles = pick_quantiles(plan, np.sort(host(torch.cat(gathered))))
    return statistics_from(moments, quantiles, count, lambda: _rescaled(flat, moments))


def _rescaled(flat: torch.Tensor, moments: Moments) -> tuple[float, ...]:
    unit = max(abs(moments[4]), abs(moments[5]))
    scaled = _first_pass(flat.to(torch.float64) / unit, None)
    return (unit, *scaled[6:])


def _first_pass(flat: torch.Tensor, counts: torch.Tensor | None) -> Moments:
    """NaN, Inf, zero and finite counts, min, max, shift, shifted sums and sum |x| (float64),
    and the key histogram, block by block on the device."""
    nan_count = inf_count = zeros = finite_count = 0
    shift: float | None = None
    s1 = s2 = total_abs = 0.0
    low, high = math.inf, -math.inf
    for block in _blocks(flat):
        zeros += int((block == 0).sum())
        finite = torch.isfinite(block)
        if not bool(finite.all()):
            nans = int(torch.isnan(block).sum())
            nan_count += nans
            inf_count += block.numel() - int(finite.sum()) - nans
            block = block[finite]
        if not block.numel():
            continue
        wide = block.to(torch.float64, copy=True)  # never in place on the model's output
        if shift is None:
            shift = float(wide.mean())
        total_abs += float(wide.abs().sum())
        wide -= shift
        s1 += float(wide.sum())
        s2 += float(wide.square_().sum())
        low = min(low, float(block.min()))
        high = max(high, float(block.max()))
        finite_count += block.numel()
        if counts is not None:
            counts += torch.bincount(_keys(block), minlength=65536)
    return (nan_count, inf_count, zeros, finite_count, low, high, shift or 0.0, s1, s2, total_abs)


def similarity(a: torch.Tensor, b: torch.Tensor) -> tuple[float | None, float]:
    """Cosine similarity and max |a - b| of two same-shape tensors, float64 on their device."""
    dot = na = nb = 0.0
    worst = 0.0
    for ba, bb in zip(_blocks(a.reshape(-1)), _blocks(b.reshape(-1)), strict=True):
        wa, wb = ba.to(torch.float64), bb.to(torch.float64)
        dot += float((wa * wb).sum())
        na += float(wa.square().sum())
        nb += float(wb.square().sum())
        worst = max(worst, float((wa - wb).abs().max()))
    norm = math.sqrt(na) * math.sqrt(nb)
    cosine = dot / norm if norm and math.isfinite(norm) and math.isfinite(dot) else None
    return cosine, worst


def sample_matrix(x: torch.Tensor, axis: int, rows: np.ndarray | slice) -> np.ndarray:
    """The ``rows`` of ``x``'s (samples, features) matrix, picked on the device; only those
    rows reach the host (CKA uses at most 2048 of them)."""
    moved = x.detach().movedim(axis, -1)
    if isinstance(rows, slice):
        return host(moved.reshape(-1, moved.shape[-1]))
    index = np.unravel_index(rows, tuple(moved.shape[:-1]))
    picked = moved[tuple(torch.from_numpy(i).to(x.device) for i in index)]
    return host(picked)


def owns(value: Any) -> bool:
    return isinstance(value, torch.Tensor)
