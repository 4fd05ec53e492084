"""Layer records: what each leaf layer of a model put out, and the first one that moved.

When a golden is recorded, each variant also records, for every leaf layer in execution order,
its output's type, dtype, shape and cheap statistics (count, mean, std, mean |x|, min, max,
accumulated in float64). The framework adapters observe the layers (``observe_layers``); this
module holds what is framework-free: the record's format in a golden, flattening a layer's
outputs to names, statistics of a host array, and the comparison with the golden's layers
that names the first layer whose output moved (:func:`localise`).

A golden keeps a variant's layers compactly, one line per layer output::

    "layers": {
      "fields": ["type", "dtype", "shape", "count", "mean", "std", "mean_abs", "min", "max"],
      "entries": {"blocks.2.bn": ["BatchNorm2d", "float32", "2x16x8x8", 2048, 0.01, ...]}
    }

or ``{"unrecorded": "<why>"}`` where the layers cannot be observed (TorchScript, compiled
models, NumPy callables). A golden recorded before layers existed has no ``layers`` at all.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .devices import kind
from .document import LAYER_FIELDS as FIELDS
from .document import LAYER_STATS
from .tolerance import Policy

#: Layer outputs kept per variant; a larger model keeps the first ones and the total
#: (``"total"``): localisation then covers those, and says so.
MAX_LAYERS = 2000
#: Significant digits a golden keeps of a layer statistic (far below every tolerance: float64
#: outputs allow 1e-7 relative, this rounds by at most 5e-10).
DIGITS = 9
#: Moved layers after the first one shown in a message.
FOLLOWING = 3


class LayerOutput(NamedTuple):
    """One output of one call of a leaf layer, as an adapter observed it."""

    name: str  # qualified layer name; ``name#2`` for its second call; ``name.0`` for a part
    type: str  # the layer's class name
    dtype: str
    shape: tuple[int, ...]
    stats: dict[str, Any]  # LAYER_STATS -> number (None: not finite)


# -- what adapters use --------------------------------------------------------------------


def flatten_output(raw: Any, is_leaf: Callable[[Any], bool]) -> list[tuple[str, Any]]:
    """A layer's output as (suffix, tensor) pairs, named as model outputs are: a lone tensor
    has the suffix ``""``, tuples and lists are indexed (``.0``), dicts and named tuples keyed.
    Anything that is neither a tensor nor a container of tensors is left out.

    The walk is a plain function, not a closure calling itself: such a closure is a reference
    cycle holding the returned list, and with it every layer output, alive until Python's
    cyclic garbage collector runs (during a forward: each activation kept past its layer)."""
    out: list[tuple[str, Any]] = []
    _walk(raw, (), 0, is_leaf, out)
    return out


def _walk(
    value: Any,
    path: tuple[str, ...],
    depth: int,
    is_leaf: Callable[[Any], bool],
    out: list[tuple[str, Any]],
) -> None:
    if depth > 8 or value is None:
        return
    if is_leaf(value):
        out.append(("".join(f".{p}" for p in path), value))
    elif isinstance(value, Mapping):
        for key in value:
            _walk(value[key], (*path, str(key)), depth + 1, is_leaf, out)
    elif isinstance(value, tuple) and hasattr(value, "_fields"):
        for key in value._fields:
            _walk(getattr(value, key), (*path, key), depth + 1, is_leaf, out)
    elif isinstance(value, (tuple, list)):
        for i, item in enumerate(value):
            _walk(item, (*path, str(i)), depth + 1, is_leaf, out)


def from_sums(
    count: int, total: float, squares: float, absolute: float, low: float, high: float
) -> dict[str, Any]:
    """The statistics from float64 sums of x, x**2 and |x| and the extremes (non-finite
    values, which a golden cannot hold, become ``None``)."""
    stats: dict[str, Any] = {"count": int(count)}
    if not count:
        return stats | dict.fromkeys(LAYER_STATS[1:])
    mean = total / count
    variance = max(squares / count - mean * mean, 0.0)
    values = (mean, math.sqrt(variance), absolute / count, low, high)
    for key, value in zip(LAYER_STATS[1:], values, strict=True):
        stats[key] = float(value) if math.isfinite(value) else None
    return stats


def host_stats(array: Any) -> dict[str, Any]:
    """The statistics of a NumPy array (Keras layer outputs), accumulated in float64."""
    import numpy as np

    from .stats import mean_std

    x = np.asarray(array)
    if x.dtype.kind == "c":
        x = np.abs(x)
    flat = x.reshape(-1)
    if flat.dtype.kind not in "biuf":
        return from_sums(0, 0.0, 0.0, 0.0, 0.0, 0.0)
    count = int(flat.size)
    if not count:
        return from_sums(0, 0.0, 0.0, 0.0, 0.0, 0.0)
    wide = flat.astype(np.float64, copy=False)
    if not np.isfinite(wide).all():
        return from_sums(count, math.nan, math.nan, math.nan, math.nan, math.nan)
    mean, std = mean_std(wide)
    return {
        "count": count,
        "mean": mean,
        "std": std,
        "mean_abs": float(np.abs(wide).sum() / count),
        "min": float(wide.min()),
        "max": float(wide.max()),
    }


def unique_names(calls: Iterable[str]) -> list[str]:
    """Layer names in call order, with ``#2``, ``#3``... for a layer called again."""
    seen: dict[str, int] = {}
    out = []
    for name in calls:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return out


