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

from .blocks import BLOCK, blocks, in_parallel

#: Below this many samples CKA is not recorded: it is undefined for n < 2 and identically 1
#: for n = 2 (two centred samples span one direction), so it would pin nothing.
CKA_MIN_SAMPLES = 3


Shape = tuple[int, ...]


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


def _feature_axis(base: Shape, variant: Shape, hint: int) -> int | None:
    """The axis holding features: the one whose length differs (a width change), else ``hint``."""
    if len(base) != len(variant) or not base:
        return None
    differing = [i for i in range(len(base)) if base[i] != variant[i]]
    if len(differing) > 1:
        return None
    if differing:
        return differing[0]
    return hint % len(base)


#: CKA's cost is n * (p + q) * min(n, p + q). To keep it bounded whatever the output size, it
#: is computed on at most this many samples and features per side, picked evenly spaced (a
#: deterministic subsample); ``cka_n`` records the samples used.
CKA_MAX_SAMPLES = 2048
CKA_MAX_FEATURES = 1024


def _evenly(count: int, limit: int) -> np.ndarray | slice:
    if count <= limit:
        return slice(None)
    return np.linspace(0, count - 1, limit).round().astype(np.intp)


def _as_matrix(x: np.ndarray, axis: int) -> np.ndarray:
    """(samples, features) view of ``x``: features on ``axis``, samples all other axes."""
    return np.moveaxis(x, axis, -1).reshape(-1, x.shape[axis])


def sample_matrix(x: np.ndarray, axis: int, rows: np.ndarray | slice) -> np.ndarray:
    """The ``rows`` of ``x``'s (samples, features) matrix, reading only those rows: a large
    output is not reshaped (copied) whole to pick 2048 of its samples."""
    if isinstance(rows, slice):
        return _as_matrix(x, axis)
    moved = np.moveaxis(x, axis, -1)
    return moved[np.unravel_index(rows, moved.shape[:-1])]


def _cka_result(hsic: float, norm: float) -> float | None:
    if norm == 0 or not math.isfinite(norm) or not math.isfinite(hsic):
        return None
    return float(hsic / norm)


#: Output dtypes whose CKA is computed with float32 products (their values carry 24 bits; the
#: products' rounding moves CKA by ~1e-9, far inside the 1e-5 tolerance of float32 outputs).
_SINGLE = frozenset({np.dtype(np.float16), np.dtype(np.float32)})


def _centred(m: np.ndarray, dtype: type[np.floating[Any]]) -> np.ndarray:
    """``m`` with each column's mean removed (means and differences in float64), as ``dtype``."""
    out = m.astype(np.float64)
    out -= out.mean(axis=0, keepdims=True)
    return out if dtype is np.float64 else out.astype(dtype)


def _gram(m: np.ndarray) -> np.ndarray:
    """``m @ m.T`` (one symmetric BLAS product) in float64."""
    product: np.ndarray = m @ m.T
    return product.astype(np.float64, copy=False)


def linear_cka(x: np.ndarray, y: np.ndarray) -> float | None:
    """Linear CKA of an (n, p) and an (n, q) matrix (centred here); ``None`` when undefined.

    The feature form (p x q cross-covariances) when features are fewer than samples, the Gram
    form (n x n) otherwise: the cost is n * (p + q) * min(n, p + q) and the memory
    min(n, p + q) squared. Callers cap n and p, q (``CKA_MAX_SAMPLES``, ``CKA_MAX_FEATURES``),
    so the whole matrices are multiplied at once (``a.T @ a`` is one symmetric BLAS product).
    Float32 (and float16) matrices are centred in float64 and multiplied in float32, twice as
    fast as float64 products (the products' sums lose ~1e-7 relative, CKA ~1e-9; OpenBLAS's
    float32 products on one thread and on several differ in the last bits, ~1e-10 of CKA);
    the similarities and norms of the products are summed in float64. Anything wider is
    float64 throughout.
    """
    n, p = x.shape
    q = y.shape[1]
    single = x.dtype in _SINGLE and y.dtype in _SINGLE
    dtype: type[np.floating[Any]] = np.float32 if single else np.float64
    cx, cy = _centred(x, dtype), _centred(y, dtype)
    if p + q <= n:
        xy = (cx.T @ cy).astype(np.float64, copy=False)
        k, ell = _gram(cx.T), _gram(cy.T)
        return _cka_result(_dot(xy, xy), math.sqrt(_dot(k, k)) * math.sqrt(_dot(ell, ell)))
    k, ell = _gram(cx), _gram(cy)
    return _cka_result(_dot(k, ell), math.sqrt(_dot(k, k)) * math.sqrt(_dot(ell, ell)))


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    """The sum of ``a * b`` over two float64 matrices, by NumPy's own loop: BLAS's dot splits
    the sum across its threads (the result then depends on their number) and its threads can
    stall on a busy machine."""
    return float(np.einsum("ij,ij->", a, b))


