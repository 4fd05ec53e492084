"""Seeded draws of integer and boolean inputs: ``integers(shape, high)``, ``booleans(shape)``.

A shape tuple in ``inputs=`` draws float32 standard-normal values; token models want ids below
a vocabulary size and masks. These helpers say what to draw; the check draws it from its own
framework-independent stream (PCG64 keyed by the marker's seed, see :mod:`.inputs`), so the
values are the same under any framework, version or device. Importing this module imports no
numpy (the package exports these names).
"""

from __future__ import annotations

import numbers
from typing import Any

from .errors import SpecError

#: Integer dtypes a draw may ask for (NumPy names; torch and Keras take them as they are).
INTEGER_DTYPES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")


def _integer(value: Any) -> bool:
    """An integer: Python's, NumPy's (``np.int64`` from a config or an array) or any other
    ``numbers.Integral``; never a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _shape(shape: Any, what: str) -> tuple[int, ...]:
    if _integer(shape):
        shape = (shape,)
    if (
        not isinstance(shape, tuple)
        or not all(_integer(d) for d in shape)
        or any(d < 0 for d in shape)
    ):
        raise SpecError(
            f"{what}: the shape must be a tuple of non-negative integers, got {shape!r}"
        )
    return tuple(int(d) for d in shape)


def _dtype_name(dtype: Any) -> Any:
    """``"int32"`` for ``"int32"``, ``np.int32``, ``np.dtype("int32")`` or ``torch.int32``;
    anything else as it is (refused by the caller)."""
    if isinstance(dtype, str):
        return dtype
    name = getattr(dtype, "__name__", None) if isinstance(dtype, type) else None
    text = str(name if name is not None else dtype)
    return text.removeprefix("torch.") if text.removeprefix("torch.") in INTEGER_DTYPES else dtype


class Draw:
    """An input to draw from the check's seeded stream: ``kind`` (``integers`` or
    ``booleans``), ``shape``, and the kind's arguments. Made by :func:`integers` and
    :func:`booleans`; put one in ``inputs=`` (alone, in a tuple, or as a mapping's value)."""

    __slots__ = ("dtype", "high", "kind", "low", "p", "shape")

    def __init__(
        self,
        kind: str,
        shape: tuple[int, ...],
        *,
        low: int = 0,
        high: int = 0,
        p: float = 0.5,
        dtype: str = "bool",
    ) -> None:
        self.kind = kind
        self.shape = shape
        self.low = low
        self.high = high
        self.p = p
        self.dtype = dtype

    def draw(self, rng: Any) -> Any:
        """The values, from ``rng`` (a ``numpy.random.Generator``)."""
        if self.kind == "integers":
            return rng.integers(self.low, self.high, self.shape, dtype=self.dtype)
        return rng.random(self.shape) < self.p

    def __repr__(self) -> str:
        if self.kind == "integers":
            return f"integers({self.shape}, high={self.high}, low={self.low}, dtype={self.dtype!r})"
        return f"booleans({self.shape}, p={self.p})"


def integers(shape: Any, high: int, *, low: int = 0, dtype: str = "int64") -> Draw:
    """Integers drawn uniformly from ``[low, high)`` (token ids below a vocabulary size),
    ``int64`` unless ``dtype`` says otherwise (torch's embeddings take int64)."""
    where = f"integers({shape!r}, high={high!r})"
    if not all(_integer(v) for v in (low, high)):
        raise SpecError(f"{where}: low and high must be integers")
    low, high, dtype = int(low), int(high), _dtype_name(dtype)
    if high <= low:
        raise SpecError(
            f"{where}: high must be above low ({low}); values are drawn from [low, high)"
        )
    if dtype not in INTEGER_DTYPES:
        raise SpecError(f"{where}: dtype must be one of {', '.join(INTEGER_DTYPES)}, got {dtype!r}")
    return Draw("integers", _shape(shape, where), low=low, high=high, dtype=dtype)


def booleans(shape: Any, *, p: float = 0.5) -> Draw:
    """Booleans, each ``True`` with probability ``p`` (masks); ``p=1.0`` gives all ``True``."""
    where = f"booleans({shape!r}, p={p!r})"
    given: Any = p  # a NumPy float too (numbers.Real)
    if isinstance(given, bool) or not isinstance(given, numbers.Real):
        raise SpecError(f"{where}: p must be a probability in [0, 1]")
    probability = float(given)
    if not 0.0 <= probability <= 1.0:
        raise SpecError(f"{where}: p must be a probability in [0, 1]")
    return Draw("booleans", _shape(shape, where), p=probability)
