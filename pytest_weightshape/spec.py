"""The ``shape_variant`` marker -> a validated :class:`VariantSpec`.

``@pytest.mark.shape_variant(hidden_size=[10, 20])`` declares an axis; the first value of each
axis is the base. Several axes are zipped, or crossed with ``grid=True``; ``variants=[{...}, ...]``
(or ``{"name": {...}}``) lists variants explicitly, the first being the base.
"""

from __future__ import annotations

import difflib
import functools
import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .devices import check_device
from .errors import SpecError
from .marker import MARKER_SIGNATURE as MARKER_SIGNATURE  # shown in errors
from .tolerance import Override, check_number, parse_per_stat

#: Keyword arguments of the marker that are settings, not axes.
MARKER_SETTINGS: tuple[str, ...] = (
    "variants",
    "grid",
    "seed",
    "rtol",
    "atol",
    "tolerance",
    "weights",
    "device",
)
#: How weights are initialised: by the framework's own init, or redrawn portably.
WEIGHTS_CHOICES: tuple[str, ...] = ("framework", "portable")


@dataclass(frozen=True)
class Variant:
    """One model configuration: its readable name and the kwargs given to the builder."""

    name: str
    kwargs: Mapping[str, Any]
    is_base: bool = False


@dataclass(frozen=True)
class VariantSpec:
    """Everything the marker says: variants (base first), seed and tolerance settings."""

    variants: tuple[Variant, ...]
    seed: int = 0
    tolerance: Override = field(default_factory=Override)
    per_stat: Mapping[str, Override] = field(default_factory=dict)
    weights: str = "framework"
    device: str | None = None

    @property
    def base(self) -> Variant:
        return self.variants[0]


def check_weights(value: object, where: str) -> str:
    """Validate ``weights=``: ``"framework"`` (the default) or ``"portable"``."""
    if value not in WEIGHTS_CHOICES:
        raise SpecError(
            f"{where}: weights= must be one of {', '.join(map(repr, WEIGHTS_CHOICES))}, "
            f"got {value!r}"
        )
    return str(value)


def format_value(value: Any) -> str:
    """A stable, readable text for an axis value, used in variant names.

    Numbers (NumPy scalars too, named as the number), strings, booleans, ``None``, tuples,
    lists and sets of those (sets sorted), and named callables (functions, classes,
    ``functools.partial``) are supported. Anything whose ``repr``
    would change between runs (it holds a memory address) is refused.
    """
    if type(value).__module__ == "numpy" and hasattr(value, "item"):
        # a NumPy scalar: named as the number it holds (NumPy 2's repr, np.int64(8), would
        # name it differently from NumPy 1's 8); str() is the shortest text of its own
        # precision (np.float32(0.1) -> 0.1)
        return str(value)
    if isinstance(value, str):
        return _writable(value, "an axis value")
    if value is None or isinstance(value, (bool, int)):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    if isinstance(value, (tuple, list)):
        inner = ",".join(format_value(v) for v in value)
        return f"({inner})" if isinstance(value, tuple) else f"[{inner}]"
    if isinstance(value, (set, frozenset)):  # sorted: a set's order follows string hashing
        return "{" + ",".join(sorted(format_value(v) for v in value)) + "}"
    if isinstance(value, functools.partial):
        args = [format_value(a) for a in value.args]
        args += [f"{k}={format_value(v)}" for k, v in value.keywords.items()]
        return f"{format_value(value.func)}({','.join(args)})"
    name = getattr(value, "__qualname__", None) or getattr(value, "__name__", None)
    if isinstance(name, str) and callable(value):
        if "<lambda>" in name:
            raise SpecError(
                "a lambda has no stable name; use a named function (def ...) or a string key"
            )
        return name
    text = repr(value)
    if " at 0x" in text or len(text) > 80:
        raise SpecError(
            f"value {text[:60]!r} of type {type(value).__name__} has no stable, short name; "
            "use a string, a number, or a named function as the axis value"
        )
    return text