def _similarity(a: np.ndarray, b: np.ndarray) -> tuple[float | None, float]:
    """Cosine similarity and max |a - b| of two same-shape arrays, streamed in float64 (blocks
    reduced side by side, combined in block order: the same on any number of threads)."""
    fa, fb = a.reshape(-1), b.reshape(-1)
    dot = na = nb = 0.0
    worst = 0.0
    for partials in in_parallel(lambda span: _similar_blocks(fa[span], fb[span]), fa.size):
        for block_dot, block_na, block_nb, block_worst in partials:
            dot += block_dot
            na += block_na
            nb += block_nb
            worst = max(worst, block_worst)
    norm = math.sqrt(na) * math.sqrt(nb)
    cosine = dot / norm if norm and math.isfinite(norm) and math.isfinite(dot) else None
    return cosine, worst


def _similar_blocks(a: np.ndarray, b: np.ndarray) -> list[tuple[float, float, float, float]]:
    """Per block: a.b, a.a, b.b and max |a - b|."""
    size = min(BLOCK, a.size)
    # reused scratch: fresh multi-MB temporaries per block cost page faults on every block
    wa, wb, tmp = (np.empty(size, dtype=np.float64) for _ in range(3))
    out = []
    with np.errstate(all="ignore"):  # per thread: errstate is not inherited
        for ba, bb in zip(blocks(a), blocks(b), strict=True):
            m = ba.size
            np.copyto(wa[:m], ba, casting="unsafe")
            np.copyto(wb[:m], bb, casting="unsafe")
            # elementwise products, not np.dot: BLAS threads can stall on busy machines
            dot = float(np.multiply(wa[:m], wb[:m], out=tmp[:m]).sum())
            na = float(np.square(wa[:m], out=tmp[:m]).sum())
            nb = float(np.square(wb[:m], out=tmp[:m]).sum())
            worst = float(np.abs(np.subtract(wa[:m], wb[:m], out=tmp[:m]), out=tmp[:m]).max())
            out.append((dot, na, nb, worst))
    return out


def output_divergence(
    base: Any,
    variant: Any,
    base_stats: Mapping[str, Any],
    variant_stats: Mapping[str, Any],
    feature_axis: int = -1,
) -> dict[str, Any]:
    """Divergence of one output of a variant from the same output of the base.

    ``base`` and ``variant`` are NumPy arrays, or native tensors kept on their device (then
    cosine and max |a - b| are reduced there and only CKA's sampled rows reach the host).
    Measures that overflow (outputs near the float64 range) are recorded as null, silently:
    a user's ``filterwarnings = error`` must not turn our arithmetic into their failure.
    """
    with np.errstate(all="ignore"):
        out = _divergence(base, variant, base_stats, variant_stats, feature_axis)
    if out["max_abs_difference"] is not None and not math.isfinite(out["max_abs_difference"]):
        out["max_abs_difference"] = None
    return out


def _ops(base: Any, variant: Any) -> tuple[Any, Any, Any]:
    """``similarity`` and ``sample_matrix`` for the pair, and the pair itself: NumPy's for host
    arrays, the framework's for two native tensors (a mixed pair is measured on the host)."""
    if isinstance(base, np.ndarray) and isinstance(variant, np.ndarray):
        return _NUMPY_OPS, base, variant
    from .frameworks import native_ops

    if not isinstance(base, np.ndarray) and not isinstance(variant, np.ndarray):
        ops = native_ops(base)
        if ops is native_ops(variant) and base.device == variant.device:
            return ops, base, variant
    return _NUMPY_OPS, _host(base), _host(variant)


def _host(value: Any) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    from .frameworks import native_ops

    out: np.ndarray = native_ops(value).host(value)
    return out


class _NumpyOps:
    similarity = staticmethod(_similarity)
    sample_matrix = staticmethod(sample_matrix)


_NUMPY_OPS = _NumpyOps()


def _divergence(
    base: Any,
    variant: Any,
    base_stats: Mapping[str, Any],
    variant_stats: Mapping[str, Any],
    feature_axis: int,
) -> dict[str, Any]:
    base_shape = tuple(int(d) for d in base.shape)
    variant_shape = tuple(int(d) for d in variant.shape)
    base_size, variant_size = math.prod(base_shape), math.prod(variant_shape)
    out: dict[str, Any] = {
        "shape_change": None
        if base_shape == variant_shape
        else f"{_shape_text(base_shape)} -> {_shape_text(variant_shape)}",
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
        difference = float(mv) - float(mb)
        out["mean_difference"] = difference if math.isfinite(difference) else None
    nonfinite = sum(
        int(s.get(k) or 0) for s in (base_stats, variant_stats) for k in ("nan_count", "inf_count")
    )
    if nonfinite:
        return out
    ops, base, variant = _ops(base, variant)
    if base_shape == variant_shape and base_size:
        out["cosine"], out["max_abs_difference"] = ops.similarity(base, variant)
    axis = _feature_axis(base_shape, variant_shape, feature_axis)
    if axis is not None and base_size and variant_size:
        n = base_size // base_shape[axis]
        if n == variant_size // variant_shape[axis] and n >= CKA_MIN_SAMPLES:
            rows = _evenly(n, CKA_MAX_SAMPLES)
            x = ops.sample_matrix(base, axis, rows)[:, _evenly(base_shape[axis], CKA_MAX_FEATURES)]
            y = ops.sample_matrix(variant, axis, rows)
            y = y[:, _evenly(variant_shape[axis], CKA_MAX_FEATURES)]
            out["cka"] = linear_cka(x, y)
            out["cka_n"] = int(x.shape[0])
    return out
