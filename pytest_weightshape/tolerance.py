"""How far a recorded float may move before a check fails.

The rule is ``|current - golden| <= atol + rtol * |golden|`` for every float in a golden.
Shapes, dtypes, names and counts compare exactly.

Defaults (chosen from drifts measured on our machines, see README "Tolerance"):

* ``rtol`` comes from the output dtype: float32 1e-5, float64 1e-7, float16 1e-3,
  bfloat16 1.6e-2. For float32 that is ~30x above the largest benign drift we measured
  (TF oneDNN on/off moved output statistics by 3e-7 relative) and 10x below a 1e-4
  relative change of the weights, which moves the output's std by ~1e-4.
* ``atol`` is derived from the output's own size unless set: ``rtol * rms`` where ``rms`` is
  the golden output's root mean square. A statistic that sits near zero (the mean or median
  of a centred output) is then judged against the output's magnitude, not against zero.
  Dimensionless measures (cosine, CKA, ratios) use ``atol = rtol``; the fraction of zeros
  allows one element to cross zero (``1 / count``).

Overrides, highest first: per statistic (``tolerance={"std": 1e-3}``), per check, per marker,
command line (``--weightshape-rtol``/``--weightshape-atol``), ini (``weightshape_rtol``...).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .document import ALL_STATS as ALL_STATS  # re-exported: moved to document
from .document import COUNT_STATS as COUNT_STATS  # re-exported: moved to document
from .document import (
    DIVERGENCE_RATIO,
    DIVERGENCE_VALUE,
    FLOAT_STATS,
    FRACTION_STATS,
    TRAINING_RATIO,
    TRAINING_VALUE,
    VALUE_STATS,
)
from .document import DIVERGENCE_UNIT as DIVERGENCE_UNIT  # re-exported: moved to document
from .document import QUANTILE_KEYS as QUANTILE_KEYS  # re-exported: moved to document
from .document import QUANTILES as QUANTILES  # re-exported: moved to document
from .errors import SpecError

#: Relative tolerance per output dtype.
DTYPE_RTOL: Mapping[str, float] = {
    "float64": 1e-7,
    "float32": 1e-5,
    "float16": 1e-3,
    "bfloat16": 1.6e-2,
    "complex128": 1e-7,
    "complex64": 1e-5,
}
#: Fallback for dtypes not in the table (float-like dtypes of other frameworks).
DEFAULT_RTOL = 1e-5

#: Default rtol of a statistic as a fraction of its dtype's. Moments accumulated in float64
#: (mean, std, mean |x|) average the rounding of ``n`` elements, so kernel reordering moves them
#: about ``1/sqrt(n)`` as much as order statistics (quantiles, min, max), which follow single
#: elements: ~100x less on large outputs (about 1e-8 of the output's std in float32, against
#: ~1e-6). The quiet statistics are judged by ``max(factor, 1/sqrt(n))`` of the dtype's rtol
#: (at most all of it), so a 1e-5 relative change of every weight fails while benign drift stays
#: well under (README "Tolerance", ``benchmarks/sensitivity.py``). An rtol set anywhere
#: (marker, check, command line, ini, per statistic) replaces this.
STAT_RTOL_FACTOR: Mapping[str, float] = {"mean": 0.1, "std": 0.1, "mean_abs": 0.1}


def stat_factor(stat: str, count: int) -> float:
    """The fraction of the dtype's rtol that ``stat`` of an output of ``count`` elements gets
    by default (see :data:`STAT_RTOL_FACTOR`)."""
    factor = STAT_RTOL_FACTOR.get(stat)
    if factor is None:
        return 1.0
    return min(1.0, max(factor, 1.0 / math.sqrt(count) if count > 0 else 1.0))


#: Device profiles: the smallest rtol for outputs computed on a device kind, and ``cross`` for a
#: golden recorded on another kind. CUDA convolutions, matmuls and RNNs use TF32 by default
#: (10-bit mantissa), so GPU results and CPU-vs-GPU comparisons need TF32-level tolerance.
DEFAULT_PROFILES: Mapping[str, float] = {"cpu": 0.0, "cuda": 1e-3, "mps": 1e-3, "cross": 1e-3}


@dataclass(frozen=True)
class Override:
    """A tolerance set somewhere (a statistic, a check, a marker, the command line, ini)."""

    rtol: float | None = None
    atol: float | None = None

    def over(self, lower: Override) -> Override:
        """This override, with fields it leaves unset taken from ``lower``."""
        return Override(
            rtol=self.rtol if self.rtol is not None else lower.rtol,
            atol=self.atol if self.atol is not None else lower.atol,
        )


@dataclass(frozen=True)
class Policy:
    """The resolved tolerance of one check: a global override and per-statistic ones."""

    default: Override = Override()
    per_stat: Mapping[str, Override] = field(default_factory=dict)
    #: Device profiles (see ``DEFAULT_PROFILES``) and the floor they set for this comparison.
    profiles: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_PROFILES))
    floor: float = 0.0

    def for_devices(self, golden_kind: str, current_kind: str) -> Policy:
        """This policy with the rtol floor of the device kinds compared."""
        if golden_kind == current_kind:
            floor = self.profiles.get(current_kind, 0.0)
        else:
            floor = max(
                self.profiles.get(golden_kind, 0.0),
                self.profiles.get(current_kind, 0.0),
                self.profiles.get("cross", 0.0),
            )
        return replace(self, floor=floor)

    def allowed(self, stat: str, golden: float, *, dtype: str, scale: float, count: int) -> float:
        """The largest ``|current - golden|`` accepted for ``stat``.

        ``scale`` is the golden output's root mean square, ``count`` its element count.
        """
        chosen = self.per_stat.get(stat, Override()).over(self.default)
        if chosen.rtol is not None:
            rtol = chosen.rtol
        else:
            rtol = max(dtype_rtol(dtype) * stat_factor(stat, count), self.floor)
        if (stat in DIVERGENCE_RATIO or stat in TRAINING_RATIO) and chosen.rtol is None:
            rtol = 2 * rtol
        if chosen.atol is not None:
            atol = chosen.atol
        elif stat in VALUE_STATS or stat in DIVERGENCE_VALUE or stat in TRAINING_VALUE:
            atol = rtol * scale
        elif stat in FRACTION_STATS:
            atol = 1.0 / count if count else rtol
        else:
            atol = rtol
        return atol + rtol * abs(golden)


def dtype_rtol(dtype: str) -> float:
    """Relative tolerance for an output of ``dtype`` (a name such as ``float32``)."""
    return DTYPE_RTOL.get(dtype, DEFAULT_RTOL)


def check_number(value: object, what: str) -> float | None:
    """Validate an rtol/atol value: ``None`` or a finite number >= 0."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpecError(f"{what} must be a number >= 0, got {value!r}")
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise SpecError(f"{what} must be a finite number >= 0, got {value!r}")
    return number