def _writable(text: str, what: str) -> str:
    """``text``, if a golden file (UTF-8) can hold it: a lone surrogate (``"\\ud800"``, from
    ``os.fsdecode`` of undecodable bytes) cannot be written, and would fail at session end."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise SpecError(
            f"{what} {text!r} is not valid Unicode text (a lone surrogate), which no golden "
            "file can hold: use plain text"
        ) from None
    return text


def check_text(text: str, what: str) -> str:
    """Validate a name that keys a golden (a check's ``name=``)."""
    return _writable(text, what)


def variant_name(kwargs: Mapping[str, Any]) -> str:
    """``{"kernel_size": 5, "padding": 2}`` -> ``"kernel_size=5,padding=2"``."""
    if not kwargs:
        return "default"
    return ",".join(f"{key}={format_value(val)}" for key, val in kwargs.items())


def _axis_values(name: str, values: object) -> list[Any]:
    if isinstance(values, (list, tuple, range)):
        if len(values) == 0:
            raise SpecError(
                f"axis {name!r} is empty; give at least the base value, e.g. {name}=[10, 20]"
            )
        return list(values)
    hint = ""
    close = difflib.get_close_matches(name, MARKER_SETTINGS, n=1)
    if close:
        hint = f" Did you mean the setting {close[0]}=?"
    raise SpecError(
        f"axis {name!r} must be a list of values (first is the base), "
        f"e.g. {name}=[{values!r}, ...]; "
        f"got {type(values).__name__} {values!r}.{hint}"
    )


def _explicit_variants(variants: object) -> list[tuple[str | None, Mapping[str, Any]]]:
    if isinstance(variants, (Mapping, list, tuple)) and not variants:
        raise SpecError(
            "variants= is empty; give the base first, e.g. variants=[{'units': 10}, {'units': 5}]"
        )
    if isinstance(variants, Mapping):
        items = list(variants.items())
        for key, kwargs in items:
            if not isinstance(key, str) or not key:
                raise SpecError(f"variants= names must be non-empty strings, got {key!r}")
            if not isinstance(kwargs, Mapping):
                raise SpecError(
                    f"variants[{key!r}] must be a dict of builder kwargs, got {kwargs!r}"
                )
        return [(key, kwargs) for key, kwargs in items]
    if isinstance(variants, (list, tuple)):
        out: list[tuple[str | None, Mapping[str, Any]]] = []
        for i, kwargs in enumerate(variants):
            if not isinstance(kwargs, Mapping):
                raise SpecError(
                    f"variants[{i}] must be a dict of builder kwargs, got {type(kwargs).__name__}"
                )
            out.append((None, kwargs))
        return out
    raise SpecError(
        f"variants= must be a list of dicts (first is the base) or a dict name -> kwargs, "
        f"got {type(variants).__name__}"
    )


def parse_marker(args: Sequence[Any], kwargs: Mapping[str, Any]) -> VariantSpec:
    """Validate the marker's arguments and expand them into variants.

    Raises :class:`SpecError` with a message that says what to change.
    """
    if args:
        raise SpecError(
            f"the marker takes keyword arguments only, got positional {list(args)!r}. "
            f"Signature: {MARKER_SIGNATURE}"
        )
    axes = {k: v for k, v in kwargs.items() if k not in MARKER_SETTINGS}
    grid = kwargs.get("grid", False)
    if not isinstance(grid, bool):
        raise SpecError(f"grid= must be True or False, got {grid!r}")
    seed = kwargs.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise SpecError(f"seed= must be an integer in [0, 2**32), got {seed!r}")
    override = Override(
        rtol=check_number(kwargs.get("rtol"), "rtol="),
        atol=check_number(kwargs.get("atol"), "atol="),
    )
    per_stat = parse_per_stat(kwargs.get("tolerance"), "marker")
    weights = check_weights(kwargs.get("weights", "framework"), "marker")
    device = check_device(kwargs.get("device"), "marker")

    raw: list[tuple[str | None, Mapping[str, Any]]]
    if kwargs.get("variants") is not None:
        if axes:
            raise SpecError(
                f"use either axes ({', '.join(axes)}) or variants=, not both: "
                "put every setting into the variants' dicts"
            )
        if grid:
            raise SpecError("grid=True crosses axes; it has no meaning with variants=")
        raw = _explicit_variants(kwargs["variants"])
    elif axes:
        values = {name: _axis_values(name, vals) for name, vals in axes.items()}
        combos: Iterable[tuple[Any, ...]]
        if grid:
            combos = itertools.product(*values.values())
        else:
            lengths = {name: len(vals) for name, vals in values.items()}
            if len(set(lengths.values())) > 1:
                shown = ", ".join(f"{n}: {k}" for n, k in lengths.items())
                raise SpecError(
                    f"axes are zipped and must have equal length ({shown}); "
                    "pass grid=True to cross them instead"
                )
            combos = zip(*values.values(), strict=True)
        raw = [(None, dict(zip(values, combo, strict=True))) for combo in combos]
    else:
        raise SpecError(
            "the marker needs at least one axis, e.g. shape_variant(hidden_size=[10, 20]), "
            "or variants=[{...}, {...}]"
        )

    variants: list[Variant] = []
    seen: dict[str, int] = {}
    for i, (given, kw) in enumerate(raw):
        for key in kw:
            if not isinstance(key, str) or not key.isidentifier():
                raise SpecError(f"variant {i}: builder keyword {key!r} is not a valid name")
        try:
            name = _writable(given, "variant name") if given is not None else variant_name(kw)
        except SpecError as exc:
            raise SpecError(f"variant {i} ({dict(kw)!r}): {exc}") from None
        if name in seen:
            raise SpecError(
                f"variants {seen[name]} and {i} have the same name {name!r}; "
                "every variant needs distinct values (names key the golden file)"
            )
        seen[name] = i
        variants.append(Variant(name=name, kwargs=dict(kw), is_base=i == 0))
    return VariantSpec(
        variants=tuple(variants),
        seed=seed,
        tolerance=override,
        per_stat=per_stat,
        weights=weights,
        device=device,
    )
