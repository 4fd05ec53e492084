"""Portable weights: every weight redrawn from a framework-independent stream.

With ``weights="portable"`` each parameter is replaced, after the model is built, by values drawn
from NumPy's PCG64 keyed by the seed and the parameter's name, at the scale of the framework's own
default initializer. One architecture then has bit-identical weights on every Keras backend, in
every framework version, so any divergence between them is forward numerics alone.

Scale rules (the framework's defaults):

* tensors of two or more dimensions: Keras's ``glorot_uniform``, limit sqrt(6 / (fan_in +
  fan_out)); torch's ``kaiming_uniform(a=sqrt(5))``, limit 1 / sqrt(fan_in);
* constant tensors (zero biases, unit BatchNorm scales) keep their value: they are already the
  same everywhere;
* other one-dimensional tensors (torch's random biases) use the limit of the weight beside them
  (``fc.bias`` -> ``fc.weight``), or else sqrt(3) x their own std rounded to two digits.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

import numpy as np

from .frameworks import Array


def _fans(shape: Sequence[int], convention: str) -> tuple[int, int]:
    if convention == "torch":  # (out, in, *kernel)
        receptive = math.prod(shape[2:])
        return shape[1] * receptive, shape[0] * receptive
    receptive = math.prod(shape[:-2])  # keras: (*kernel, in, out)
    return shape[-2] * receptive, shape[-1] * receptive


def _limit(shape: Sequence[int], convention: str) -> float:
    fan_in, fan_out = _fans(shape, convention)
    if convention == "torch":
        return 1.0 / math.sqrt(fan_in) if fan_in else 0.0
    return math.sqrt(6.0 / (fan_in + fan_out)) if fan_in + fan_out else 0.0


def _stream(seed: int, name: str) -> np.random.Generator:
    key = hashlib.blake2b(f"{seed}\x00{name}".encode(), digest_size=8).digest()
    return np.random.Generator(np.random.PCG64(int.from_bytes(key, "little")))


def _sibling_limit(name: str, params: dict[str, Array], convention: str) -> float | None:
    head, sep, _ = name.rpartition("." if convention == "torch" else "/")
    for candidate in ("weight", "kernel"):
        sibling = params.get(f"{head}{sep}{candidate}")
        if sibling is not None and sibling.value.ndim >= 2:
            return _limit(sibling.value.shape, convention)
    return None


def redraw(params: Sequence[Array], seed: int, convention: str) -> dict[str, np.ndarray]:
    """New values for each parameter (same shape and dtype), keyed by name."""
    by_name = {p.name: p for p in params}
    out: dict[str, np.ndarray] = {}
    for p in params:
        value = p.value
        if value.size == 0 or (value.size and np.all(value == value.reshape(-1)[0])):
            out[p.name] = value.copy()
            continue
        if value.ndim >= 2:
            limit = _limit(value.shape, convention)
        else:
            sibling = _sibling_limit(p.name, by_name, convention)
            limit = sibling if sibling is not None else float(f"{math.sqrt(3) * value.std():.2g}")
        drawn = _stream(seed, p.name).uniform(-limit, limit, value.shape)
        out[p.name] = drawn.astype(value.dtype)
    return out