# -- the golden's form ----------------------------------------------------------------------


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return float(f"{value:.{DIGITS}g}")
    return value


def shape_text(shape: Iterable[int]) -> str:
    return "x".join(str(int(d)) for d in shape) or "scalar"


def to_golden(outputs: list[LayerOutput]) -> dict[str, Any]:
    """A variant's observed layers as a golden holds them (see the module's docstring); with
    no output to measure (every leaf put out None, non-tensors or sparse/quantized tensors),
    why there are none: an empty record would read as "every recorded layer holds"."""
    if not outputs:
        return unrecorded(
            "no leaf layer put out a tensor that can be measured (only None, non-tensor or "
            "sparse/quantized outputs)"
        )
    entries = {
        o.name: [
            o.type,
            o.dtype,
            shape_text(o.shape),
            *(_rounded(o.stats.get(k)) for k in LAYER_STATS),
        ]
        for o in outputs[:MAX_LAYERS]
    }
    doc: dict[str, Any] = {"fields": list(FIELDS), "entries": entries}
    if len(outputs) > MAX_LAYERS:
        doc["total"] = len(outputs)
    return doc


def unrecorded(reason: str) -> dict[str, Any]:
    """What a variant's ``layers`` says when its layers cannot be observed."""
    return {"unrecorded": reason}


class Entry(NamedTuple):
    """One recorded layer output, read back from a golden (or an observation's record)."""

    name: str
    type: str
    dtype: str
    shape: str
    stats: dict[str, Any]


def entries(layers: Mapping[str, Any]) -> list[Entry]:
    """A variant's recorded layer outputs in execution order (empty when unrecorded)."""
    fields = list(layers.get("fields", ()))
    out = []
    for name, values in layers.get("entries", {}).items():
        row = dict(zip(fields, values, strict=False))
        stats = {k: row.get(k) for k in LAYER_STATS if k in row}
        out.append(Entry(str(name), str(row["type"]), str(row["dtype"]), str(row["shape"]), stats))
    return out


# -- localisation ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LayerDrift:
    """One layer output compared with the golden's: its largest move in tolerances."""

    name: str
    type: str
    excess: float  # largest |difference| / allowed over its statistics (inf: structure)
    stat: str | None = None  # the statistic that moved most
    golden: Any = None
    current: Any = None
    allowed: float | None = None
    change: str | None = None  # a structure change, in words

    @property
    def moved(self) -> bool:
        return self.excess > 1.0

    def detail(self) -> str:
        """``std 0.5 -> 0.5005 (+5e-04, allowed 1e-05, 50x)`` or the structure change."""
        if self.change is not None:
            return self.change
        if self.stat is None:
            return "held"
        diff = _difference(self.golden, self.current)
        if diff is None or self.allowed is None:
            return f"{self.stat} {self.golden} -> {self.current}"
        times = f"{self.excess:.3g}x" if math.isfinite(self.excess) else "beyond any"
        return (
            f"{self.stat} {self.golden:.6g} -> {self.current:.6g} ({diff:+.3g}, allowed "
            f"{self.allowed:.2g}, {times})"
        )


