"""``inputs=`` -> the arrays every variant's forward gets, one :class:`Input` per model argument.

A mapping passes keyword arguments (each :class:`Input` then has its ``keyword`` and is named
by it); a tuple whose last item is a mapping passes positional and keyword arguments together.
``integers(...)`` and ``booleans(...)`` (:mod:`.draws`) say what to draw besides float32.

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
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from .draws import Draw
from .errors import ModelError, SpecError, exception_line
from .frameworks import Array, to_numpy
from .stats import block_digests

Redraw = Callable[[], np.ndarray]
Resolved = tuple[Any, Redraw | None]


class Input:
    """One model argument: its name in the check document, its value, and how it was made.

    ``again`` draws the same array anew (``None`` for a value the caller gave); ``shared``
    says whether forwards get ``value`` as it is (a drawn input no forward has changed or
    handed out as an output) or a copy of it.
    """

    __slots__ = ("again", "host", "keyword", "name", "shared", "signature", "value")

    def __init__(
        self, name: str, value: Any, again: Redraw | None, keyword: str | None = None
    ) -> None:
        self.name = name
        #: The keyword argument this input is passed as (``None``: positional).
        self.keyword = keyword
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
    """Resolve ``inputs`` to a tuple of arrays/tensors (one per model argument; keyword
    inputs follow the positional ones, in the mapping's order).

    A shape tuple gives a float32 standard-normal array; ``integers(...)``/``booleans(...)``
    draw integer or boolean arrays; a tuple of those/arrays is a multi-input; a mapping passes
    its values as keyword arguments; a callable is called with a seeded
    ``numpy.random.Generator`` (or nothing) and returns any of these.
    """
    return tuple(value for value, _ in resolve_inputs(inputs, seed))


def draw_inputs(inputs: Any, seed: int, rng: np.random.Generator | None = None) -> list[Input]:
    """``inputs=`` as one :class:`Input` per model argument: positional ones are ``input``
    (or ``input.0``, ``input.1`` ... for several), keyword ones are named by their keyword.
    With ``rng`` (the seed's stream), the draws come from it and it is left after them (so
    targets can be drawn next, see :func:`draw_targets`)."""
    positional, keywords = resolve_arguments(inputs, seed, rng)
    several = len(positional) > 1
    out = [
        Input(f"input.{i}" if several else "input", value, again)
        for i, (value, again) in enumerate(positional)
    ]
    taken = {i.name for i in out}
    for key, (value, again) in keywords.items():
        if key in taken:
            raise SpecError(
                f"inputs= has a keyword input named {key!r}, which is also the name of a "
                "positional input: rename the keyword or pass that input by keyword only"
            )
        out.append(Input(key, value, again, keyword=key))
    return out


def resolve_inputs(inputs: Any, seed: int) -> tuple[Resolved, ...]:
    """``make_inputs``, each value paired with how to draw it again (``None`` for a value the
    caller gave): no one else holds a drawn array, so the harness may hand it to the forwards
    as it is, and draw it afresh, bit for bit, if a forward changes it."""
    positional, keywords = resolve_arguments(inputs, seed)
    return (*positional, *keywords.values())


def resolve_arguments(
    inputs: Any, seed: int, rng: np.random.Generator | None = None
) -> tuple[list[Resolved], dict[str, Resolved]]:
    """``inputs=`` -> (positional arguments, keyword arguments), each value paired with how to
    draw it again. Positional values are drawn first, then keyword values in mapping order,
    from ``rng`` when given, else from a new stream of the seed."""
    rng = input_stream(seed) if rng is None else rng
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
    if isinstance(inputs, Mapping):
        if not inputs:
            raise SpecError(
                "inputs= is an empty mapping: give keyword inputs such as "
                "{'input_ids': integers((1, 8), high=100)}"
            )
        return [], _keywords(rng, inputs)
    if _is_shape(inputs) or isinstance(inputs, Draw):
        return [_item(rng, inputs)], {}
    if isinstance(inputs, list) and inputs and all(isinstance(d, int) for d in inputs):
        raise SpecError(f"inputs={inputs!r}: a shape is a tuple, e.g. inputs={tuple(inputs)!r}")
    if isinstance(inputs, (tuple, list)):
        if not inputs:
            raise SpecError("inputs= is empty: give a shape such as (1, 784), an array, or a tuple")
        items, keywords = list(inputs), {}
        if isinstance(items[-1], Mapping):  # (positional..., {keyword: value})
            keywords = items.pop()
        if any(isinstance(item, Mapping) for item in items):
            raise SpecError(
                "inputs= holds a mapping before its last item: keyword inputs go in one "
                "mapping at the end, e.g. inputs=((1, 8), {'mask': booleans((1, 8))})"
            )
        positional = [_item(rng, item) for item in items]
        return positional, (_keywords(rng, keywords) if keywords else {})
    return [(_one(inputs), None)], {}


def draw_targets(targets: Any, seed: int, rng: np.random.Generator) -> list[Input]:
    """``targets=`` of ``check_training`` as :class:`Input` s named ``target`` (or
    ``target.0``, ``target.1`` ...), drawn like ``inputs=`` from ``rng``: the seed's stream
    after the inputs were drawn from it, so a shape gives other values than the inputs'."""
    if isinstance(targets, Mapping) or (
        isinstance(targets, (tuple, list)) and targets and isinstance(targets[-1], Mapping)
    ):
        raise SpecError(
            "targets= takes a shape, an array or tensor, integers(...), a tuple of those, or a "
            "callable taking the generator; not a mapping (targets are not keyword arguments)"
        )
    try:
        positional, _ = resolve_arguments(targets, seed, rng)
    except SpecError as exc:
        raise SpecError(str(exc).replace("inputs=", "targets=")) from None
    several = len(positional) > 1
    return [
        Input(f"target.{i}" if several else "target", value, again)
        for i, (value, again) in enumerate(positional)
    ]


def _item(rng: np.random.Generator, item: Any) -> Resolved:
    if _is_shape(item):
        shape = item
        return _drawn(rng, lambda r: _draw(r, shape))
    if isinstance(item, Draw):
        draw = item
        return _drawn(rng, lambda r: _draw_spec(r, draw))
    return _one(item), None


def _keywords(rng: np.random.Generator, mapping: Mapping[Any, Any]) -> dict[str, Resolved]:
    out: dict[str, Resolved] = {}
    for key, value in mapping.items():
        if not isinstance(key, str) or not key.isidentifier():
            raise SpecError(
                f"inputs= mapping key {key!r} is not a keyword argument name: keys name the "
                "model's keyword arguments, e.g. {'input_ids': ..., 'attention_mask': ...}"
            )
        try:
            out[key] = _item(rng, value)
        except SpecError as exc:
            raise SpecError(f"keyword input {key!r}: {exc}") from None
    return out


def _is_shape(value: Any) -> bool:
    return (
        isinstance(value, tuple)
        and len(value) > 0
        and all(isinstance(d, int) and not isinstance(d, bool) for d in value)
    )


def _drawn(
    rng: np.random.Generator, make: Callable[[np.random.Generator], np.ndarray]
) -> tuple[np.ndarray, Redraw]:
    """A drawn array, and how to draw the same one again (from the stream's state before it;
    nothing else, such as an ``inputs=`` callable, runs again)."""
    state = rng.bit_generator.state

    def again() -> np.ndarray:
        replay = np.random.Generator(np.random.PCG64())
        replay.bit_generator.state = state
        return make(replay)

    return make(rng), again


def _draw_spec(rng: np.random.Generator, draw: Draw) -> np.ndarray:
    """An ``integers(...)`` or ``booleans(...)`` draw."""
    try:
        return np.ascontiguousarray(draw.draw(rng))
    except (MemoryError, ValueError) as exc:
        raise SpecError(f"inputs= {draw!r} could not be drawn ({exception_line(exc)})") from None


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
            "an array or tensor, integers(...) or booleans(...), a tuple of those, a mapping of "
            "keyword inputs, or a callable returning one of these"
        )
    return value
