"""``inputs=`` -> the arrays every variant's forward gets, one :class:`Input` per model argument.

Inputs are made once, on the host, from a framework-independent NumPy stream keyed by the seed,
so they are bit-identical across framework versions and devices. A drawn input belongs to the
harness alone: the forwards share it with no copy, and each forward is checked not to have
changed it (block CRCs, which also see changes behind torch's version counter, such as through
``.data``); one that changed is drawn again, bit for bit. Arrays and tensors a caller gives are
the caller's: each forward gets its own copy (see ``Adapter.convert_input``).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .errors import ModelError, SpecError, exception_line
from .frameworks import Array, to_numpy
from .stats import block_digests

Redraw = Callable[[], np.ndarray]


class Input:
    """One model argument: its name in the check document, its value, and how it was made.

    ``again`` draws the same array anew (``None`` for a value the caller gave); ``shared``
    says whether forwards get ``value`` as it is (a drawn input no forward has changed or
    handed out as an output) or a copy of it.
    """

    __slots__ = ("again", "host", "name", "shared", "signature", "value")

    def __init__(self, name: str, value: Any, again: Redraw | None) -> None:
        self.name = name
        self.value = value
        self.again = again
        self.shared = again is not None
        #: CRC-32 per block of a shared input, as drawn.
        self.signature = block_digests(value) if self.shared else None
        converted = to_numpy(value)
        assert converted is not None  # checked by ``_one``
        #: The value on the host, with its dtype name (for fingerprints).
        self.host = Array(name, converted[0], converted[1])

    def keep(self, outputs: Sequence[Array]) -> None:
        """After a forward that shared this input: if it changed the input in place, draw it
        again; if an output holds it (a model returning its input), leave it to that output.
        Either way the next forwards get their own copies, as they do of a caller's inputs,
        so every forward sees the drawn values."""
        if not self.shared or self.again is None:
            return
        if block_digests(self.value) != self.signature:
            self.value = self.again()
            self.shared = False
        elif any(_holds(o, self.value) for o in outputs):
            self.shared = False


def _holds(output: Array, value: np.ndarray) -> bool:
    """Whether a host output may share memory with ``value``."""
    held = output.measured()
    return isinstance(held, np.ndarray) and np.may_share_memory(held, value)


def input_stream(seed: int) -> np.random.Generator:
    """The framework-independent stream inputs are drawn from (PCG64 keyed by the seed)."""
    return np.random.Generator(np.random.PCG64(seed))


def make_inputs(inputs: Any, seed: int) -> tuple[Any, ...]:
    """Resolve ``inputs`` to a tuple of arrays/tensors (one per model argument).

    A shape tuple gives a float32 standard-normal array; a tuple of shapes/arrays is a
    multi-input; a callable is called with a seeded ``numpy.random.Generator`` (or nothing).
    """
    return tuple(value for value, _ in resolve_inputs(inputs, seed))


def draw_inputs(inputs: Any, seed: int) -> list[Input]:
    """``inputs=`` as one :class:`Input` per model argument (``input``, or ``input.0``,
    ``input.1`` ... for several)."""
    resolved = resolve_inputs(inputs, seed)
    several = len(resolved) > 1
    return [
        Input(f"input.{i}" if several else "input", value, again)
        for i, (value, again) in enumerate(resolved)
    ]


def resolve_inputs(inputs: Any, seed: int) -> tuple[tuple[Any, Redraw | None], ...]:
    """``make_inputs``, each value paired with how to draw it again (``None`` for a value the
    caller gave): no one else holds a drawn array, so the harness may hand it to the forwards
    as it is, and draw it afresh, bit for bit, if a forward changes it."""
    rng = input_stream(seed)
    if callable(inputs) and not _is_shape(inputs):
        try:
            takes_rng = bool(inspect.signature(inputs).parameters)
        except (TypeError, ValueError):
            takes_rng = False
        try:
            inputs = inputs(rng) if takes_rng else inputs()
        except Exception as exc:
            raise SpecError(f"the inputs= callable raised {exception_line(exc)}") from None
        if _is_shape(inputs):
            raise SpecError("the inputs= callable returned a shape; return the array itself")
    if _is_shape(inputs):
        return (_drawn(rng, inputs),)
    if isinstance(inputs, list) and inputs and all(isinstance(d, int) for d in inputs):
        raise SpecError(f"inputs={inputs!r}: a shape is a tuple, e.g. inputs={tuple(inputs)!r}")
    if isinstance(inputs, (tuple, list)):
        if not inputs:
            raise SpecError("inputs= is empty: give a shape such as (1, 784), an array, or a tuple")
        return tuple(
            _drawn(rng, item) if _is_shape(item) else (_one(item), None) for item in inputs
        )
    return ((_one(inputs), None),)


def _is_shape(value: Any) -> bool:
    return (
        isinstance(value, tuple)
        and len(value) > 0
        and all(isinstance(d, int) and not isinstance(d, bool) for d in value)
    )


def _drawn(rng: np.random.Generator, shape: tuple[int, ...]) -> tuple[np.ndarray, Redraw]:
    """A drawn array, and how to draw the same one again (from the stream's state before it;
    nothing else, such as an ``inputs=`` callable, runs again)."""
    state = rng.bit_generator.state

    def again() -> np.ndarray:
        replay = np.random.Generator(np.random.PCG64())
        replay.bit_generator.state = state
        return _draw(replay, shape)

    return _draw(rng, shape), again


def _draw(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    if any(d < 0 for d in shape):
        raise SpecError(f"inputs= shape {shape} has a negative dimension")
    try:
        return rng.standard_normal(shape, dtype=np.float32)
    except (MemoryError, ValueError) as exc:  # ValueError: more elements than an index holds
        raise SpecError(
            f"inputs= shape {shape} asks for {_bytes(4 * math.prod(shape))} of float32 input, "
            f"which could not be allocated ({exception_line(exc)}): give a smaller shape"
        ) from None


def _bytes(size: int) -> str:
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if size >= scale:
            return f"{size / scale:.3g} {unit}"
    return f"{size} bytes"


def _one(value: Any) -> Any:
    try:
        converted = to_numpy(value)
    except ModelError as exc:
        raise SpecError(f"inputs= got {exc}") from None
    if converted is not None and converted[0].dtype.kind not in "biufc":
        raise SpecError(
            f"inputs= got {converted[0].dtype} values ({type(value).__name__}), which no model "
            "input is drawn or fingerprinted from: give numbers (encode text as ids)"
        )
    if converted is None:
        raise SpecError(
            f"inputs= got {type(value).__name__}; give a shape tuple such as (1, 784), "
            "an array or tensor, a tuple of those, or a callable returning them"
        )
    return value