@dataclass
class Localisation:
    """Where one variant's outputs started to move, from its layers and the golden's."""

    variant: str
    #: ``moved``, ``changed`` (structure), ``held`` (every recorded layer within tolerance),
    #: ``unrecorded`` (the golden says why), ``old golden`` (recorded before layers were),
    #: ``unobserved`` (this run could not observe them).
    status: str
    first: LayerDrift | None = None
    #: Every layer output compared, in execution order (for pictures).
    drifts: list[LayerDrift] = field(default_factory=list)
    note: str = ""
    #: Layer outputs the golden holds (and, if it was capped, how many the model had).
    recorded: int = 0
    total: int = 0

    def following(self) -> list[LayerDrift]:
        """The moved layers after the first one (a few, for the message)."""
        if self.first is None:
            return []
        index = self.drifts.index(self.first)
        return [d for d in self.drifts[index + 1 :] if d.moved][:FOLLOWING]

    def as_record(self) -> dict[str, Any]:
        """Plain JSON data for reports."""
        first = self.first
        return {
            "variant": self.variant,
            "status": self.status,
            "first": _drift_record(first) if first is not None else None,
            "following": [_drift_record(d) for d in self.following()],
            "note": self.note,
            "recorded": self.recorded,
            "total": self.total,
            "drifts": [
                [d.name, d.type, d.excess if math.isfinite(d.excess) else "inf"]
                for d in self.drifts
            ],
        }


def _drift_record(d: LayerDrift) -> dict[str, Any]:
    return {
        "name": d.name,
        "type": d.type,
        "excess": d.excess if math.isfinite(d.excess) else "inf",
        "stat": d.stat,
        "golden": d.golden,
        "current": d.current,
        "allowed": d.allowed,
        "change": d.change,
        "detail": d.detail(),
    }


def _difference(golden: Any, current: Any) -> float | None:
    numbers = (golden, current)
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in numbers):
        return float(current) - float(golden)
    return None


def _scale(stats: Mapping[str, Any]) -> float:
    mean, std = stats.get("mean"), stats.get("std")
    if not isinstance(mean, (int, float)) or not isinstance(std, (int, float)):
        return 0.0
    return math.hypot(float(mean), float(std))


def compare_entry(golden: Entry, current: Entry, policy: Policy) -> LayerDrift:
    """One layer output against the golden's: a structure change, or its largest move."""
    for what, before, after in (
        ("type", golden.type, current.type),
        ("dtype", golden.dtype, current.dtype),
        ("shape", golden.shape, current.shape),
    ):
        if before != after:
            return LayerDrift(
                golden.name, current.type, math.inf, change=f"{what} {before} -> {after}"
            )
    count = golden.stats.get("count")
    worst = LayerDrift(golden.name, golden.type, 0.0)
    if count != current.stats.get("count"):
        return LayerDrift(
            golden.name,
            golden.type,
            math.inf,
            "count",
            count,
            current.stats.get("count"),
            change=f"count {count} -> {current.stats.get('count')}",
        )
    scale = _scale(golden.stats)
    for stat in LAYER_STATS[1:]:
        g, c = golden.stats.get(stat), current.stats.get(stat)
        diff = _difference(g, c)
        if diff is None:
            if g != c:  # became (non-)finite
                return LayerDrift(golden.name, golden.type, math.inf, stat, g, c)
            continue
        assert isinstance(g, (int, float))
        allowed = policy.allowed(
            stat, float(g), dtype=golden.dtype, scale=scale, count=int(count or 0)
        )
        excess = abs(diff) / allowed if allowed else (0.0 if diff == 0 else math.inf)
        if excess > worst.excess:
            worst = LayerDrift(golden.name, golden.type, excess, stat, g, c, allowed)
    return worst