def parse_per_stat(value: object, where: str) -> dict[str, Override]:
    """Parse ``tolerance={"std": 1e-3, "max": {"atol": 0.1}}``.

    A bare number is an ``rtol``; a mapping may set ``rtol`` and/or ``atol``.
    """
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise SpecError(
            f"{where}: tolerance= must be a dict of statistic -> rtol or "
            f"{{'rtol': ..., 'atol': ...}}, got {type(value).__name__}"
        )
    result: dict[str, Override] = {}
    for stat, setting in value.items():
        if stat not in FLOAT_STATS:
            known = ", ".join(sorted(FLOAT_STATS))
            raise SpecError(f"{where}: tolerance= names unknown statistic {stat!r}. Known: {known}")
        if isinstance(setting, Mapping):
            extra = set(setting) - {"rtol", "atol"}
            if extra or not setting:
                raise SpecError(
                    f"{where}: tolerance[{stat!r}] takes 'rtol' and/or 'atol', "
                    f"got {sorted(map(str, setting))}"
                )
            result[stat] = Override(
                rtol=check_number(setting.get("rtol"), f"{where}: tolerance[{stat!r}]['rtol']"),
                atol=check_number(setting.get("atol"), f"{where}: tolerance[{stat!r}]['atol']"),
            )
        else:
            result[stat] = Override(rtol=check_number(setting, f"{where}: tolerance[{stat!r}]"))
    return result


def parse_profiles(text: str | None, where: str) -> dict[str, float]:
    """``"cuda=1e-3 mps=1e-3 cross=1e-3"`` over the defaults."""
    profiles = dict(DEFAULT_PROFILES)
    for item in (text or "").replace(",", " ").split():
        key, sep, value = item.partition("=")
        if not sep or key not in DEFAULT_PROFILES:
            raise SpecError(
                f"{where}: expected kind=rtol with kind in {', '.join(DEFAULT_PROFILES)}, "
                f"got {item!r}"
            )
        try:
            number = check_number(float(value), f"{where}: {key}")
        except ValueError:
            raise SpecError(f"{where}: {key}= needs a number, got {value!r}") from None
        profiles[key] = float(number or 0.0)
    return profiles


def resolve(
    *layers: tuple[Override, Mapping[str, Override]],
    profiles: Mapping[str, float] | None = None,
) -> Policy:
    """Combine settings, highest precedence first (check, marker, command line, ini)."""
    default = Override()
    per_stat: dict[str, Override] = {}
    for override, stats in reversed(layers):
        default = override.over(default)
        for stat, stat_override in stats.items():
            per_stat[stat] = stat_override.over(per_stat.get(stat, Override()))
    return Policy(
        default=default,
        per_stat=per_stat,
        profiles=dict(profiles if profiles is not None else DEFAULT_PROFILES),
    )


def rms(stats: Mapping[str, Any]) -> float:
    """Root mean square of an output from its statistics: the scale tolerances refer to."""
    mean, std = stats.get("mean"), stats.get("std")
    if not isinstance(mean, (int, float)) or not isinstance(std, (int, float)):
        return 0.0
    return math.hypot(float(mean), float(std))  # no overflow where mean**2 would
