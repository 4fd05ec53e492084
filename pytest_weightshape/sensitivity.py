"""What a golden can detect: its noise floor and the smallest weight change that fails it.

When a golden is recorded, each variant runs twice more on the same inputs:

* with every floating-point weight scaled by ``1 + DELTA`` (larger for bfloat16 and float16
  weights, :func:`delta_for`): each output statistic's
  **response**, its derivative with respect to a relative change of every weight
  (``(stat(1 + DELTA) - stat) / DELTA``);
* with every weight moved by one unit in its last place, in a seeded random direction: each
  statistic's **floor**, how far a rounding-sized change of the computation moves it.

Both are stored per output (``response`` and ``floor``) beside its statistics. From them,
:func:`stated` gives a check's sensitivity under a tolerance policy: the **detection threshold**
(the smallest relative change of every weight that moves some statistic beyond what it is
allowed, ``min(allowed / |response|)``, linear in the change) and the **noise floor** (the
largest floor of any statistic, as a fraction of its output's scale ``rms + |stat|``, in the
units of an rtol). Divergence measures are left out (a uniform weight change moves base and
variant alike), so the threshold is an upper bound: the golden detects at least that.

A golden recorded before this module holds neither; its sensitivity is "not stated" until it
is recorded again.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .compare import CALIBRATION_FACTOR
from .document import VALUE_STATS
from .tolerance import Policy

#: The relative weight scaling whose response is measured: large enough to stand well above
#: float32 rounding (1e-7), small enough for the response to be linear.
DELTA = 1e-3
#: A tolerance set more than this many times above the noise floor is said to waste sensitivity.
OVERRIDE_FACTOR = 10.0
#: What a golden recorded without sensitivity says.
NOT_STATED = (
    "sensitivity not stated (recorded before pytest-weightshape stated it): "
    "pytest --snapshot-update adds it, keeping the recorded values"
)
#: What a golden of a model with no weights to change (a plain NumPy function) says.
NO_WEIGHTS = (
    "sensitivity not stated: the model has no weights pytest-weightshape can change (a plain "
    "function), so no weight change can be measured against it"
)
#: What a training check's golden (``check_training``) says: its sensitivity is not measured.
TRAINING = (
    "sensitivity not stated: a training check (check_training) does not measure it; its "
    "losses, gradients and updates are judged by the tolerance alone"
)


def not_stated(document: Mapping[str, Any]) -> str:
    """Why a check document states no sensitivity: no weights to change, or an older golden."""
    if document.get("kind") == "training":
        return TRAINING
    variants = document.get("variants")
    if not isinstance(variants, Mapping) or not variants:
        return NOT_STATED
    weighted = any(isinstance(v, Mapping) and v.get("parameters") for v in variants.values())
    return NOT_STATED if weighted else NO_WEIGHTS


#: Significand bits (with the implicit one) of the framework dtypes narrower than their host
#: copy: a change of a weight smaller than their spacing is rounded away when it is written.
NARROW_BITS = {"bfloat16": 8, "float16": 11}


def delta_for(dtypes: Mapping[str, str]) -> float:
    """The relative scaling to measure the response with: :data:`DELTA`, or four units of the
    spacing of the narrowest weight dtype (bfloat16: 0.031, float16: 0.0039), so the scaled
    weights do not round back to the recorded ones."""
    bits = [NARROW_BITS[d] for d in dtypes.values() if d in NARROW_BITS]
    return max(DELTA, 4 * 2.0 ** (1 - min(bits))) if bits else DELTA


def scaled(values: Mapping[str, np.ndarray], delta: float = DELTA) -> dict[str, np.ndarray]:
    """Every floating-point weight scaled by ``1 + delta`` (others unchanged)."""
    return {
        name: (value * (1 + delta)).astype(value.dtype) if _floating(value) else value
        for name, value in values.items()
    }


def nudged(
    values: Mapping[str, np.ndarray], seed: int, dtypes: Mapping[str, str] | None = None
) -> dict[str, np.ndarray]:
    """Every floating-point weight moved by one unit in its last place, up or down at random
    (seeded): a change of the size rounding makes. A weight whose framework dtype is narrower
    than its host copy (``dtypes``: bfloat16, float16) moves by a unit of that dtype's last
    place (a host-sized step would round away)."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, value in values.items():
        if not _floating(value) or value.size == 0:
            out[name] = value
            continue
        up = rng.integers(0, 2, size=value.shape).astype(bool)
        narrow = NARROW_BITS.get((dtypes or {}).get(name, ""))
        host_bits = np.finfo(value.dtype).nmant + 1
        if narrow is not None and narrow < host_bits:
            step = np.spacing(np.abs(value)) * 2.0 ** (host_bits - narrow)
            out[name] = np.where(up, value + step, value - step).astype(value.dtype)
            continue
        toward = np.where(up, np.inf, -np.inf).astype(value.dtype)
        out[name] = np.nextafter(value, toward).astype(value.dtype)
    return out