def compare_layers(
    variant: str, golden: Mapping[str, Any], current: Mapping[str, Any], policy: Policy
) -> Localisation:
    """A variant's observed layers against the golden's, in execution order: the first layer
    output that changed its structure or moved beyond tolerance. ``policy`` is the check's,
    with the device floor applied (see :func:`localise`)."""
    if "unrecorded" in golden:
        return Localisation(variant, "unrecorded", note=f"not recorded: {golden['unrecorded']}")
    if "unrecorded" in current:
        return Localisation(variant, "unobserved", note=f"not observed: {current['unrecorded']}")
    old, new = entries(golden), entries(current)
    total = int(golden.get("total") or len(old))
    result = Localisation(variant, "held", recorded=len(old), total=total)
    for index, before in enumerate(old):
        if index >= len(new):
            drift = LayerDrift(before.name, before.type, math.inf, change="no longer runs")
        elif new[index].name != before.name:
            after = new[index]
            drift = LayerDrift(
                before.name,
                before.type,
                math.inf,
                change=f"runs {after.name} ({after.type}) here now",
            )
        else:
            drift = compare_entry(before, new[index], policy)
        result.drifts.append(drift)
        if drift.moved and result.first is None:
            result.first = drift
            result.status = "changed" if drift.change is not None else "moved"
    if len(new) > len(old) and result.first is None and len(old) == total:
        after = new[len(old)]
        drift = LayerDrift(after.name, after.type, math.inf, change="new: not in the golden")
        result.drifts.append(drift)
        result.first, result.status = drift, "changed"
    if result.status == "held":
        capped = f" (the first {len(old)} of {total} layer outputs were recorded)"
        result.note = (
            f"all {len(old)} recorded layer outputs hold{capped if total > len(old) else ''}: "
            "the change is in operations outside the leaf layers (functional calls in a "
            "forward), after the last recorded one, or did not happen again in the rerun"
        )
    return result


def localise(
    golden: Mapping[str, Any],
    observed: Mapping[str, Mapping[str, Any]],
    policy: Policy,
    device: str = "cpu",
) -> list[Localisation]:
    """Each variant of ``observed`` (variant -> its layers, from a rerun on ``device``)
    against the golden check's layers (with the tolerance floor of the two devices, as the
    check's comparison); variants the golden recorded without layers say so."""
    environment = golden.get("environment", {})
    recorded_on = str(environment.get("device", "cpu")) if isinstance(environment, dict) else "cpu"
    adjusted = policy.for_devices(kind(recorded_on), kind(device))
    out = []
    for variant, layers in observed.items():
        recorded = golden.get("variants", {}).get(variant, {}).get("layers")
        if recorded is None:
            out.append(
                Localisation(
                    variant,
                    "old golden",
                    note=(
                        "this golden was recorded without layers; recording it again "
                        "(pytest --snapshot-update) where the check still passes enables "
                        "localisation: failures then name the first moved layer"
                    ),
                )
            )
            continue
        out.append(compare_layers(variant, recorded, layers, adjusted))
    return out


def missing_layers(golden: Mapping[str, Any]) -> bool:
    """Whether a golden check was recorded before layers were (no variant has ``layers``)."""
    return not any("layers" in v for v in golden.get("variants", {}).values())


def message_lines(found: list[Localisation]) -> list[str]:
    """A failing check's lines on its layers: ``first moved layer: NAME (TYPE)`` (or
    ``first changed layer``) with its largest move and a few following layers, per variant;
    variants that name the same layer share its line."""
    lines: list[str] = []
    groups: dict[tuple[str, str, str], list[Localisation]] = {}
    notes: dict[str, list[str]] = {}
    for each in found:
        if each.first is not None:
            key = (each.status, each.first.name, each.first.type)
            groups.setdefault(key, []).append(each)
        elif each.note:
            notes.setdefault(each.note, []).append(each.variant)
    for (status, name, layer_type), members in groups.items():
        lead = members[0]
        assert lead.first is not None
        word = "moved" if status == "moved" else "changed"
        variants = ", ".join(m.variant for m in members)
        lines.append(f"first {word} layer: {name} ({layer_type})")
        plural = "s" if len(members) > 1 else ""
        lines.append(f"  variant{plural} {variants}: {lead.first.detail()}")
        held = lead.drifts.index(lead.first)
        if held:
            lines.append(f"  the {held} layer output{'s' if held > 1 else ''} before it hold")
        following = lead.following()
        for d in following:
            lines.append(f"  then {d.name} ({d.type}): {d.detail()}")
        after = sum(1 for d in lead.drifts[held + 1 :] if d.moved) - len(following)
        if after > 0:
            lines.append(f"  ... and {after} more moved layer outputs after them")
    for note, names in notes.items():
        plural = "s" if len(names) > 1 else ""
        lines.append(f"layers (variant{plural} {', '.join(names)}): {note}")
    return lines