def _floating(value: np.ndarray) -> bool:
    return bool(np.issubdtype(value.dtype, np.floating))


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def measure(
    stats: Mapping[str, Any],
    scaled_stats: Mapping[str, Any],
    nudged_stats: Mapping[str, Any],
    delta: float = DELTA,
) -> dict[str, dict[str, float]]:
    """An output's ``response`` (per unit relative weight change, from weights scaled by
    ``1 + delta``) and ``floor`` per statistic."""
    response: dict[str, float] = {}
    floor: dict[str, float] = {}
    for stat in VALUE_STATS:
        value, up, nudge = (_number(s.get(stat)) for s in (stats, scaled_stats, nudged_stats))
        if value is None:
            continue
        if up is not None:
            response[stat] = (up - value) / delta
        if nudge is not None:
            floor[stat] = abs(nudge - value)
    return {"response": response, "floor": floor}


#: ``allowed(stat, golden_value, dtype, rms, count, noise) -> the largest accepted change``.
Allowed = Callable[[str, float, str, float, int, float], float]


@dataclass(frozen=True)
class Stated:
    """A check's sensitivity under a policy."""

    #: The largest rounding-sized drift of any statistic, relative to its output's scale.
    floor: float | None
    #: The smallest relative change of every weight that fails the check (``inf``: none does).
    detects: float
    #: Where that change fails first: ``variant / output statistic``.
    by: str
    #: The largest rtol set for this check (marker, check, command line, ini), if any.
    rtol: float | None = None

    @property
    def wasted(self) -> float | None:
        """How many times its noise floor an overridden rtol is, when over ``OVERRIDE_FACTOR``."""
        if self.rtol is None or not self.floor:
            return None
        factor = self.rtol / self.floor
        return factor if factor > OVERRIDE_FACTOR else None

    def text(self) -> str:
        floor = (
            f"noise floor {self.floor:.2g} of the output scale"
            if self.floor is not None
            else "noise floor not measured"
        )
        if math.isinf(self.detects):
            detects = "no change of the weights moves its statistics: it detects none"
        else:
            detects = (
                f"fails at a relative change of every weight of {self.detects:.2g} or more "
                f"(first {self.by})"
            )
        line = f"sensitivity: {floor}; {detects}"
        wasted = self.wasted
        if wasted is not None:
            line += (
                f"; tolerance overridden to rtol {self.rtol:g}, {wasted:.0f}x its noise floor: "
                "smaller changes pass unseen"
            )
        return line


def _rms(stats: Mapping[str, Any]) -> float:
    mean, std = _number(stats.get("mean")), _number(stats.get("std"))
    return math.hypot(mean or 0.0, std or 0.0)


def stated(
    document: Mapping[str, Any], allowed: Allowed, rtol: float | None = None
) -> Stated | None:
    """The sensitivity of a check document under ``allowed``; ``None`` when it was recorded
    without ``response`` and ``floor`` (see :data:`NOT_STATED`)."""
    best, by = math.inf, ""
    floor: float | None = None
    found = False
    variants = document.get("variants", {})
    for variant, data in variants.items():
        for output, info in data.get("outputs", {}).items():
            response, floors = info.get("response"), info.get("floor")
            if not isinstance(response, Mapping) or not isinstance(floors, Mapping):
                continue
            found = True
            stats = info.get("stats", {})
            scale = _rms(stats)
            count = int(stats.get("count") or 0)
            noise = info.get("noise") if isinstance(info.get("noise"), Mapping) else {}
            for stat, slope in response.items():
                value = _number(stats.get(stat))
                slope = _number(slope)
                if value is None or not slope:
                    continue
                level = _number((noise or {}).get(stat)) or 0.0
                limit = allowed(stat, value, str(info.get("dtype")), scale, count, level)
                threshold = limit / abs(slope)
                if threshold < best:
                    best, by = threshold, f"{variant} / {output} {stat}"
            for stat, drift in floors.items():
                value, drift = _number(stats.get(stat)), _number(drift)
                if value is None or drift is None or scale + abs(value) == 0:
                    continue
                relative = drift / (scale + abs(value))
                floor = relative if floor is None else max(floor, relative)
    if not found:
        return None
    return Stated(floor=floor, detects=best, by=by, rtol=rtol)


def under(document: Mapping[str, Any], policy: Policy) -> Stated | None:
    """:func:`stated` under a tolerance policy (a calibrated golden's own noise counted as
    :mod:`.compare` counts it); ``rtol`` is the largest rtol the policy sets, if it sets one."""

    def allowed(
        stat: str, value: float, dtype: str, scale: float, count: int, noise: float
    ) -> float:
        limit = policy.allowed(stat, value, dtype=dtype, scale=scale, count=count)
        return max(limit, CALIBRATION_FACTOR * noise)

    rtols = [o.rtol for o in (policy.default, *policy.per_stat.values()) if o.rtol is not None]
    return stated(document, allowed, max(rtols) if rtols else None)


def text(document: Mapping[str, Any] | None, policy: Policy) -> str:
    """The sensitivity line of a check document, or :data:`NOT_STATED`."""
    found = under(document, policy) if document else None
    if found is not None:
        return found.text()
    return not_stated(document) if document else NOT_STATED
